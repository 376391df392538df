//! Publishing: `basic.publish` and its content frames, routing, mandatory returns, and writing
//! persistent messages to the store. Confirms and transactions build on it (`confirm.rs`,
//! `tx.rs`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;
use warren_broker::{Message, VHost, field_type_name};
use warren_codec::{
    BasicProperties, BasicPublish, BasicReturn, ContentHeader, FieldValue, Method, RawProperties,
    ReplyCode, ShortStr, encode_content,
};

use super::{Channel, Mode, reply_to};
use crate::connection::{AmqpError, AmqpResult, Ctx};

/// Where the channel is in receiving a message's content.
#[derive(Debug, Default)]
pub enum ContentState {
    /// Expecting a method.
    #[default]
    Idle,
    /// After `basic.publish`, expecting the content header.
    Header(BasicPublish),
    /// Expecting body frames until `size` bytes arrived.
    Body {
        publish: BasicPublish,
        properties: RawProperties,
        size: u64,
        body: Body,
    },
    /// Body frames outgrew the size the header declared. RabbitMQ's assembler then waits for
    /// more body (its remaining size is negative and never reaches zero), dropping the message,
    /// and fails with 505 on the next frame of another kind; so does Warren.
    Overrun,
}

/// Body bytes gathered so far: one frame's slice needs no copy; several are joined.
#[derive(Debug, Default)]
pub enum Body {
    /// Nothing yet.
    #[default]
    Empty,
    /// One frame's payload.
    One(Bytes),
    /// Several frames, joined.
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    fn push(&mut self, payload: Bytes) {
        *self = match std::mem::take(self) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + payload.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
            Body::Many(mut joined) => {
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
        };
    }

    fn freeze(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

impl ContentState {
    /// The 505 error for a frame this state does not expect (a method in the middle of content,
    /// or content out of place), in RabbitMQ's words and with its method ids: those of
    /// `basic.publish` while content is due, none otherwise.
    pub fn unexpected_frame(&self) -> AmqpError {
        let what = match self {
            ContentState::Idle => {
                return AmqpError::new(
                    ReplyCode::UnexpectedFrame,
                    "expected method frame, got non method frame instead",
                );
            }
            ContentState::Header(_) => {
                "expected content header for class 60, got non content header frame instead"
            }
            ContentState::Body { .. } | ContentState::Overrun => {
                "expected content body, got non content body frame instead"
            }
        };
        AmqpError::new(ReplyCode::UnexpectedFrame, what).at(60, 40)
    }
}

/// What became of a routed message, for publisher confirms: the broker's answer.
pub type Routed = warren_broker::Published;

/// The routing key plus any CC/BCC keys; inline, so routing allocates nothing for them.
type RoutingKeys<'a> = SmallVec<[&'a [u8]; 4]>;

/// The extra routing keys of the `CC` and `BCC` headers: the long strings of an array (other
/// elements are ignored, as RabbitMQ's `header_routes` does); a header of any other type makes
/// the message invalid, with RabbitMQ's 406 text. Returns whether `BCC` is present.
fn extra_keys<'a>(props: &'a BasicProperties, out: &mut RoutingKeys<'a>) -> AmqpResult<bool> {
    let Some(headers) = &props.headers else {
        return Ok(false);
    };
    for key in ["CC", "BCC"] {
        match headers.get(key) {
            None => {}
            Some(FieldValue::Array(items)) => out.extend(items.iter().filter_map(|v| match v {
                FieldValue::LongStr(s) => Some(s.as_bytes()),
                _ => None,
            })),
            Some(other) => {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "invalid message: {{unacceptable_type_in_header,\"{key}\",{}}}",
                        field_type_name(other)
                    ),
                )
                .at(60, 40));
            }
        }
    }
    Ok(headers.contains_key("BCC"))
}

/// The `user_id` property must name the authenticated user unless it is an `impersonator`
/// (RabbitMQ's `check_user_id_header`).
fn check_user_id(ctx: &Ctx, props: &BasicProperties) -> AmqpResult {
    match &props.user_id {
        Some(claimed) if claimed.as_bytes() != ctx.user.as_bytes() && !ctx.impersonator => {
            Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "user_id property set to '{claimed}' but authenticated user was '{}'",
                    ctx.user
                ),
            )
            .at(60, 40))
        }
        _ => Ok(()),
    }
}

