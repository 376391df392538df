// Drives Warren's web console in headless Chromium (Debian's /usr/bin/chromium) against a
// release Warren started on free ports: log in, declare a queue, publish and get a message
// while watching the depth change, declare an exchange and bind it, create a user, a
// permission and a policy, close a connection opened by a real AMQP client, export and import
// definitions, a keyboard-only pass, a non-admin user who must not see admin tabs, and the
// queue list with 10,000 queues. Screenshots of every page go to target/console-screenshots/.
//
//   node conformance/console/console_test.mjs [--binary PATH] [--queues N] [--shots DIR]
//
// Exit status 0 when every check passed; each failure names the step and what was seen.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const targetDir = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const BINARY = option('--binary', path.join(targetDir, 'release', 'warren'));
const BULK = Number(option('--queues', '10000'));
const SHOTS = option('--shots', path.join(targetDir, 'console-screenshots'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let passed = 0;
let step = 'start';
// The broker under test, killed on any way out (an exception in a client callback included),
// so a failed run leaves no broker behind.
let broker = null;
process.on('uncaughtException', (e) => {
  console.error(`console-test: FAILED in [${step}]: ${e.message}`);
  if (broker && broker.proc.exitCode === null) broker.proc.kill('SIGKILL');
  if (broker) fs.rmSync(broker.dir, { recursive: true, force: true });
  process.exit(1);
});
function check(cond, what) {
  if (!cond) throw new Error(`[${step}] check failed: ${what}`);
  passed += 1;
}
function log(...a) {
  console.log(`console-test: ${a.join(' ')}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url, proc, seconds) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`warren exited with ${proc.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.status) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

async function startWarren() {
  const amqpPort = await freePort();
  const httpPort = await freePort();
  const promPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-warren-'));
  const logFile = fs.openSync(path.join(dir, 'warren.log'), 'w');
  const proc = spawn(BINARY, ['--port', String(amqpPort), '--bind', '127.0.0.1', '--data-dir', path.join(dir, 'data')], {
    cwd: dir,
    stdio: ['ignore', logFile, logFile],
    env: {
      ...process.env,
      WARREN_MANAGEMENT_PORT: String(httpPort),
      WARREN_PROMETHEUS_PORT: String(promPort),
      // Rates every second so the charts move within the test.
      WARREN_COLLECT_STATISTICS_INTERVAL: '1000',
    },
  });
  await waitHttp(`http://127.0.0.1:${httpPort}/`, proc, 30);
  return { proc, dir, amqpPort, base: `http://127.0.0.1:${httpPort}/`, amqpUrl: `amqp://guest:guest@127.0.0.1:${amqpPort}/` };
}

async function stopWarren(w) {
  if (w.proc.exitCode === null) {
    const exited = new Promise((r) => w.proc.once('exit', r));
    w.proc.kill('SIGTERM');
    const t = setTimeout(() => w.proc.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(t);
  }
  fs.rmSync(w.dir, { recursive: true, force: true });
}

/** The HTTP API directly, for setup and for checking what the console did. */
function apiClient(base, user = 'guest', pass = 'guest') {
  const auth = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
  return async (method, p, body) => {
    const r = await fetch(new URL('api' + p, base), {
      method, headers: { authorization: auth, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

let shotNo = 0;
async function shot(page, name) {
  shotNo += 1;
  const file = path.join(SHOTS, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits for the live region to say `text` (a success) and fails on an error message. */
async function flashed(page, text) {
  const status = page.locator('#status p');
  await status.filter({ hasText: text }).first().waitFor({ timeout: 10000 }).catch(async () => {
    const seen = await status.allTextContents();
    throw new Error(`[${step}] expected the status "${text}", saw ${JSON.stringify(seen)}`);
  });
  passed += 1;
}

async function login(page, base, user, pass) {
  await page.goto(base);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(pass);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#who-name').filter({ hasText: user }).waitFor({ timeout: 10000 });
}

async function go(page, hash, heading) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: 10000 });
}

/** Presses Tab until the focused element matches `pred` (evaluated in the page). */
async function tabTo(page, description, pred, max = 80) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(pred)) return;
  }
  throw new Error(`[${step}] Tab never reached ${description}`);
}

async function main() {
  if (!fs.existsSync(BINARY)) throw new Error(`no warren binary at ${BINARY}: cargo build --release --bin warren`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  const w = await startWarren();
  broker = w;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'console-chromium-'));
  let context;
  let conn;
  let traffic;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const api = apiClient(w.base);
    const page = context.pages()[0] || await context.newPage();
    page.on('dialog', (d) => d.accept());
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));

    step = 'static files';
    for (const [p, type] of [['', 'text/html'], ['js/main.js', 'text/javascript'], ['css/main.css', 'text/css']]) {
      const r = await fetch(new URL(p, w.base));
      check(r.status === 200 && r.headers.get('content-type').startsWith(type), `${p} is ${type}`);
      // WARREN_CONSOLE_DEV_DIR (console work without rebuilding) serves from disk, untagged.
      if (!process.env.WARREN_CONSOLE_DEV_DIR) {
        const again = await fetch(new URL(p, w.base), { headers: { 'if-none-match': r.headers.get('etag') } });
        check(again.status === 304, `${p} revalidates to 304`);
      }
    }
    const apiStill = await fetch(new URL('api/overview', w.base));
    check(apiStill.status === 401, '/api still answers the API (401 without credentials)');

    step = 'login';
    await page.goto(w.base);
    await page.getByLabel('Username').fill('guest');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').filter({ hasText: 'Login failed' }).waitFor({ timeout: 10000 });
    passed += 1;
    await shot(page, 'login-failed');
    await login(page, w.base, 'guest', 'guest');
    check(await page.getByRole('link', { name: 'Admin' }).isVisible(), 'administrator sees the Admin tab');

    step = 'overview';
    // A real client publishing, so the rates chart has something to draw.
    conn = await amqp.connect(w.amqpUrl);
    conn.on('error', () => {});
    const ch = await conn.createChannel();
    await ch.assertQueue('console-traffic');
    // Ten messages every 200 ms while the overview polls: the charts get a real curve.
    let sent = 0;
    traffic = setInterval(() => {
      for (let i = 0; i < 10; i += 1) ch.sendToQueue('console-traffic', Buffer.from(`m${sent++}`));
    }, 200);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.locator('dl.facts dt', { hasText: 'File descriptors' }).waitFor({ timeout: 10000 });
    const ratesBox = page.locator('figure.chart-box', { hasText: 'Message rates' });
    await ratesBox.filter({ hasText: /Publish\s*[1-9]/ }).waitFor({ timeout: 20000 }).catch(async () => {
      throw new Error(`[${step}] the publish rate never showed: ${await ratesBox.innerText()} (sent ${sent})`);
    });
    passed += 1;
    await page.waitForTimeout(5500);
    clearInterval(traffic);
    const overviewText = await page.locator('main').innerText();
    check(/Queues\s+1\b/.test(overviewText), 'overview counts the queue');
    check(/Messages ready\s+[1-9]/.test(overviewText), 'overview counts ready messages');
    check(/amqp/.test(overviewText) && /http/.test(overviewText), 'listeners are listed');
    check(await page.locator('svg.chart polyline').count() >= 6, 'two charts with three series');
    check(/Ready\s+[1-9]/.test(await page.locator('figure.chart-box', { hasText: 'Queued messages' }).innerText()), 'queued-messages legend shows ready messages');
    await shot(page, 'overview');

    step = 'declare queue';
    await go(page, '#/queues', 'Queues');
    const declare = page.locator('details', { hasText: 'Add a new queue' }).locator('form.action');
    await declare.getByLabel('Name').fill('console-orders');
    await declare.getByLabel('Arguments key').fill('x-max-length');
    await declare.getByLabel('Arguments value').fill('1000');
    await declare.getByLabel('Arguments type').selectOption('Number');
    await declare.getByRole('button', { name: 'Add queue' }).click();
    await flashed(page, 'Queue console-orders declared.');
    await page.getByRole('link', { name: 'console-orders' }).waitFor();
    const q = await api('GET', '/queues/%2F/console-orders');
    check(q.status === 200 && q.body.arguments['x-max-length'] === 1000, `queue declared with x-max-length 1000 (got ${JSON.stringify(q.body && q.body.arguments)})`);
    await shot(page, 'queues');

    step = 'publish and watch depth';
    await page.getByRole('link', { name: 'console-orders' }).click();
    await page.getByRole('heading', { level: 1, name: 'Queue console-orders' }).waitFor();
    check((await page.locator('.ready').innerText()) === '0', 'new queue is empty');
    const pub = page.locator('form.action', { hasText: 'Publish message' });
    await pub.getByLabel('Payload').fill('hello from the console');
    await pub.getByRole('button', { name: 'Publish message' }).click();
    await flashed(page, 'Message published.');
    await page.locator('.ready').filter({ hasText: /^1$/ }).waitFor({ timeout: 15000 });
    passed += 1;
    await shot(page, 'queue-one-message');

    step = 'get message';
    const getForm = page.locator('form.action', { hasText: 'Get messages' });
    await getForm.getByLabel('Ack mode').selectOption('ack_requeue_false');
    await getForm.getByRole('button', { name: 'Get messages' }).click();
    await flashed(page, 'Got 1 message.');
    check((await page.locator('pre.payload').innerText()) === 'hello from the console', 'the payload is shown');
    await page.locator('.ready').filter({ hasText: /^0$/ }).waitFor({ timeout: 15000 });
    passed += 1;
    await shot(page, 'queue-got-message');

    step = 'exchange';
    await go(page, '#/exchanges', 'Exchanges');
    await page.getByRole('link', { name: 'amq.topic' }).waitFor();
    await page.locator('summary', { hasText: 'Add a new exchange' }).click();
    const exForm = page.locator('details', { hasText: 'Add a new exchange' }).locator('form.action');
    await exForm.getByLabel('Name').fill('console-events');
    await exForm.getByLabel('Type', { exact: true }).selectOption('fanout');
    await exForm.getByRole('button', { name: 'Add exchange' }).click();
    await flashed(page, 'Exchange declared.');
    await shot(page, 'exchanges');
    await page.getByRole('link', { name: 'console-events' }).click();
    await page.getByRole('heading', { level: 1, name: 'Exchange console-events' }).waitFor();
    const bind = page.locator('form.action', { hasText: 'Add binding' });
    await bind.getByLabel('To').fill('console-orders');
    await bind.getByRole('button', { name: 'Bind' }).click();
    await flashed(page, 'Binding added.');
    await page.getByRole('link', { name: 'console-orders' }).first().waitFor();
    const exPub = page.locator('form.action', { hasText: 'Publish message' });
    await exPub.getByLabel('Payload').fill('via the fanout');
    await exPub.getByRole('button', { name: 'Publish message' }).click();
    await flashed(page, 'Message published.');
    const after = await api('GET', '/queues/%2F/console-orders');
    check(after.body.messages === 1, `the fanout routed to console-orders (depth ${after.body.messages})`);
    await shot(page, 'exchange');

    step = 'create user and permission';
    await go(page, '#/admin/users', 'Admin');
    const userForm = page.locator('form.action', { hasText: 'Add / update a user' });
    await userForm.getByLabel('Username').fill('console-viewer');
    await userForm.getByLabel('Password').fill('viewer-pass');
    await userForm.getByLabel('Tags (comma-separated)').fill('management');
    await userForm.getByRole('button', { name: 'Add / update user' }).click();
    await flashed(page, 'User console-viewer saved.');
    const permForm = page.locator('form.action', { hasText: 'Set permission' });
    await permForm.getByLabel('User').fill('console-viewer');
    await permForm.getByRole('button', { name: 'Set permission' }).click();
    await flashed(page, 'Permission set.');
    await page.locator('table', { hasText: 'console-viewer' }).first().waitFor();
    const u = await api('GET', '/users/console-viewer');
    check(u.status === 200 && JSON.stringify(u.body.tags).includes('management'), 'user exists with tag management');
    const perm = await api('GET', '/permissions/%2F/console-viewer');
    check(perm.status === 200 && perm.body.configure === '.*', 'permission on / set');
    await shot(page, 'admin-users');

    step = 'policy';
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('heading', { level: 2, name: 'Policies' }).waitFor();
    const polForm = page.locator('form.action', { hasText: 'Add / update a policy' });
    await polForm.getByLabel('Name').fill('console-limit');
    await polForm.getByLabel('Pattern').fill('^console-');
    await polForm.getByLabel('Apply to').selectOption('queues');
    await polForm.getByLabel('Definition key').fill('max-length');
    await polForm.getByLabel('Definition value').fill('10');
    await polForm.getByLabel('Definition type').selectOption('Number');
    await polForm.getByRole('button', { name: 'Add / update policy' }).click();
    await flashed(page, 'Policy console-limit saved.');
    await page.locator('table', { hasText: 'console-limit' }).waitFor();
    const pol = await api('GET', '/policies/%2F/console-limit');
    check(pol.status === 200 && pol.body.definition['max-length'] === 10 && pol.body['apply-to'] === 'queues', 'policy stored as typed');
    await shot(page, 'admin-policies');
    await page.getByRole('link', { name: 'Virtual hosts' }).click();
    await page.getByRole('heading', { level: 2, name: 'Virtual hosts' }).waitFor();
    await page.locator('table', { hasText: 'Description' }).waitFor();
    await shot(page, 'admin-vhosts');
    await page.getByRole('link', { name: 'Limits' }).click();
    const limForm = page.locator('form.action', { hasText: 'Set virtual host limit' });
    await limForm.getByLabel('Value').fill('500');
    await limForm.getByRole('button', { name: 'Set limit' }).click();
    await flashed(page, 'Limit set.');
    await page.locator('table', { hasText: 'max-connections' }).waitFor();
    await shot(page, 'admin-limits');
    await page.locator('table', { hasText: 'max-connections' }).getByRole('button', { name: 'Clear' }).click();
    await flashed(page, 'Limit cleared.');

    step = 'queue shows policy';
    await go(page, '#/queues/%2F/console-orders', 'Queue console-orders');
    await page.locator('dl.facts dd', { hasText: 'console-limit' }).waitFor({ timeout: 10000 });
    passed += 1;

    step = 'connections and channels';
    await ch.prefetch(7);
    await ch.consume('console-traffic', () => {}, { noAck: false });
    const closed = new Promise((resolve) => conn.once('close', resolve));
    await go(page, '#/connections', 'Connections');
    const connLink = page.locator('table a[href^="#/connections/"]');
    await connLink.first().waitFor({ timeout: 10000 });
    check(await connLink.count() === 1, 'one connection listed');
    await shot(page, 'connections');
    await go(page, '#/channels', 'Channels');
    await page.locator('table tbody tr').first().waitFor();
    const chanRow = await page.locator('table tbody tr').first().innerText();
    check(/\b7\b/.test(chanRow), `channel shows prefetch 7 (${chanRow})`);
    await shot(page, 'channels');
    await go(page, '#/connections', 'Connections');
    await connLink.first().click();
    await page.getByRole('heading', { level: 1, name: /^Connection / }).waitFor();
    await page.locator('table', { hasText: 'Prefetch' }).waitFor();
    await shot(page, 'connection');
    const closeForm = page.locator('form.action', { hasText: 'Force close' });
    await closeForm.getByLabel('Reason').fill('closed by the console test');
    await closeForm.getByRole('button', { name: 'Force close' }).click();
    await flashed(page, 'Connection closed.');
    const err = await Promise.race([closed, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
    check(err !== 'timeout' && /CONNECTION_FORCED - closed by the console test/.test(String(err && err.message)), `client saw 320 with the reason (${err && err.message})`);
    conn = null;
    await page.getByRole('heading', { level: 1, name: 'Connections' }).waitFor();
    await page.getByText('No connections.').waitFor({ timeout: 10000 });
    passed += 1;

    step = 'definitions';
    await go(page, '#/', 'Overview');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download broker definitions' }).click(),
    ]);
    const defs = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
    check(defs.queues.some((x) => x.name === 'console-orders') && defs.policies.some((x) => x.name === 'console-limit'), 'export has the queue and the policy');
    const importFile = path.join(profile, 'import.json');
    fs.writeFileSync(importFile, JSON.stringify({ queues: [{ name: 'console-imported', vhost: '/', durable: true, auto_delete: false, arguments: {} }] }));
    await page.getByLabel('Definitions file').setInputFiles(importFile);
    await page.getByRole('button', { name: 'Upload broker definitions' }).click();
    await flashed(page, 'Definitions imported.');
    check((await api('GET', '/queues/%2F/console-imported')).status === 200, 'imported queue exists');
    await shot(page, 'overview-definitions');

    step = 'keyboard only';
    const kb = await context.newPage();
    kb.on('dialog', (d) => d.accept());
    kb.on('pageerror', (e) => pageErrors.push(String(e)));
    await kb.goto(w.base);
    await kb.locator('#login-user').waitFor();
    // The login form focuses the username; type, Tab to the password, Enter submits.
    check(await kb.evaluate(() => document.activeElement.id === 'login-user'), 'username has focus on load');
    await kb.keyboard.type('guest');
    await kb.keyboard.press('Tab');
    await kb.keyboard.type('guest');
    await kb.keyboard.press('Enter');
    await kb.locator('#who-name').filter({ hasText: 'guest' }).waitFor();
    await tabTo(kb, 'the Queues tab', () => document.activeElement.textContent === 'Queues' && document.activeElement.tagName === 'A');
    const ring = await kb.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(ring !== 'none', `focused tab has a visible outline (${ring})`);
    await kb.keyboard.press('Enter');
    await kb.getByRole('heading', { level: 1, name: 'Queues' }).waitFor();
    await tabTo(kb, 'the queue name field', () => document.activeElement.name === 'name' && document.activeElement.closest('form.action') !== null);
    await kb.keyboard.type('kbd-queue');
    await kb.keyboard.press('Enter');
    await kb.locator('#status p', { hasText: 'Queue kbd-queue declared.' }).waitFor();
    passed += 1;
    await kb.locator('a', { hasText: 'kbd-queue' }).waitFor();
    await kb.evaluate(() => document.getElementById('main').focus());
    await tabTo(kb, 'the kbd-queue link', () => document.activeElement.textContent === 'kbd-queue');
    await shot(kb, 'keyboard-focus');
    await kb.keyboard.press('Enter');
    await kb.getByRole('heading', { level: 1, name: 'Queue kbd-queue' }).waitFor();
    await tabTo(kb, 'the Purge button', () => document.activeElement.textContent === 'Purge messages');
    await kb.keyboard.press('Enter');
    await kb.locator('#status p', { hasText: 'Queue purged.' }).waitFor();
    passed += 1;
    await kb.close();

    step = 'non-admin user';
    const na = await context.newPage();
    na.on('pageerror', (e) => pageErrors.push(String(e)));
    await login(na, w.base, 'console-viewer', 'viewer-pass');
    check(!(await na.getByRole('link', { name: 'Admin' }).isVisible()), 'a management user sees no Admin tab');
    check(await na.getByRole('link', { name: 'Queues' }).isVisible(), 'but sees Queues');
    await na.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await na.locator('dl.facts').first().waitFor();
    check(!(await na.getByRole('heading', { name: 'Node' }).isVisible()), 'no node section without monitoring');
    check(!(await na.getByRole('button', { name: 'Download broker definitions' }).isVisible()), 'no definitions without administrator');
    await shot(na, 'non-admin-overview');
    await go(na, '#/admin', 'Not found');
    await go(na, '#/queues', 'Queues');
    await na.getByRole('link', { name: 'console-orders' }).waitFor();
    passed += 1;
    await shot(na, 'non-admin-queues');
    await na.close();

    step = 'policymaker and monitoring users';
    for (const [user, tag] of [['console-policy', 'policymaker'], ['console-monitor', 'monitoring']]) {
      check((await api('PUT', `/users/${user}`, { password: 'pw', tags: tag })).status === 201, `created ${user}`);
      check((await api('PUT', `/permissions/%2F/${user}`, { configure: '.*', write: '.*', read: '.*' })).status === 201, `permission for ${user}`);
      const p = await context.newPage();
      p.on('pageerror', (e) => pageErrors.push(String(e)));
      await login(p, w.base, user, 'pw');
      await p.locator('dl.facts').first().waitFor();
      const adminTab = await p.getByRole('link', { name: 'Admin' }).isVisible();
      const nodeShown = await p.getByRole('heading', { name: 'Node' }).isVisible();
      if (tag === 'policymaker') {
        check(adminTab && !nodeShown, 'a policymaker sees Admin but not the node');
        await go(p, '#/admin', 'Admin');
        await p.getByRole('heading', { level: 2, name: 'Policies' }).waitFor();
        const subs = await p.locator('nav.subnav a').allInnerTexts();
        check(JSON.stringify(subs) === '["Policies"]', `a policymaker's admin shows Policies only (${subs})`);
        await p.locator('table', { hasText: 'console-limit' }).waitFor();
        passed += 1;
        await shot(p, 'policymaker-admin');
      } else {
        check(!adminTab && nodeShown, 'a monitoring user sees the node but not Admin');
        await shot(p, 'monitoring-overview');
      }
      await p.close();
    }

    step = `${BULK} queues`;
    if (BULK > 0) {
      const bulk = await amqp.connect(w.amqpUrl);
      const bch = await bulk.createChannel();
      const names = Array.from({ length: BULK }, (_, i) => `bulk-${String(i).padStart(5, '0')}`);
      for (let i = 0; i < names.length; i += 1000) {
        await Promise.all(names.slice(i, i + 1000).map((n) => bch.assertQueue(n, { durable: false })));
      }
      await bulk.close();
      const total = BULK + 4;
      const started = Date.now();
      await go(page, '#/queues', 'Queues');
      await page.locator('#queues-summary').filter({ hasText: `${total.toLocaleString('en-US')} queues` }).waitFor({ timeout: 20000 });
      const loadMs = Date.now() - started;
      log(`queues page with ${total} queues: first page rendered in ${loadMs} ms (measured, not asserted)`);
      check(await page.locator('table tbody tr').count() === 100, 'one page of 100 rows');
      await shot(page, 'queues-10000');
      await page.getByLabel('Filter queues by name').fill('bulk-0999');
      await page.locator('#queues-summary').filter({ hasText: /^10 queues \(filtered from/ }).waitFor({ timeout: 10000 });
      passed += 1;
      await page.getByLabel('Regex').check();
      await page.getByLabel('Filter queues by name').fill('^bulk-0000[1-3]$');
      await page.locator('#queues-summary').filter({ hasText: /^3 queues/ }).waitFor({ timeout: 10000 });
      passed += 1;
      await page.getByLabel('Regex').uncheck();
      await page.getByLabel('Filter queues by name').fill('');
      await page.locator('#queues-summary').filter({ hasText: 'page 1 of' }).waitFor({ timeout: 10000 });
      // Sorted by name ascending by default; one press of the header reverses it.
      await page.locator('th[aria-sort="ascending"]', { hasText: 'Name' }).waitFor();
      await page.getByRole('button', { name: /^Name/ }).click();
      await page.locator('th[aria-sort="descending"]', { hasText: 'Name' }).waitFor();
      const first = await page.locator('table tbody tr td:nth-child(2)').first().innerText();
      check(first === 'kbd-queue', `sorted by name descending, first is kbd-queue (${first})`);
      await page.getByRole('button', { name: 'Next' }).click();
      await page.locator('#queues-summary').filter({ hasText: 'page 2 of' }).waitFor();
      passed += 1;
      await shot(page, 'queues-page-2');
    }

    check(pageErrors.length === 0, `no JavaScript errors (${pageErrors.join('; ')})`);
  } finally {
    clearInterval(traffic);
    if (conn) await conn.close().catch(() => {});
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    await stopWarren(w);
  }
}

main().then(() => {
  log(`${passed} checks passed; screenshots in ${SHOTS}`);
}, (e) => {
  console.error(`console-test: FAILED after ${passed} checks: ${e.message}`);
  process.exitCode = 1;
});
