// The console's shell: login, tabs by the user's tags, the vhost selector, hash routing
// (`#/queues/%2F/orders`), and the refresh timer that asks the current page to poll.

import { get, setCredentials, clearCredentials, credentials } from './api.js';
import { h, replace, flash } from './dom.js';
import * as overview from './overview.js';
import * as connections from './connections.js';
import * as channels from './channels.js';
import * as exchanges from './exchanges.js';
import * as queues from './queues.js';
import * as queue from './queue.js';
import * as admin from './admin.js';

const $ = (id) => document.getElementById(id);

/** What every page gets: the user, the vhost selected ('' for all), and the vhosts seen. */
export const ctx = { user: null, vhost: sessionStorage.getItem('warren.vhost') || '', vhosts: [], overview: null, can, vhostsChanged };

/** RabbitMQ's tag rules for what the console shows. */
function can(tag) {
  const tags = ctx.user ? ctx.user.tags : [];
  if (tags.includes('administrator')) return true;
  if (tag === 'policymaker') return tags.includes('policymaker');
  if (tag === 'monitoring') return tags.includes('monitoring');
  return false;
}

let current = null;
let timer = null;

function routeOf(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  return parts;
}

async function route() {
  if (!ctx.user) return;
  const parts = routeOf(location.hash);
  const [tab = 'overview', ...rest] = parts;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const page = $('page');
  page.replaceChildren();
  let mod;
  if (tab === 'overview' || tab === '') mod = overview;
  else if (tab === 'connections') mod = connections;
  else if (tab === 'channels') mod = channels;
  else if (tab === 'exchanges') mod = exchanges;
  else if (tab === 'queues' && rest.length >= 2) mod = queue;
  else if (tab === 'queues') mod = queues;
  else if (tab === 'admin' && can('policymaker')) mod = admin;
  if (!mod) {
    replace(page, h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview')));
    current = null;
    return;
  }
  current = mod.mount(page, rest, ctx);
  document.title = `${page.querySelector('h1') ? page.querySelector('h1').textContent : 'Warren'} - Warren`;
  await poll();
}

/**
 * Runs the current page's refresh unless that page's previous one is still running (a slow API
 * is not piled on). The flag is per mounted page, so a new page polls at once even while the
 * old page's last request is in flight.
 */
async function poll() {
  const page = current;
  if (!page || page.busy) return;
  page.busy = true;
  try {
    await page.refresh();
  } catch (e) {
    if (page !== current) return;
    if (e.status === 401 && e.error === 'not_authorized') {
      logout('Your session ended: log in again.');
      return;
    }
    flash(e.message, 'error');
  } finally {
    page.busy = false;
  }
}

function schedule() {
  clearInterval(timer);
  const every = Number($('refresh-select').value);
  if (every > 0) timer = setInterval(poll, every);
}

async function loadVhosts() {
  ctx.vhosts = (await get('/vhosts', { columns: 'name' })).map((v) => v.name);
  const sel = $('vhost-select');
  if (ctx.vhost && !ctx.vhosts.includes(ctx.vhost)) ctx.vhost = '';
  replace(sel, h('option', { value: '' }, 'All'), ctx.vhosts.map((v) => h('option', { value: v, selected: v === ctx.vhost }, v)));
}

/** Re-reads the vhost list (after an admin adds or deletes one). */
async function vhostsChanged() {
  await loadVhosts();
}

async function start() {
  try {
    ctx.user = await get('/whoami');
  } catch (e) {
    clearCredentials();
    showLogin(e.status === 401 ? (e.reason || 'Login failed') : e.message);
    return;
  }
  $('login').hidden = true;
  $('top').hidden = false;
  $('tabs').hidden = false;
  replace($('who-name'), ctx.user.name);
  replace($('who-tags'), ctx.user.tags.length ? `(${ctx.user.tags.join(', ')})` : '');
  for (const li of document.querySelectorAll('#tabs [data-needs]')) li.hidden = !can(li.dataset.needs);
  try {
    ctx.overview = await get('/overview', { columns: 'product_version,rabbitmq_version,node' });
    replace($('version'), `${ctx.overview.product_version} (RabbitMQ ${ctx.overview.rabbitmq_version} compatible)`);
  } catch {
    // The version line is decoration.
  }
  await loadVhosts();
  schedule();
  await route();
}

function showLogin(error) {
  clearInterval(timer);
  current = null;
  ctx.user = null;
  $('top').hidden = true;
  $('tabs').hidden = true;
  $('page').replaceChildren();
  $('login').hidden = false;
  replace($('login-error'), error || '');
  $('login-user').focus();
}

function logout(message) {
  clearCredentials();
  showLogin(message);
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  setCredentials($('login-user').value, $('login-pass').value);
  $('login-pass').value = '';
  await start();
});
$('logout').addEventListener('click', () => logout(''));
$('vhost-select').addEventListener('change', (e) => {
  ctx.vhost = e.target.value;
  sessionStorage.setItem('warren.vhost', ctx.vhost);
  route();
});
$('refresh-select').addEventListener('change', schedule);
window.addEventListener('hashchange', () => {
  route();
  // Move focus to the new page for keyboard and screen-reader users.
  $('main').focus({ preventScroll: true });
});

if (credentials()) start();
else showLogin('');
