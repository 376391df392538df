// Helpers shared by the amqplib scenario modules: the scenario registry and main(), World
// (one connection plus cleanup of what a scenario declared), collect, channel errors.
'use strict';

const path = require('path');
const crypto = require('crypto');
const util = require('util');
const amqp = require(path.join(__dirname, '..', 'node', 'node_modules', 'amqplib'));
const defs = require(path.join(__dirname, '..', 'node', 'node_modules', 'amqplib', 'lib', 'defs'));

const SCENARIOS = new Map();
function scenario(name, fn) { SCENARIOS.set(name, fn); }

class Fail extends Error {}
class Skip extends Error {}

function check(cond, msg) { if (!cond) throw new Fail(msg); }
function show(v) { return util.inspect(v, { depth: 5, breakLength: Infinity }); }
function eq(got, want, what) {
  if (!util.isDeepStrictEqual(got, want)) throw new Fail(`${what}: got ${show(got)}, want ${show(want)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(pred, ms = 5000, step = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v || Date.now() > end) return v;
    await sleep(step);
  }
}
function unique(tag) { return `conf.${tag}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`; }
function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

// ------------------------------------------------------------------ world

class World {
  constructor(url) { this.url = url; this.conns = []; this.queues = []; this.exchanges = []; }

  static async open(url, opts = {}) {
    const w = new World(url);
    w.conn = await w.connect(opts.urlSuffix || '');
    w.ch = await w.channel(true); // a confirm channel: publish() resolves once the broker acked
    return w;
  }

  async connect(suffix = '') {
    const c = await amqp.connect(this.url + suffix, { timeout: 10000 });
    c.on('error', () => {});
    this.conns.push(c);
    return c;
  }

  async channel(confirm = false, conn = null) {
    const c = conn || this.conn;
    const ch = confirm ? await c.createConfirmChannel() : await c.createChannel();
    ch.on('error', () => {});
    return ch;
  }

  async queue(tag, opts = {}, ch = null) {
    const name = unique(tag);
    const ok = await (ch || this.ch).assertQueue(name, opts);
    this.queues.push(name);
    return ok.queue;
  }

  // A unique queue name deleted at the end, for a queue the scenario declares itself.
  queueName(tag) {
    const name = unique(tag);
    this.queues.push(name);
    return name;
  }

  async exchange(tag, type, opts = {}, ch = null) {
    const name = unique(tag);
    await (ch || this.ch).assertExchange(name, type, opts);
    this.exchanges.push(name);
    return name;
  }

  publish(ex, rk, body, opts = {}, ch = null) {
    const c = ch || this.ch;
    return new Promise((resolve, reject) => {
      c.publish(ex, rk, Buffer.isBuffer(body) ? body : Buffer.from(body), opts,
        (err) => (err ? reject(new Fail(`publish nacked: ${err}`)) : resolve()));
    });
  }

  async count(q) { return (await this.ch.checkQueue(q)).messageCount; }

  async close() {
    for (const c of this.conns) { try { await c.close(); } catch (e) { /* already closed */ } }
    if (!this.queues.length && !this.exchanges.length) return;
    try {
      const c = await amqp.connect(this.url);
      c.on('error', () => {});
      for (const q of this.queues) {
        const ch = await c.createChannel(); ch.on('error', () => {});
        try { await ch.deleteQueue(q); await ch.close(); } catch (e) { /* gone */ }
      }
      for (const e of this.exchanges) {
        const ch = await c.createChannel(); ch.on('error', () => {});
        try { await ch.deleteExchange(e); await ch.close(); } catch (err) { /* gone */ }
      }
      await c.close();
    } catch (e) { /* best effort */ }
  }
}

async function withWorld(url, fn, opts) {
  const w = await World.open(url, opts);
  try { return await fn(w); } finally { await w.close(); }
}

// Consume until n messages arrived (then settle ms more); returns {msgs, tag}.
async function collect(ch, q, n, { timeout = 5000, noAck = true, settle = 0, cancel = noAck } = {}) {
  const msgs = [];
  const { consumerTag } = await ch.consume(q, (m) => { if (m) msgs.push(m); }, { noAck });
  await waitUntil(() => msgs.length >= n, timeout);
  if (settle) await sleep(settle);
  if (cancel) await ch.cancel(consumerTag);
  return { msgs, tag: consumerTag };
}

function parseClose(err) {
  const m = /with message "([\s\S]*)"$/.exec(err.message || '');
  return { code: err.code, text: m ? m[1] : err.message };
}

// Runs fn(ch) on a fresh channel and expects the broker to close that channel with code/text.
async function expectChannelError(w, fn, code, textRe, conn = null) {
  const ch = await w.channel(false, conn);
  let closeErr = null;
  ch.on('error', (e) => { closeErr = e; });
  let err = null;
  try {
    await fn(ch);
    await waitUntil(() => closeErr, 3000);
    err = closeErr;
  } catch (e) {
    err = e;
  }
  if (!err || err.code === undefined) throw new Fail(`no channel.close ${code} (${err ? err.message : 'call succeeded'})`);
  const { code: got, text } = parseClose(err);
  eq(got, code, 'reply code');
  check(new RegExp(`^${textRe}$`).test(text), `reply text ${show(text)} does not match /${textRe}/`);
  return `${got} ${text}`;
}

async function stillUsable(w) {
  const ch = await w.channel();
  await ch.assertQueue('', { exclusive: true });
  await ch.close();
}

async function gone(w, q) {
  const ch = await w.channel();
  try {
    await ch.checkQueue(q);
    await ch.close();
    return false;
  } catch (e) {
    return e.code === 404;
  }
}

async function drain(ch, q) {
  const out = [];
  for (;;) {
    const m = await ch.get(q, { noAck: true });
    if (!m) return out;
    out.push(m);
  }
}

// publish on a confirm channel: resolves to 'ack' or 'nack'.
function publishOutcome(ch, ex, rk, body, opts = {}) {
  return new Promise((resolve) => {
    ch.publish(ex, rk, Buffer.isBuffer(body) ? body : Buffer.from(body), opts,
      (err) => resolve(err ? 'nack' : 'ack'));
  });
}

// Waits until the queue's message count is n; returns the last count seen.
async function waitCount(w, q, n, ms = 3000) {
  let last = null;
  await waitUntil(async () => { last = await w.count(q); return last === n; }, ms, 50);
  return last;
}

// [code, text] of a failing passive declare on a new channel, false while the queue exists.
// A passive declare renews an x-expires lease, as in RabbitMQ.
async function queueGone(w, q) {
  const ch = await w.channel();
  try {
    await ch.checkQueue(q);
    await ch.close();
    return false;
  } catch (e) {
    const { code, text } = parseClose(e);
    return [code, text];
  }
}

// ------------------------------------------------------------------ main

function emit(name, status, detail) {
  process.stdout.write(JSON.stringify({ scenario: name, status, detail }) + '\n');
}

async function main() {
  const [url, which] = process.argv.slice(2);
  if (!which) { console.error('usage: amqplib_scenarios.js URL SCENARIO|all|list'); process.exit(2); }
  if (which === 'list') { for (const n of SCENARIOS.keys()) console.log(n); return; }
  const names = which === 'all' ? [...SCENARIOS.keys()] : [which];
  for (const name of names) {
    const fn = SCENARIOS.get(name);
    if (!fn) { emit(name, 'skip', 'not implemented for this client'); continue; }
    const t0 = Date.now();
    try {
      const d = await fn(url);
      emit(name, 'pass', `${d || ''} (${((Date.now() - t0) / 1000).toFixed(2)}s)`.trim());
    } catch (e) {
      if (e instanceof Skip) emit(name, 'skip', e.message);
      else if (e instanceof Fail) emit(name, 'fail', e.message);
      else emit(name, 'fail', `${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
    }
  }
}

module.exports = {
  amqp, defs, crypto, util, SCENARIOS, scenario, Fail, Skip, check, show, eq, sleep, waitUntil, unique,
  escapeRe, World, withWorld, collect, parseClose, expectChannelError, stillUsable, gone, drain,
  publishOutcome, waitCount, queueGone, main,
};
