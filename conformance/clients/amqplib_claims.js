// amqplib scenarios: what RabbitMQ checks in a publish's properties before routing it (issue
// 12): the user_id claim, and the type of the CC and BCC headers.
'use strict';

const {
  scenario, eq, escapeRe, withWorld, expectChannelError, waitCount,
} = require('./amqplib_common');

function user(url) {
  return decodeURIComponent(new URL(url).username || 'guest');
}

scenario('user_id_foreign_closes_channel_406', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-uid');
  const d = await expectChannelError(w, async (ch) => {
    ch.sendToQueue(q, Buffer.from('claimed'), { userId: 'someone-else' });
    await ch.checkQueue(q);
  }, 406, `PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was '${escapeRe(user(url))}'`);
  eq(await w.count(q), 0, 'the refused message was not routed');
  return d;
}));

scenario('user_id_own_is_accepted', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-uid-own');
  w.ch.sendToQueue(q, Buffer.from('mine'), { userId: user(url) });
  await waitCount(w, q, 1);
  const m = await w.ch.get(q, { noAck: true });
  eq([m && m.content.toString(), m && m.properties.userId], ['mine', user(url)], 'delivered with its user_id');
}));

scenario('cc_header_not_array_closes_channel_406', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-cc');
  const q2 = await w.queue('q-cc2');
  const d = await expectChannelError(w, async (ch) => {
    ch.sendToQueue(q, Buffer.from('m'), { headers: { CC: q2 } });
    await ch.checkQueue(q);
  }, 406, 'PRECONDITION_FAILED - invalid message: \\{unacceptable_type_in_header,"CC",longstr\\}');
  eq([await w.count(q), await w.count(q2)], [0, 0], 'nothing routed');
  return d;
}));
