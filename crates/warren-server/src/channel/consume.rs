//! Consumers and deliveries: `basic.qos`, `basic.consume`, `basic.cancel`, `basic.get`,
//! `basic.recover`, and the deliveries queues push to this channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use warren_broker::{
    Access, ConsumeArgs, Consumer, Delivery, GetResult, Queue, Settle, generate_consumer_tag,
};
use warren_codec::{
    BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicDeliver, BasicGet,
    BasicGetEmpty, BasicGetOk, BasicQos, BasicQosOk, BasicRecoverOk, Method, ReplyCode, ShortStr,
    encode_content,
};

use super::access::Kind;
use super::reply_to::PSEUDO_QUEUE;
use super::{Channel, ConsumerEntry, Unacked, settle_grouped};
use crate::connection::{AmqpError, AmqpResult, Ctx, ParkedGet};

static NEXT_CONSUMER_ID: AtomicU64 = AtomicU64::new(1);

impl Channel {
    pub(super) fn basic_qos(&mut self, ctx: &mut Ctx, m: BasicQos) -> AmqpResult {
        if m.prefetch_size != 0 {
            return Err(AmqpError::new(
                ReplyCode::NotImplemented,
                format!("prefetch_size!=0 ({})", m.prefetch_size),
            ));
        }
        let count = u32::from(m.prefetch_count);
        if m.global {
            self.limit.global_prefetch.store(count, Ordering::Release);
            self.redispatch_all();
        } else {
            self.consumer_prefetch = count;
        }
        ctx.send(self.id, BasicQosOk);
        Ok(())
    }

