// The Admin tab: users, virtual hosts, permissions and limits for administrators; policies for
// policymakers too (RabbitMQ's rule). Sub-pages are `#/admin/users`, `#/admin/vhosts`,
// `#/admin/policies`, `#/admin/limits`.

import { get, put, del, seg } from './api.js';
import { h, replace, table } from './dom.js';
import { num } from './format.js';
import { field, vhostField, form, dangerButton } from './forms.js';
import { mountPolicies } from './policies.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

function users(el, ctx) {
  const listBox = h('div');
  const permBox = h('div');
  const names = [];
  const name = field('Username', { name: 'username', required: true, autocomplete: 'off' });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'new-password' });
  const tags = field('Tags (comma-separated)', { name: 'tags', list: 'tag-hints', placeholder: 'management' });
  const pUser = field('User', { name: 'user', required: true, list: 'user-hints' });
  const pVhost = vhostField(ctx.vhosts, ctx.vhost || ctx.vhosts[0]);
  const conf = field('Configure regexp', { name: 'configure', value: '.*' });
  const write = field('Write regexp', { name: 'write', value: '.*' });
  const read = field('Read regexp', { name: 'read', value: '.*' });
  const userHints = h('datalist', { id: 'user-hints' });
  const refresh = async () => {
    const [us, ps] = await Promise.all([get('/users'), get('/permissions')]);
    names.splice(0, names.length, ...us.map((u) => u.name));
    replace(userHints, names.map((n) => h('option', { value: n })));
    replace(listBox, table('Users', [
      ['Name', (u) => u.name],
      ['Tags', (u) => (Array.isArray(u.tags) ? u.tags.join(', ') : u.tags)],
      ['Can access virtual hosts', (u) => ps.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || h('span', { class: 'muted' }, 'No access')],
      ['Has password', (u) => (u.password_hash ? 'yes' : 'no')],
      ['Actions', (u) => h('div', { class: 'row' },
        h('button', { type: 'button', onclick: () => { name.input.value = u.name; tags.input.value = Array.isArray(u.tags) ? u.tags.join(',') : u.tags; password.input.focus(); } }, 'Edit'),
        dangerButton('Delete', `Delete user ${u.name}?`, () => del(`/users/${seg(u.name)}`), 'User deleted.', refresh))],
    ], us));
    replace(permBox, table('Permissions', [
      ['User', (p) => p.user], ['Virtual host', (p) => p.vhost],
      ['Configure', (p) => p.configure], ['Write', (p) => p.write], ['Read', (p) => p.read],
      ['Actions', (p) => dangerButton('Clear', `Clear ${p.user}'s permissions on ${p.vhost}?`, () => del(`/permissions/${seg(p.vhost)}/${seg(p.user)}`), 'Permissions cleared.', refresh)],
    ], ps, 'No permissions.'));
  };
  replace(el, h('h2', {}, 'Users'), listBox,
    h('datalist', { id: 'tag-hints' }, TAGS.map((t) => h('option', { value: t }))), userHints,
    form('Add / update a user', [name.el, password.el, tags.el,
      h('p', { class: 'muted hint' }, 'Tags: ', TAGS.join(', '), '. Leave the password empty when updating to keep the current one.')], async () => {
      const body = { tags: tags.input.value };
      if (password.input.value) body.password = password.input.value;
      else if (!names.includes(name.input.value)) body.password_hash = '';
      await put(`/users/${seg(name.input.value)}`, body);
      password.input.value = '';
    }, () => `User ${name.input.value} saved.`, refresh, 'Add / update user'),
    h('h2', {}, 'Permissions'), permBox,
    form('Set permission', [pUser.el, pVhost.el, conf.el, write.el, read.el], () => put(`/permissions/${seg(pVhost.input.value)}/${seg(pUser.input.value)}`, {
      configure: conf.input.value, write: write.input.value, read: read.input.value,
    }), 'Permission set.', refresh, 'Set permission'));
  return { refresh };
}