/// The topic permission check of a publish, after the exchange's existence and `internal`
/// flag, as in RabbitMQ. A user without topic permissions in the vhost pays one branch.
fn check_topic_write(
    ctx: &Ctx,
    topology: &warren_router::Router<Arc<warren_broker::Queue>>,
    publish: &BasicPublish,
) -> AmqpResult {
    if ctx.topic_access.is_unrestricted() {
        return Ok(());
    }
    let kind = topology
        .exchange(publish.exchange.as_bytes())
        .map(|x| &x.kind);
    ctx.check_topic(
        kind,
        publish.exchange.as_bytes(),
        publish.routing_key.as_bytes(),
        warren_broker::TopicAction::Write,
    )
    .map_err(|e| e.at(60, 40))
}

/// The properties the publish path must read: only when a message has headers (`CC`, `BCC`,
/// the headers exchange) or claims a user.
fn parse_if_needed(properties: &RawProperties) -> AmqpResult<Option<BasicProperties>> {
    if !properties.has_headers() && !properties.has_user_id() {
        return Ok(None);
    }
    properties.decode().map(Some).map_err(|e| {
        AmqpError::new(ReplyCode::SyntaxError, format!("malformed properties: {e}")).at(60, 40)
    })
}

impl Channel {
    pub(super) fn basic_publish(&mut self, _ctx: &mut Ctx, m: BasicPublish) -> AmqpResult {
        if m.immediate {
            return Err(AmqpError::new(ReplyCode::NotImplemented, "immediate=true"));
        }
        self.content = ContentState::Header(m);
        Ok(())
    }

