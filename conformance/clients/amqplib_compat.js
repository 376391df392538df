// amqplib scenarios: RabbitMQ behaviours that client code relies on (issue 12): update-secret,
// idempotent unbinds, channel.flow active=false.
'use strict';

const {
  defs, scenario, check, eq, waitUntil, unique, withWorld, parseClose, waitCount,
} = require('./amqplib_common');

scenario('update_secret', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-secret');
  await w.conn.updateSecret(Buffer.from('guest'), 'rotation');
  const ok = await w.ch.checkQueue(q);
  eq(ok.queue, q, 'passive declare after update-secret');
  const ch2 = await w.channel();
  await ch2.assertQueue('', { exclusive: true });
  return 'update-secret-ok, connection and channels usable';
}));

scenario('unbind_idempotent', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-unbind');
  const x = await w.exchange('x-unbind', 'direct');
  const x2 = await w.exchange('x-unbind2', 'fanout');
  const ch = await w.channel();
  let closed = null;
  ch.on('error', (e) => { closed = e; });
  await ch.unbindQueue(q, x, 'never-bound');
  await ch.unbindQueue(unique('q-missing'), x, 'k');
  await ch.unbindQueue(q, unique('x-missing'), 'k');
  await ch.bindQueue(q, x, 'k');
  await ch.unbindQueue(q, x, 'k');
  await ch.unbindQueue(q, x, 'k');
  await ch.unbindExchange(x2, x, 'never-bound');
  await ch.unbindExchange(unique('x-missing'), x, 'k');
  await ch.unbindExchange(x2, unique('x-missing'), 'k');
  check(closed === null, `channel closed: ${closed && closed.message}`);
  await ch.close();
  return '8 unbinds of missing things answered unbind-ok';
}));

scenario('channel_flow_inactive', (url) => withWorld(url, async (w) => {
  const c = await w.connect();
  let connErr = null;
  c.on('error', (e) => { connErr = e; });
  const ch = await c.createChannel();
  ch.on('error', () => {});
  const ok = await ch.rpc(defs.ChannelFlow, { active: true }, defs.ChannelFlowOk);
  eq(ok.active, true, 'flow-ok active');
  ch.rpc(defs.ChannelFlow, { active: false }, defs.ChannelFlowOk).catch(() => {});
  await waitUntil(() => connErr, 3000);
  const { code, text } = parseClose(connErr);
  eq(code, 540, 'reply code');
  eq(text, 'NOT_IMPLEMENTED - active=false', 'reply text');
  return `${code} ${text}`;
}));

scenario('handshake_frame_limit', async (url) => {
  const { amqp } = require('./amqplib_common');
  const small = await amqp.connect(url, { timeout: 10000, clientProperties: { big: 'x'.repeat(3500) } });
  await small.close();
  let refused = null;
  try {
    const c = await amqp.connect(url, { timeout: 10000, clientProperties: { big: 'x'.repeat(5000) } });
    await c.close();
  } catch (e) {
    refused = e;
  }
  check(refused, 'a connection.start-ok larger than 4096 bytes was accepted');
  return `3500-byte properties accepted; 5000-byte refused (${refused.message.slice(0, 80)})`;
});

scenario('exchange_names_strip_cr_lf', (url) => withWorld(url, async (w) => {
  // CR and LF are removed from exchange names in declares, bindings and deletes (issue 12
  // item 6).
  const base = unique('x-crlf');
  w.exchanges.push(base);
  await w.ch.assertExchange(`${base.slice(0, 6)}\r\n${base.slice(6)}`, 'fanout');
  await w.ch.checkExchange(base);
  const q = await w.queue('q-crlf');
  await w.ch.bindQueue(q, `${base}\n`, '');
  await w.ch.publish(base, '', Buffer.from('m'));
  // RabbitMQ hands routed messages to queues asynchronously: poll the count.
  eq(await waitCount(w, q, 1), 1, 'routed through the exchange declared with CR/LF');
}));
