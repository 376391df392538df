// amqplib scenarios (issue 12): a channel-wide prefetch over several queues goes round the
// queues (see pika_fairness.py).
'use strict';

const { scenario, check, eq, withWorld, waitUntil } = require('./amqplib_common');

function longestRun(seq) {
  let best = 0; let run = 0;
  seq.forEach((x, i) => { run = i && seq[i - 1] === x ? run + 1 : 1; best = Math.max(best, run); });
  return best;
}

scenario('global_prefetch_serves_every_queue', (url) => withWorld(url, async (w) => {
  const queues = [];
  for (let i = 0; i < 3; i += 1) queues.push(await w.queue(`fair${i}`));
  for (const q of queues) {
    for (let n = 0; n < 20; n += 1) await w.ch.sendToQueue(q, Buffer.from(`${n}`));
  }
  const ch = await w.channel();
  await ch.prefetch(1, true);
  const seq = [];
  for (const q of queues) {
    await ch.consume(q, (m) => { seq.push(queues.indexOf(m.fields.routingKey)); ch.ack(m); });
  }
  await waitUntil(() => seq.length >= 30, 8000);
  const first = seq.slice(0, 30);
  eq(first.length, 30, 'deliveries');
  const counts = [0, 1, 2].map((i) => first.filter((x) => x === i).length);
  // RabbitMQ's limiter unblocks queues in a racy order (runs of 11 seen); one queue drained
  // (20 in a row) before the others get one must not happen.
  check(Math.min(...counts) >= 1 && longestRun(first) < 20,
    `one channel-wide slot goes round the queues: ${first.join('')}`);
  return first.join('');
}));
