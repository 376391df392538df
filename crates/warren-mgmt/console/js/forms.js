// Form building blocks: labelled fields, an arguments editor, and a submit wrapper that reports
// the API's answer in the live region.

import { h, flash } from './dom.js';

let counter = 0;

/** A labelled input; `attrs` go on the <input> (or <select>/<textarea> with `tag`). */
export function field(label, attrs = {}, tag = 'input', options = []) {
  counter += 1;
  const id = attrs.id || `f${counter}`;
  const input = tag === 'select'
    ? h('select', { ...attrs, id }, options.map(([v, text, sel]) => h('option', { value: v, selected: sel }, text)))
    : h(tag, { ...attrs, id });
  return { input, el: h('p', { class: 'field' }, h('label', { for: id }, label), input) };
}

/** A select of the vhosts given. */
export function vhostField(vhosts, selected, label = 'Virtual host') {
  return field(label, { name: 'vhost' }, 'select', vhosts.map((v) => [v, v, v === selected]));
}

/**
 * Rows of key / value / type for `arguments` and headers. Answers {el, value()} where value()
 * is an object with numbers and booleans typed as chosen.
 */
export function argumentsEditor(legend, hints = []) {
  const rows = h('div', { class: 'args' });
  const add = () => {
    counter += 1;
    const n = counter;
    const key = h('input', { id: `ak${n}`, list: hints.length ? `hints-${legend}` : null });
    const val = h('input', { id: `av${n}` });
    const type = h('select', { id: `at${n}` }, ['String', 'Number', 'Boolean'].map((t) => h('option', { value: t }, t)));
    rows.appendChild(h('div', { class: 'arg-row' },
      // The legend in each label keeps names unique for screen readers ("Arguments value").
      h('label', { for: key.id }, h('span', { class: 'visually-hidden' }, `${legend} `), 'Key'), key,
      h('label', { for: val.id }, h('span', { class: 'visually-hidden' }, `${legend} `), 'Value'), val,
      h('label', { for: type.id }, h('span', { class: 'visually-hidden' }, `${legend} `), 'Type'), type));
  };
  add();
  const el = h('fieldset', { class: 'args-box' }, h('legend', {}, legend), rows,
    hints.length ? h('datalist', { id: `hints-${legend}` }, hints.map((k) => h('option', { value: k }))) : null,
    h('button', { type: 'button', onclick: add }, `Add ${legend.toLowerCase()} row`),
    hints.length ? h('p', { class: 'muted hint' }, 'Known keys: ', hints.join(', ')) : null);
  const value = () => {
    const out = {};
    for (const row of rows.children) {
      const [key, val, type] = row.querySelectorAll('input, select');
      if (!key.value.trim()) continue;
      let v = val.value;
      if (type.value === 'Number') {
        v = Number(v);
        if (Number.isNaN(v)) throw new Error(`${key.value}: not a number`);
      } else if (type.value === 'Boolean') v = v.trim().toLowerCase() === 'true';
      out[key.value.trim()] = v;
    }
    return out;
  };
  return { el, value };
}

/**
 * A form whose submit runs `action()` (async); success flashes `done` (a string or a function
 * of the result) and calls `after`, failure flashes the API's reason. The form stays usable.
 */
export function form(title, children, action, done, after, submitLabel) {
  const f = h('form', { class: 'action' }, title ? h('h3', {}, title) : null, children,
    h('p', {}, h('button', { type: 'submit' }, submitLabel || title || 'Submit')));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const result = await action();
      flash(typeof done === 'function' ? done(result) : done);
      if (after) after(result);
    } catch (err) {
      flash(err.message, 'error');
    }
  });
  return f;
}

/** A button that asks first (native confirm: keyboard-friendly), then runs `action`. */
export function dangerButton(label, question, action, done, after) {
  return h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      if (!window.confirm(question)) return;
      try {
        await action();
        flash(done);
        if (after) after();
      } catch (err) {
        flash(err.message, 'error');
      }
    },
  }, label);
}
