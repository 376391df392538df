// amqplib scenarios: reply codes and texts of common mistakes; the server's consumer cancel.
'use strict';

const {
  scenario, eq, sleep, waitUntil, unique, escapeRe, withWorld, expectChannelError, stillUsable,
} = require('./amqplib_common');

// ------------------------------------------------------------------ errors

scenario('error_404_passive_missing_queue', (url) => withWorld(url, async (w) => {
  const name = unique('q-missing');
  const d = await expectChannelError(w, (ch) => ch.checkQueue(name), 404,
    `NOT_FOUND - no queue '${escapeRe(name)}' in vhost '/'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_queue_redeclare', (url) => withWorld(url, async (w) => {
  const name = await w.queue('q-redecl', { durable: false });
  const d = await expectChannelError(w, (ch) => ch.assertQueue(name, { durable: true }), 406,
    `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${escapeRe(name)}' in vhost '/': received 'true' but current is 'false'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_exchange_redeclare', (url) => withWorld(url, async (w) => {
  const name = await w.exchange('ex-redecl', 'direct');
  const d = await expectChannelError(w, (ch) => ch.assertExchange(name, 'fanout'), 406,
    `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${escapeRe(name)}' in vhost '/': received 'fanout' but current is 'direct'`);
  await stillUsable(w);
  return d;
}));

scenario('error_405_exclusive_other_connection', (url) => withWorld(url, async (w) => {
  const name = unique('q-locked');
  await w.ch.assertQueue(name, { exclusive: true });
  const c2 = await w.connect();
  const text = `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${escapeRe(name)}' in vhost '/'\\. `
    + 'It could be originally declared on another connection or the exclusive property value does not match '
    + 'that of the original declaration\\.';
  const d = await expectChannelError(w, (ch) => ch.consume(name, () => {}), 405, text, c2);
  await expectChannelError(w, (ch) => ch.checkQueue(name), 405, text, c2);
  await expectChannelError(w, (ch) => ch.assertQueue(name, { exclusive: true }), 405, text, c2);
  return d;
}));

scenario('error_403_amq_prefix', (url) => withWorld(url, async (w) => {
  const name = 'amq.' + unique('x');
  const d = await expectChannelError(w, (ch) => ch.assertExchange(name, 'direct'), 403,
    `ACCESS_REFUSED - exchange name '${escapeRe(name)}' contains reserved prefix 'amq\\.\\*'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_unknown_delivery_tag', (url) => withWorld(url, async (w) => {
  const d = await expectChannelError(w, async (ch) => {
    ch.ack({ fields: { deliveryTag: 999 } });
    await ch.assertQueue('', { exclusive: true });
    await sleep(500);
    await ch.assertQueue('', { exclusive: true });
  }, 406, 'PRECONDITION_FAILED - unknown delivery tag 999');
  await stillUsable(w);
  return d;
}));

scenario('consumer_cancel_on_delete', (url) => withWorld(url, async (w) => {
  const q = unique('q-cancel');
  await w.ch.assertQueue(q);
  const ch = await w.channel();
  const events = [];
  const { consumerTag } = await ch.consume(q, (m) => events.push(m === null ? 'cancel' : 'msg'), { noAck: true });
  await w.ch.deleteQueue(q);
  await waitUntil(() => events.length, 5000);
  eq(events, ['cancel'], 'basic.cancel from the server (amqplib calls the consumer with null)');
  await ch.assertQueue('', { exclusive: true }); // channel still open
  return `cancelled ${consumerTag}`;
}));