function vhosts(el, ctx) {
  const listBox = h('div');
  const name = field('Name', { name: 'name', required: true });
  const description = field('Description', { name: 'description' });
  const tags = field('Tags', { name: 'tags' });
  const refresh = async () => {
    const vs = await get('/vhosts');
    replace(listBox, table('Virtual hosts', [
      ['Name', (v) => v.name], ['Description', (v) => v.description || ''], ['Tags', (v) => (v.tags || []).join(', ')],
      ['Ready', (v) => num(v.messages_ready), 'num'], ['Unacked', (v) => num(v.messages_unacknowledged), 'num'], ['Total', (v) => num(v.messages), 'num'],
      ['Actions', (v) => dangerButton('Delete', `Delete virtual host ${v.name} and everything in it?`, () => del(`/vhosts/${seg(v.name)}`), 'Virtual host deleted.', async () => { await ctx.vhostsChanged(); await refresh(); })],
    ], vs));
  };
  replace(el, h('h2', {}, 'Virtual hosts'), listBox,
    form('Add a new virtual host', [name.el, description.el, tags.el], () => put(`/vhosts/${seg(name.input.value)}`, {
      description: description.input.value, tags: tags.input.value,
    }), 'Virtual host added.', async () => { await ctx.vhostsChanged(); await refresh(); }, 'Add virtual host'));
  return { refresh };
}

function limits(el, ctx) {
  const vBox = h('div');
  const uBox = h('div');
  const vh = vhostField(ctx.vhosts, ctx.vhost || ctx.vhosts[0]);
  const vKind = field('Limit', { name: 'limit' }, 'select', [['max-connections', 'max-connections'], ['max-queues', 'max-queues']]);
  const vValue = field('Value', { name: 'value', type: 'number', required: true });
  const user = field('User', { name: 'user', required: true });
  const uKind = field('Limit', { name: 'limit' }, 'select', [['max-connections', 'max-connections'], ['max-channels', 'max-channels']]);
  const uValue = field('Value', { name: 'value', type: 'number', required: true });
  const flat = (list, who) => list.flatMap((l) => Object.entries(l.value).map(([k, v]) => ({ who: l[who], k, v })));
  const refresh = async () => {
    const [vl, ul] = await Promise.all([get('/vhost-limits'), get('/user-limits')]);
    replace(vBox, table('Virtual host limits', [
      ['Virtual host', (l) => l.who], ['Limit', (l) => l.k], ['Value', (l) => String(l.v), 'num'],
      ['Actions', (l) => dangerButton('Clear', `Clear ${l.k} of ${l.who}?`, () => del(`/vhost-limits/${seg(l.who)}/${seg(l.k)}`), 'Limit cleared.', refresh)],
    ], flat(vl, 'vhost'), 'No virtual host limits.'));
    replace(uBox, table('User limits', [
      ['User', (l) => l.who], ['Limit', (l) => l.k], ['Value', (l) => String(l.v), 'num'],
      ['Actions', (l) => dangerButton('Clear', `Clear ${l.k} of ${l.who}?`, () => del(`/user-limits/${seg(l.who)}/${seg(l.k)}`), 'Limit cleared.', refresh)],
    ], flat(ul, 'user'), 'No user limits.'));
  };
  replace(el, h('h2', {}, 'Virtual host limits'), vBox,
    form('Set virtual host limit', [vh.el, vKind.el, vValue.el], () => put(`/vhost-limits/${seg(vh.input.value)}/${seg(vKind.input.value)}`, { value: Number(vValue.input.value) }), 'Limit set.', refresh, 'Set limit'),
    h('h2', {}, 'User limits'), uBox,
    form('Set user limit', [user.el, uKind.el, uValue.el], () => put(`/user-limits/${seg(user.input.value)}/${seg(uKind.input.value)}`, { value: Number(uValue.input.value) }), 'Limit set.', refresh, 'Set user limit'));
  return { refresh };
}

/** Mounts `#/admin/{sub}`: the sub-page menu and the chosen sub-page. */
export function mount(el, route, ctx) {
  const admin = ctx.can('administrator');
  const subs = admin ? [['users', 'Users'], ['vhosts', 'Virtual hosts'], ['policies', 'Policies'], ['limits', 'Limits']] : [['policies', 'Policies']];
  const sub = subs.some(([s]) => s === route[0]) ? route[0] : subs[0][0];
  const body = h('div');
  replace(el, h('h1', {}, 'Admin'),
    h('nav', { class: 'subnav', 'aria-label': 'Admin sections' }, h('ul', {}, subs.map(([s, label]) => h('li', {},
      h('a', { href: `#/admin/${s}`, 'aria-current': s === sub ? 'page' : null }, label))))),
    body);
  if (sub === 'users') return users(body, ctx);
  if (sub === 'vhosts') return vhosts(body, ctx);
  if (sub === 'limits') return limits(body, ctx);
  return mountPolicies(body, ctx);
}


