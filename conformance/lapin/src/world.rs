//! `World`: a connection and a channel for one scenario, plus what the scenario declared,
//! deleted at the end; and consumer helpers that gather deliveries as they arrive.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

use crate::harness::{Res, unique, wait_until};

/// Opens a connection (`url` as given to the binary, already without its trailing `/`).
pub async fn connect(url: &str) -> Res<Connection> {
    Ok(Connection::connect(url, ConnectionProperties::default()).await?)
}

struct Inner {
    url: String,
    conn: Connection,
    ch: Channel,
    conns: RefCell<Vec<Rc<Connection>>>,
    queues: RefCell<Vec<String>>,
    exchanges: RefCell<Vec<String>>,
}

/// One scenario's connection, channel and bookkeeping; cheap to clone.
#[derive(Clone)]
pub struct World(Rc<Inner>);

/// Runs `f` with a fresh `World` and cleans up after it, whatever the outcome.
pub async fn with_world<F, Fut>(url: String, f: F) -> Res
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = Res>,
{
    let w = World::open(&url, "").await?;
    let res = f(w.clone()).await;
    w.close().await;
    res
}

impl World {
    /// Connects to `url` + `query` (e.g. `?heartbeat=2`) and opens a channel.
    pub async fn open(url: &str, query: &str) -> Res<World> {
        let conn = connect(&format!("{url}{query}")).await?;
        let ch = conn.create_channel().await?;
        Ok(World(Rc::new(Inner {
            url: url.to_string(),
            conn,
            ch,
            conns: RefCell::new(Vec::new()),
            queues: RefCell::new(Vec::new()),
            exchanges: RefCell::new(Vec::new()),
        })))
    }

    /// The scenario's connection.
    pub fn conn(&self) -> &Connection {
        &self.0.conn
    }

    /// The scenario's channel.
    pub fn ch(&self) -> &Channel {
        &self.0.ch
    }

    /// Another connection to the same broker, closed at the end.
    pub async fn connect(&self) -> Res<Rc<Connection>> {
        let c = Rc::new(connect(&self.0.url).await?);
        self.0.conns.borrow_mut().push(c.clone());
        Ok(c)
    }

    /// A new channel on the scenario's connection.
    pub async fn channel(&self) -> Res<Channel> {
        Ok(self.conn().create_channel().await?)
    }

    /// Remembers a queue to delete at the end.
    pub fn track_queue(&self, name: &str) {
        self.0.queues.borrow_mut().push(name.to_string());
    }

    /// Declares a queue with a unique name (on the scenario's channel) and returns its name.
    pub async fn queue(&self, tag: &str, opts: QueueDeclareOptions) -> Res<String> {
        let name = unique(tag);
        self.ch()
            .queue_declare(&name, opts, FieldTable::default())
            .await?;
        self.track_queue(&name);
        Ok(name)
    }

    /// Declares an exchange with a unique name and returns it.
    pub async fn exchange(
        &self,
        tag: &str,
        kind: ExchangeKind,
        opts: ExchangeDeclareOptions,
    ) -> Res<String> {
        let name = unique(tag);
        self.ch()
            .exchange_declare(&name, kind, opts, FieldTable::default())
            .await?;
        self.0.exchanges.borrow_mut().push(name.clone());
        Ok(name)
    }

    /// Puts the scenario's channel in confirm mode.
    pub async fn confirm(&self) -> Res<()> {
        Ok(self
            .ch()
            .confirm_select(ConfirmSelectOptions::default())
            .await?)
    }

    /// Publishes on `ch` and waits for the confirm (`NotRequested` outside confirm mode).
    pub async fn publish_on(
        ch: &Channel,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Res<Confirmation> {
        let opts = BasicPublishOptions::default();
        Ok(ch
            .basic_publish(exchange, key, opts, body, props)
            .await?
            .await?)
    }

    /// Publishes a bare message on the scenario's channel (confirmed when in confirm mode).
    pub async fn publish(&self, exchange: &str, key: &str, body: &[u8]) -> Res<Confirmation> {
        World::publish_on(self.ch(), exchange, key, body, BasicProperties::default()).await
    }

    /// Ready messages of a queue (passive declare), on the scenario's channel when it is
    /// open, so that it is ordered after that channel's publishes.
    pub async fn count(&self, queue: &str) -> Res<u32> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if self.ch().status().connected() {
            let q = self
                .ch()
                .queue_declare(queue, passive, FieldTable::default())
                .await?;
            return Ok(q.message_count());
        }
        let ch = self.channel().await?;
        let q = ch
            .queue_declare(queue, passive, FieldTable::default())
            .await?;
        let _ = ch.close(200, "done").await;
        Ok(q.message_count())
    }

