// Admin › Policies (policymaker and administrator): list, add or update, edit, delete.

import { get, put, del, seg } from './api.js';
import { h, replace, table } from './dom.js';
import { args } from './format.js';
import { field, vhostField, argumentsEditor, form, dangerButton } from './forms.js';

const POLICY_KEYS = ['max-length', 'max-length-bytes', 'overflow', 'message-ttl', 'expires', 'dead-letter-exchange',
  'dead-letter-routing-key', 'max-priority', 'queue-mode', 'alternate-exchange'];

/** Mounts the policies section into `el`. */
export function mountPolicies(el, ctx) {
  const listBox = h('div');
  const vh = vhostField(ctx.vhosts, ctx.vhost || ctx.vhosts[0]);
  const name = field('Name', { name: 'name', required: true });
  const pattern = field('Pattern', { name: 'pattern', required: true, placeholder: '^amq\\.' });
  const applyTo = field('Apply to', { name: 'apply-to' }, 'select', [['all', 'Exchanges and queues'], ['exchanges', 'Exchanges'], ['queues', 'Queues']]);
  const priority = field('Priority', { name: 'priority', type: 'number', value: 0 });
  const definition = argumentsEditor('Definition', POLICY_KEYS);
  const refresh = async () => {
    const list = await get(ctx.vhost ? `/policies/${seg(ctx.vhost)}` : '/policies');
    replace(listBox, table('Policies', [
      ['Virtual host', (p) => p.vhost], ['Name', (p) => p.name], ['Pattern', (p) => p.pattern],
      ['Apply to', (p) => p['apply-to']], ['Definition', (p) => h('pre', {}, args(p.definition))],
      ['Priority', (p) => String(p.priority), 'num'],
      ['Actions', (p) => h('div', { class: 'row' },
        h('button', { type: 'button', onclick: () => edit(p) }, 'Edit'),
        dangerButton('Delete', `Delete policy ${p.name}?`, () => del(`/policies/${seg(p.vhost)}/${seg(p.name)}`), 'Policy deleted.', refresh))],
    ], list, 'No policies.'));
  };
  function edit(p) {
    vh.input.value = p.vhost;
    name.input.value = p.name;
    pattern.input.value = p.pattern;
    applyTo.input.value = p['apply-to'];
    priority.input.value = p.priority;
    const rows = definition.el.querySelector('.args');
    rows.replaceChildren();
    const addRow = definition.el.querySelector('button');
    for (const [k, v] of Object.entries(p.definition)) {
      addRow.click();
      const [key, val, type] = rows.lastElementChild.querySelectorAll('input, select');
      key.value = k;
      val.value = typeof v === 'object' ? JSON.stringify(v) : String(v);
      type.value = typeof v === 'number' ? 'Number' : typeof v === 'boolean' ? 'Boolean' : 'String';
    }
    if (!rows.children.length) addRow.click();
    name.input.focus();
  }
  replace(el, h('h2', {}, 'Policies'), listBox,
    form('Add / update a policy', [vh.el, name.el, pattern.el, applyTo.el, priority.el, definition.el], () => put(`/policies/${seg(vh.input.value)}/${seg(name.input.value)}`, {
      pattern: pattern.input.value, 'apply-to': applyTo.input.value, priority: Number(priority.input.value || 0), definition: definition.value(),
    }), () => `Policy ${name.input.value} saved.`, refresh, 'Add / update policy'));
  return { refresh };
}
