// Building DOM nodes without innerHTML: every value from the broker goes in as text, so a
// queue named `<img onerror=...>` is shown, never run.

/**
 * h('a', {href: '#/x', class: 'c'}, 'text', child...) creates an element. Attributes named
 * `on...` take functions; `false`/null attributes are left out; children may be arrays.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the contents of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table: `columns` are [heading, (row) => cell]; rows become <tr>s. */
export function table(caption, columns, rows, empty = 'Nothing to show.') {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    // Captions name the table for screen readers; the section heading already shows it.
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([name, , cls]) => h('th', { scope: 'col', class: cls }, name)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map(([, cell, cls]) => h('td', { class: cls }, cell(r)))))));
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A collapsible section with a heading (native <details>: keyboard works for free). */
export function section(title, open, ...children) {
  return h('details', { class: 'section', open }, h('summary', {}, h('h2', {}, title)), ...children);
}

/** Shows a message in the live region (announced by screen readers). */
export function flash(text, kind = 'ok') {
  const s = document.getElementById('status');
  replace(s, h('p', { class: kind }, text));
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => s.replaceChildren(), kind === 'error' ? 10000 : 4000);
}