    /// The queue's ready count once it equals `want`, or the last one seen after 5 s
    /// (RabbitMQ's queues apply commits and requeues asynchronously).
    pub async fn count_eventually(&self, queue: &str, want: u32) -> Res<u32> {
        let mut n = self.count(queue).await?;
        for _ in 0..100 {
            if n == want {
                break;
            }
            crate::harness::sleep(50).await;
            n = self.count(queue).await?;
        }
        Ok(n)
    }

    /// Closes the connections, then deletes what the scenario declared (best effort).
    pub async fn close(&self) {
        let conns: Vec<Rc<Connection>> = self.0.conns.borrow().clone();
        for c in conns
            .iter()
            .map(|c| &**c)
            .chain(std::iter::once(self.conn()))
        {
            if c.status().connected() {
                let _ = c.close(200, "done").await;
            }
        }
        let queues: Vec<String> = self.0.queues.borrow().clone();
        let exchanges: Vec<String> = self.0.exchanges.borrow().clone();
        if queues.is_empty() && exchanges.is_empty() {
            return;
        }
        let Ok(c) = connect(&self.0.url).await else {
            return;
        };
        for q in &queues {
            if let Ok(ch) = c.create_channel().await {
                let _ = ch.queue_delete(q, QueueDeleteOptions::default()).await;
            }
        }
        for e in &exchanges {
            if let Ok(ch) = c.create_channel().await {
                let _ = ch
                    .exchange_delete(e, ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = c.close(200, "done").await;
    }
}

/// What a consumer delegate saw: a delivery (with the consumer's label) or a cancellation.
pub enum Got {
    /// A delivery to the consumer with this label.
    Msg(String, Box<Delivery>),
    /// A consumer was cancelled (by the server, or its stream ended).
    Cancelled,
}

/// Deliveries gathered by consumer delegates, in arrival order.
pub type Sink = Arc<Mutex<Vec<Got>>>;

/// A new, empty sink.
pub fn sink() -> Sink {
    Arc::new(Mutex::new(Vec::new()))
}

/// The sink's contents (a poisoned lock still gives them).
pub fn lock(sink: &Sink) -> MutexGuard<'_, Vec<Got>> {
    sink.lock().unwrap_or_else(|p| p.into_inner())
}

/// The (label, body) of the deliveries in the sink.
pub fn bodies(sink: &Sink) -> Vec<(String, String)> {
    lock(sink)
        .iter()
        .filter_map(|g| match g {
            Got::Msg(l, d) => Some((l.clone(), String::from_utf8_lossy(&d.data).into_owned())),
            Got::Cancelled => None,
        })
        .collect()
}

/// Starts a consumer on `queue` whose deliveries go to `sink` under `label`, in order (a thread
/// reads the consumer's stream); `Got::Cancelled` when the stream ends. Returns the consumer tag.
pub async fn consume(
    ch: &Channel,
    queue: &str,
    label: &str,
    no_ack: bool,
    sink: &Sink,
) -> Res<String> {
    consume_with(ch, queue, label, no_ack, FieldTable::default(), sink).await
}

/// `consume` with basic.consume arguments.
pub async fn consume_with(
    ch: &Channel,
    queue: &str,
    label: &str,
    no_ack: bool,
    args: FieldTable,
    sink: &Sink,
) -> Res<String> {
    let opts = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let mut consumer: Consumer = ch.basic_consume(queue, "", opts, args).await?;
    let tag = consumer.tag().to_string();
    let sink = sink.clone();
    let label = label.to_string();
    // a thread per consumer reads its stream in order (lapin's delegates may run out of order)
    std::thread::spawn(move || {
        futures_lite::future::block_on(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                lock(&sink).push(Got::Msg(label.clone(), Box::new(delivery)));
            }
            lock(&sink).push(Got::Cancelled);
        })
    });
    Ok(tag)
}

/// Waits until the sink holds `n` entries (or `ms` passed); returns how many it holds.
pub async fn wait_len(sink: &Sink, n: usize, ms: u64) -> usize {
    wait_until(ms, || lock(sink).len() >= n).await;
    lock(sink).len()
}

/// Consumes from `queue` until `n` messages arrived (then `settle` ms more) and returns them;
/// an auto-ack consumer is cancelled at the end.
pub async fn collect(ch: &Channel, queue: &str, n: usize, ms: u64) -> Res<Vec<Delivery>> {
    let s = sink();
    let tag = consume(ch, queue, "c", true, &s).await?;
    wait_len(&s, n, ms).await;
    ch.basic_cancel(&tag, BasicCancelOptions::default()).await?;
    let got = std::mem::take(&mut *lock(&s));
    Ok(got
        .into_iter()
        .filter_map(|g| match g {
            Got::Msg(_, d) => Some(*d),
            Got::Cancelled => None,
        })
        .collect())
}