    pub(super) fn basic_consume(&mut self, ctx: &mut Ctx, m: BasicConsume) -> AmqpResult {
        let queue_name = self.resolve_queue(&m.queue)?;
        // RabbitMQ expands an empty name first: consuming "" after declaring the pseudo-queue
        // makes a reply consumer too.
        if queue_name.as_bytes() == PSEUDO_QUEUE {
            return self.reply_consume(ctx, m);
        }
        // RabbitMQ refuses a reused consumer tag before it checks permissions.
        if m.consumer_tag.is_empty() || !self.consumers.contains_key(&m.consumer_tag) {
            self.access
                .check(ctx, Access::Read, Kind::Queue, queue_name.as_bytes())?;
        }
        let queue = ctx.vhost.queue(&queue_name, ctx.id)?;
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(generate_consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let args = ConsumeArgs::parse(&m.arguments, &queue.describe())?;
        let id = NEXT_CONSUMER_ID.fetch_add(1, Ordering::Relaxed);
        self.consumers.insert(
            tag.clone(),
            ConsumerEntry {
                queue: queue.clone(),
                id,
            },
        );
        let consumer = Consumer::new(
            id,
            tag.clone(),
            self.id,
            ctx.id,
            ctx.sink.clone(),
            m.no_ack,
            m.exclusive,
            self.consumer_prefetch,
            self.limit.clone(),
        )
        .with_priority(args.priority);
        if let Err(e) = queue.consume(consumer) {
            self.consumers.remove(&tag);
            return Err(e.into());
        }
        // Deliveries the queue just dispatched wait in the mailbox, so consume-ok goes out first.
        if !m.no_wait {
            ctx.send(self.id, BasicConsumeOk { consumer_tag: tag });
        }
        Ok(())
    }

    pub(super) fn basic_cancel(&mut self, ctx: &mut Ctx, m: BasicCancel) -> AmqpResult {
        if !self.reply_cancel(ctx, &m.consumer_tag)
            && let Some(c) = self.consumers.remove(&m.consumer_tag)
            && c.queue.cancel(c.id)
        {
            ctx.vhost.remove_queue(&c.queue);
            ctx.exclusive_queues.retain(|q| !q.is_deleted());
        }
        if !m.no_wait {
            ctx.send(
                self.id,
                BasicCancelOk {
                    consumer_tag: m.consumer_tag,
                },
            );
        }
        Ok(())
    }

    pub(super) fn basic_get(&mut self, ctx: &mut Ctx, m: BasicGet) -> AmqpResult {
        let queue_name = self.resolve_queue(&m.queue)?;
        self.access
            .check(ctx, Access::Read, Kind::Queue, queue_name.as_bytes())?;
        let queue = ctx.vhost.queue(&queue_name, ctx.id)?;
        self.answer_get(ctx, queue, m.no_ack, false);
        Ok(())
    }

    /// Answers a `basic.get` on `queue` (again, for a parked one); parks it in
    /// [`Ctx::get_parked`] when the queue's head is being read back from the spill area, or
    /// from the store by a blocking task (a queue still loading after a restart): the
    /// connection then handles no more input until a [`ConnEvent::GetReady`] answers it.
    /// After a store read that failed for good (`load_failed`) a head still in the store
    /// answers get-empty; a store that resumes by itself ([`StoreError::Suspended`], a full
    /// disk) is read again a second later, the get parked meanwhile.
    ///
    /// [`ConnEvent::GetReady`]: crate::connection::ConnEvent::GetReady
    /// [`StoreError::Suspended`]: warren_store::StoreError::Suspended
    pub fn answer_get(
        &mut self,
        ctx: &mut Ctx,
        queue: Arc<Queue>,
        no_ack: bool,
        load_failed: bool,
    ) {
        let got = match queue.try_get(no_ack, || ctx.get_waker()) {
            GetResult::Got(got) => got,
            GetResult::Load if load_failed => {
                self.stats.get_empty.add(1);
                ctx.send(self.id, BasicGetEmpty);
                return;
            }
            GetResult::Empty => {
                self.stats.get_empty.add(1);
                ctx.send(self.id, BasicGetEmpty);
                return;
            }
            GetResult::Load => {
                // The store is read on tokio's blocking pool, never on this task.
                let (q, wake) = (queue.clone(), ctx.get_waker());
                let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = failed.clone();
                tokio::task::spawn_blocking(move || {
                    match q.load_head() {
                        Ok(()) => {}
                        // The store retries by itself: so does the get, a second later.
                        Err(warren_store::StoreError::Suspended) => {
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                        Err(_) => flag.store(true, std::sync::atomic::Ordering::Release),
                    }
                    wake();
                });
                ctx.get_parked = Some(ParkedGet {
                    channel: self.id,
                    queue,
                    no_ack,
                    load_failed: failed,
                });
                return;
            }
            GetResult::Wait => {
                ctx.get_parked = Some(ParkedGet {
                    channel: self.id,
                    queue,
                    no_ack,
                    load_failed: Arc::default(),
                });
                return;
            }
        };
        if no_ack {
            self.stats.get_no_ack.add(1);
        } else {
            self.stats.get.add(1);
        }
        if got.redelivered {
            self.stats.redeliver.add(1);
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        if !no_ack {
            self.unacked.insert(
                tag,
                Unacked {
                    queue,
                    seq: got.seq,
                    counted: false,
                    delivered_at: ctx.now,
                },
            );
        }
        let msg = &got.message;
        let method = Method::BasicGetOk(BasicGetOk {
            delivery_tag: tag,
            redelivered: got.redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            message_count: got.remaining,
        });
        encode_content(
            &mut ctx.out,
            self.id,
            &method,
            &msg.properties,
            &msg.body,
            ctx.frame_max,
        );
    }

    pub(super) fn basic_recover(
        &mut self,
        ctx: &mut Ctx,
        requeue: bool,
        reply: bool,
    ) -> AmqpResult {
        if !requeue {
            return Err(AmqpError::new(ReplyCode::NotImplemented, "requeue=false"));
        }
        let unacked = std::mem::take(&mut self.unacked);
        let counted = unacked.values().filter(|u| u.counted).count() as u32;
        self.limit.release(counted);
        settle_grouped(unacked.into_values(), Settle::Requeue);
        if reply {
            ctx.send(self.id, BasicRecoverOk);
        }
        Ok(())
    }

    /// Writes a delivery pushed by a queue, giving it the channel's next delivery tag.
    pub fn deliver(&mut self, ctx: &mut Ctx, d: Delivery) {
        let live = self
            .consumers
            .get(&d.consumer_tag)
            .is_some_and(|c| Arc::ptr_eq(&c.queue, &d.queue));
        if !live {
            // The consumer was cancelled after the queue dispatched: the message goes back.
            if !d.no_ack {
                self.limit.release(1);
                d.queue.settle(&[d.seq], Settle::Requeue);
            }
            return;
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        if d.no_ack {
            self.stats.deliver_no_ack.add(1);
        } else {
            self.stats.deliver.add(1);
        }
        if d.redelivered {
            self.stats.redeliver.add(1);
        }
        let msg = d.message;
        let method = Method::BasicDeliver(BasicDeliver {
            consumer_tag: d.consumer_tag,
            delivery_tag: tag,
            redelivered: d.redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
        });
        encode_content(
            &mut ctx.out,
            self.id,
            &method,
            &msg.properties,
            &msg.body,
            ctx.frame_max,
        );
        if !d.no_ack {
            self.unacked.insert(
                tag,
                Unacked {
                    queue: d.queue,
                    seq: d.seq,
                    counted: true,
                    delivered_at: ctx.now,
                },
            );
        }
    }

    /// The queue behind a consumer went away: tell the client if it understands `basic.cancel`.
    pub fn consumer_cancelled(&mut self, ctx: &mut Ctx, tag: ShortStr) {
        if self.consumers.remove(&tag).is_some() && ctx.consumer_cancel_notify {
            ctx.send(
                self.id,
                BasicCancel {
                    consumer_tag: tag,
                    no_wait: true,
                },
            );
        }
    }
}
