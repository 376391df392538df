// A list backed by the API's server-side pagination: `page`, `page_size`, `name` (with
// `use_regex`), `sort` and `sort_reverse`, so 10,000 queues cost the browser one page.

import { get } from './api.js';
import { h, replace } from './dom.js';
import { num } from './format.js';

const remembered = new Map();

/**
 * Creates a list. `opts`: `id` (remembers filter, sort and page across visits), `path()` (the
 * endpoint, called on every refresh so it follows the vhost selector), `columns` ([{title,
 * cell(row), sort, cls}]), `apiColumns` (the `columns` query: only what the table shows),
 * `noun` ("queues"). Answers {el, refresh}.
 */
export function pagedList(opts) {
  const state = remembered.get(opts.id) || { page: 1, page_size: 100, name: '', use_regex: false, sort: opts.defaultSort || 'name', sort_reverse: false };
  remembered.set(opts.id, state);

  const filter = h('input', { id: `${opts.id}-filter`, type: 'search', value: state.name, 'aria-describedby': `${opts.id}-summary` });
  const regex = h('input', { id: `${opts.id}-regex`, type: 'checkbox', checked: state.use_regex });
  const size = h('select', { id: `${opts.id}-size` }, [20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === state.page_size }, n)));
  const summary = h('p', { id: `${opts.id}-summary`, class: 'summary', 'aria-live': 'polite' });
  const pager = h('div', { class: 'pager' });
  const body = h('div', { class: 'list-body' });

  let timer;
  const apply = () => {
    state.name = filter.value;
    state.use_regex = regex.checked;
    state.page_size = Number(size.value);
    state.page = 1;
    refresh();
  };
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(apply, 300);
  });
  regex.addEventListener('change', apply);
  size.addEventListener('change', apply);

  const controls = h('form', { class: 'filters', role: 'search', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('label', { for: filter.id }, `Filter ${opts.noun} by name`), filter,
    h('label', { for: regex.id, class: 'check' }, regex, 'Regex'),
    h('label', { for: size.id }, 'Page size'), size);

  const sortButton = (col) => {
    const active = state.sort === col.sort;
    const arrow = active ? (state.sort_reverse ? ' ▼' : ' ▲') : '';
    return h('button', {
      type: 'button', class: 'sort', 'data-key': `sort-${opts.id}-${col.sort}`,
      onclick: () => {
        if (state.sort === col.sort) state.sort_reverse = !state.sort_reverse;
        else {
          state.sort = col.sort;
          state.sort_reverse = false;
        }
        refresh();
      },
    }, col.title, arrow);
  };
  const ariaSort = (col) => (state.sort === col.sort ? (state.sort_reverse ? 'descending' : 'ascending') : null);

  const pageButton = (label, page, disabled) => h('button', {
    type: 'button', disabled, 'data-key': `page-${opts.id}-${label}`,
    onclick: () => { state.page = page; refresh(); },
  }, label);

  // A click can start a refresh while a poll's is still in flight; only the newest may render,
  // or a slow older reply would paint the old sort or page over the new one.
  let latest = 0;
  async function refresh() {
    latest += 1;
    const mine = latest;
    const query = { page: state.page, page_size: state.page_size, name: state.name, use_regex: state.use_regex ? 'true' : 'false', sort: state.sort, sort_reverse: state.sort_reverse ? 'true' : 'false', columns: opts.apiColumns };
    let data;
    try {
      data = await get(opts.path(), query);
      if (mine !== latest) return undefined;
    } catch (e) {
      if (mine !== latest) return undefined;
      // A page beyond the end (objects were deleted meanwhile): go back to the first.
      if (e.error === 'page_out_of_range' && state.page > 1) {
        state.page = 1;
        return refresh();
      }
      // A bad regex is the user's to fix; say so beside the filter.
      replace(summary, h('span', { class: 'error' }, e.message));
      body.replaceChildren();
      return undefined;
    }
    const items = Array.isArray(data) ? data : data.items;
    const pages = Array.isArray(data) ? 1 : data.page_count;
    const filtered = Array.isArray(data) ? items.length : data.filtered_count;
    const total = Array.isArray(data) ? items.length : data.total_count;
    replace(summary, `${num(filtered)} ${filtered === 1 ? opts.noun.replace(/s$/, '') : opts.noun}`, filtered !== total ? ` (filtered from ${num(total)})` : '',
      pages > 1 ? `, page ${state.page} of ${pages}` : '');
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    replace(pager,
      pageButton('First', 1, state.page <= 1),
      pageButton('Previous', state.page - 1, state.page <= 1),
      h('span', {}, ` Page ${state.page} of ${Math.max(pages, 1)} `),
      pageButton('Next', state.page + 1, state.page >= pages),
      pageButton('Last', pages, state.page >= pages));
    if (!items.length) {
      replace(body, h('p', { class: 'muted' }, `No ${opts.noun}.`));
    } else {
      replace(body, h('table', {},
        h('caption', { class: 'visually-hidden' }, opts.caption || opts.noun),
        h('thead', {}, h('tr', {}, opts.columns.map((c) => h('th', { scope: 'col', class: c.cls, 'aria-sort': c.sort ? ariaSort(c) : null }, c.sort ? sortButton(c) : c.title)))),
        h('tbody', {}, items.map((row) => h('tr', {}, opts.columns.map((c) => h('td', { class: c.cls }, c.cell(row))))))));
    }
    // Polling rebuilds the rows; keep the keyboard user's place.
    if (focused) {
      const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again && !again.disabled) again.focus();
    }
    return undefined;
  }

  return { el: h('div', { class: 'paged' }, controls, summary, body, pager), refresh };
}
