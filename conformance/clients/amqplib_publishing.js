// amqplib scenarios: mandatory returns, publisher confirms, transactions (through
// channel.rpc: amqplib has no tx API), purge, body sizes, many channels.
'use strict';

const {
  defs, crypto, scenario, check, eq, sleep, waitUntil, waitCount, withWorld, collect, stillUsable,
} = require('./amqplib_common');

scenario('mandatory_return', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-mand', 'direct');
  const ch = await w.channel();
  const returned = [];
  ch.on('return', (m) => returned.push(m));
  ch.publish(ex, 'nowhere', Buffer.from('lost'), { mandatory: true, messageId: 'm1' });
  ch.publish(ex, 'nowhere', Buffer.from('dropped'));
  await waitUntil(() => returned.length, 5000);
  await sleep(300);
  eq(returned.length, 1, 'basic.return count');
  const m = returned[0];
  eq([m.fields.replyCode, m.fields.replyText, m.fields.exchange, m.fields.routingKey],
    [312, 'NO_ROUTE', ex, 'nowhere'], 'basic.return fields');
  eq([m.content.toString(), m.properties.messageId], ['lost', 'm1'], 'returned body/properties');
  // in confirm mode: the return comes before the ack, and the message is still acked
  const events = [];
  w.ch.on('return', () => events.push('return'));
  await w.publish(ex, 'nowhere', 'lost2', { mandatory: true });
  events.push('ack');
  eq(events, ['return', 'ack'], 'confirm-mode mandatory publish: return then ack');
}));

scenario('publisher_confirms', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-confirm');
  const acks = [];
  for (let i = 0; i < 50; i++) {
    w.ch.publish('', q, Buffer.from(`m${i}`), {}, (err) => acks.push(err ? 'nack' : 'ack'));
  }
  await w.ch.waitForConfirms();
  eq(acks.length, 50, 'confirm callbacks');
  check(acks.every((a) => a === 'ack'), `nacks: ${acks}`);
  await w.publish('amq.direct', 'nobody-' + q, 'x'); // unroutable, not mandatory: acked
  eq(await w.count(q), 50, 'messages in queue after confirmed publishes');
}));

// amqplib has no transaction API: tx.* go through its generic channel.rpc().
async function tx(ch, what) {
  const m = { select: [defs.TxSelect, defs.TxSelectOk], commit: [defs.TxCommit, defs.TxCommitOk],
    rollback: [defs.TxRollback, defs.TxRollbackOk] }[what];
  return ch.rpc(m[0], {}, m[1]);
}

scenario('tx_commit', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-tx');
  const ch = await w.channel();
  await tx(ch, 'select');
  for (let i = 0; i < 3; i++) ch.publish('', q, Buffer.from(`m${i}`));
  eq(await w.count(q), 0, 'messages visible before commit');
  await tx(ch, 'commit');
  // RabbitMQ's queues apply a commit asynchronously: poll, then assert
  await waitCount(w, q, 3);
  eq(await w.count(q), 3, 'messages after commit');
  let m = await ch.get(q, { noAck: false });
  ch.ack(m);
  await tx(ch, 'commit');
  m = await ch.get(q, { noAck: false });
  ch.ack(m);
  await tx(ch, 'rollback');
  await ch.close();
  await waitCount(w, q, 2);
  eq(await w.count(q), 2, 'ready messages after committed ack + rolled back ack + channel close');
  m = await w.ch.get(q, { noAck: true });
  eq([m.content.toString(), m.fields.redelivered], ['m1', true], 'message whose ack was rolled back');
  return 'tx.* sent with channel.rpc (amqplib has no tx API)';
}));

scenario('tx_rollback', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-txrb');
  const ch = await w.channel();
  await tx(ch, 'select');
  for (let i = 0; i < 3; i++) ch.publish('', q, Buffer.from(`m${i}`));
  await tx(ch, 'rollback');
  eq(await w.count(q), 0, 'messages after rollback');
  ch.publish('', q, Buffer.from('after'));
  await tx(ch, 'commit');
  await waitCount(w, q, 1);
  eq(await w.count(q), 1, 'messages after publish+commit following rollback');
  const m = await w.ch.get(q, { noAck: true });
  eq(m.content.toString(), 'after', 'body');
  return 'tx.* sent with channel.rpc (amqplib has no tx API)';
}));

scenario('purge', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-purge');
  for (let i = 0; i < 5; i++) await w.publish('', q, 'x');
  eq((await w.ch.purgeQueue(q)).messageCount, 5, 'purge-ok message_count');
  eq(await w.count(q), 0, 'messages after purge');
  eq((await w.ch.purgeQueue(q)).messageCount, 0, 'second purge-ok message_count');
}));

function bodySize(sizeFn) {
  return (url) => withWorld(url, async (w) => {
    const q = await w.queue('q-size');
    const fm = w.conn.connection.frameMax;
    const size = sizeFn(fm);
    const body = crypto.randomBytes(size);
    await w.publish('', q, body, { messageId: 'sz' });
    const { msgs } = await collect(w.ch, q, 1, { timeout: 15000 });
    eq(msgs.length, 1, 'deliveries');
    eq(msgs[0].content.length, size, 'body length');
    check(msgs[0].content.equals(body), 'body bytes differ');
    return `${size} bytes (frame_max ${fm})`;
  });
}

scenario('body_0b', bodySize(() => 0));
scenario('body_1b', bodySize(() => 1));
scenario('body_frame_max_minus_1', bodySize((fm) => fm - 1));
scenario('body_10mib', bodySize(() => 10 * 1024 * 1024));

scenario('many_channels', (url) => withWorld(url, async (w) => {
  const chans = [];
  for (let i = 0; i < 50; i++) chans.push(await w.channel());
  eq(new Set(chans.map((c) => c.ch)).size, 50, 'distinct channel numbers');
  for (let i = 0; i < chans.length; i++) {
    const c = chans[i];
    const q = (await c.assertQueue('', { exclusive: true })).queue;
    c.sendToQueue(q, Buffer.from(`c${i}`));
    const m = await waitUntil(() => c.get(q, { noAck: true }), 3000);
    eq(m && m.content.toString(), `c${i}`, `body on channel ${c.ch}`);
  }
  for (const c of chans) await c.close();
  await stillUsable(w);
}));