    /// A content header frame.
    pub fn on_header(&mut self, ctx: &mut Ctx, header: ContentHeader) -> AmqpResult {
        if !matches!(self.content, ContentState::Header(_)) {
            return Err(self.content.unexpected_frame());
        }
        if header.class_id != 60 {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!(
                    "expected content header for class 60, got one for class {} instead",
                    header.class_id
                ),
            )
            .at(60, 40));
        }
        let ContentState::Header(publish) = std::mem::take(&mut self.content) else {
            return Ok(());
        };
        if header.body_size > ctx.config.max_message_size {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "message size {} is larger than configured max size {}",
                    header.body_size, ctx.config.max_message_size
                ),
            )
            .at(60, 40));
        }
        if header.body_size == 0 {
            return self.publish_complete(ctx, publish, header.properties, Bytes::new());
        }
        self.content = ContentState::Body {
            publish,
            properties: header.properties,
            size: header.body_size,
            body: Body::Empty,
        };
        Ok(())
    }

    /// A content body frame.
    pub fn on_body(&mut self, ctx: &mut Ctx, payload: Bytes) -> AmqpResult {
        let ContentState::Body { size, body, .. } = &mut self.content else {
            return match self.content {
                ContentState::Overrun => Ok(()),
                _ => Err(self.content.unexpected_frame()),
            };
        };
        if body.len() as u64 + payload.len() as u64 > *size {
            self.content = ContentState::Overrun;
            return Ok(());
        }
        body.push(payload);
        if (body.len() as u64) < *size {
            return Ok(());
        }
        let ContentState::Body {
            publish,
            properties,
            body,
            ..
        } = std::mem::take(&mut self.content)
        else {
            return Ok(());
        };
        self.publish_complete(ctx, publish, properties, body.freeze())
    }

    fn publish_complete(
        &mut self,
        ctx: &mut Ctx,
        publish: BasicPublish,
        properties: RawProperties,
        body: Bytes,
    ) -> AmqpResult {
        ctx.published = true;
        // RabbitMQ checks write permission once the message is whole, before anything else
        // about it (the exchange existing included).
        self.access
            .check_publish(ctx, &publish.exchange)
            .map_err(|e| e.at(60, 40))?;
        // A request names the reply consumer of the channel it is published on, at publish time.
        let properties = self.rewrite_reply_to(ctx, &publish.exchange, properties)?;
        match &mut self.mode {
            Mode::Tx(tx) => {
                // Refuse what RabbitMQ refuses at publish time now rather than at commit: a
                // missing exchange, a foreign user_id, a bad expiration, a bad CC or BCC header.
                {
                    let topology = ctx.vhost.topology();
                    VHost::check_publish(&topology, &publish.exchange)
                        .map_err(|e| AmqpError::from(e).at(60, 40))?;
                    check_topic_write(ctx, &topology, &publish)?;
                }
                let parsed = parse_if_needed(&properties)?;
                if let Some(p) = &parsed {
                    check_user_id(ctx, p)?;
                }
                Message::new(
                    publish.exchange.clone(),
                    publish.routing_key.clone(),
                    properties.clone(),
                    Bytes::new(),
                    0,
                )
                .map_err(|e| AmqpError::from(e).at(60, 40))?;
                if let Some(p) = &parsed {
                    extra_keys(p, &mut RoutingKeys::new())?;
                }
                tx.publishes.push((publish, properties, body));
                // RabbitMQ counts a transactional publish as one expecting a confirmation.
                self.stats.publish_confirm.add(1);
                Ok(())
            }
            Mode::Confirm(_) => {
                let routed = self.route(ctx, publish, properties, body)?;
                self.confirm_publish(ctx, routed);
                Ok(())
            }
            Mode::Plain => self.route(ctx, publish, properties, body).map(drop),
        }
    }

    /// Routes a complete message and hands it to the broker for its queues; returns it to the
    /// publisher when mandatory and unroutable. What is stored is the broker's decision
    /// (`VHost::publish`).
    pub(super) fn route(
        &mut self,
        ctx: &mut Ctx,
        publish: BasicPublish,
        properties: RawProperties,
        body: Bytes,
    ) -> AmqpResult<Routed> {
        // The scratch list keeps its capacity from message to message.
        let mut queues = std::mem::take(&mut ctx.route_scratch);
        queues.clear();
        let mut properties = properties;
        let mut replies = reply_to::Replies::new();
        let mut header_error = None;
        {
            let topology = ctx.vhost.topology();
            VHost::check_publish(&topology, &publish.exchange)
                .map_err(|e| AmqpError::from(e).at(60, 40))?;
            check_topic_write(ctx, &topology, &publish)?;
            let parsed = parse_if_needed(&properties)?;
            if let Some(p) = &parsed {
                check_user_id(ctx, p)?;
            }
            let mut keys: RoutingKeys<'_> = SmallVec::new();
            keys.push(publish.routing_key.as_bytes());
            // RabbitMQ judges the expiration before the CC and BCC headers: a bad header is
            // reported after `Message::new` below.
            let has_bcc = match parsed.as_ref().map(|p| extra_keys(p, &mut keys)) {
                Some(Err(e)) => {
                    header_error = Some(e);
                    false
                }
                Some(Ok(bcc)) => bcc,
                None => false,
            };
            // Direct reply-to addresses are only ever routed by the default exchange.
            if publish.exchange.is_empty() {
                ctx.replies.find(&keys, &mut replies);
            }
            let headers = parsed.as_ref().and_then(|p| p.headers.as_ref());
            topology
                .route(publish.exchange.as_bytes(), &keys, headers, &mut queues)
                .map_err(|e| AmqpError::from(warren_broker::BrokerError::from(e)).at(60, 40))?;
            if has_bcc && let Some(mut p) = parsed.clone() {
                // BCC recipients must not be visible to anyone who receives the message.
                if let Some(h) = &mut p.headers {
                    h.remove("BCC");
                }
                properties = p.to_raw();
            }
        }
        let message = Message::new(
            publish.exchange.clone(),
            publish.routing_key.clone(),
            properties,
            body,
            ctx.batch_time_ms,
        )
        .map_err(|e| AmqpError::from(e).at(60, 40))?;
        if let Some(e) = header_error {
            ctx.route_scratch = queues;
            return Err(e);
        }
        if !replies.is_empty() {
            reply_to::deliver_replies(replies, &Arc::new(message.clone()));
        }
        self.stats.publish.add(1);
        // RabbitMQ's `publish_in` of the exchange and, per queue reached, its `publish_out`.
        self.exchange_stats
            .count(&self.stats, publish.exchange.as_bytes(), queues.len());
        if queues.is_empty() {
            if publish.mandatory {
                self.stats.return_unroutable.add(1);
            } else {
                self.stats.drop_unroutable.add(1);
            }
        }
        if queues.is_empty() && publish.mandatory {
            let method = Method::BasicReturn(BasicReturn {
                reply_code: ReplyCode::NoRoute.code(),
                reply_text: ShortStr::from_static("NO_ROUTE"),
                exchange: publish.exchange,
                routing_key: publish.routing_key,
            });
            encode_content(
                &mut ctx.out,
                self.id,
                &method,
                &message.properties,
                &message.body,
                ctx.frame_max,
            );
        }
        // The broker decides what is stored and hands the message to every queue.
        // A queue with more spilled segments unwritten than its share pauses this connection's
        // reading (at the end of this batch): see `Connection::pause_for_spill`. Asked before
        // publishing, which empties the list; a load or two per queue when none presses.
        for q in queues.iter() {
            if q.spill_pressure() && !ctx.spill_pressing.iter().any(|p| Arc::ptr_eq(p, q)) {
                ctx.spill_pressing.push(q.clone());
            }
        }
        let routed = ctx.vhost.publish(message, &mut queues);
        ctx.route_scratch = queues;
        Ok(routed)
    }
}
