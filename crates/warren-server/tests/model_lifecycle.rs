//! Model-based test of the message lifecycle (issue 11): randomly generated sequences of
//! operations drive the real broker through lapin, and after every step what the clients observe
//! is compared with a small reference model of what RabbitMQ 3.10 promises. Failing sequences are
//! shrunk by proptest; each one found is kept below as an ordinary regression test.
//!
//! `WARREN_MODEL_CASES` (default 500), `WARREN_MODEL_STEPS` (maximum sequence length, default 60)
//! and `WARREN_MODEL_SEED` (a u64, default fixed) control the random search;
//! `WARREN_MODEL_AVOID=fanout-loss,shutdown-race` steers it away from the bugs it found (kept
//! below as regression tests, fixed since) to look further on a tree without their fixes.

// Tests fail by panicking; helpers outside #[test] functions do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod model;

use model::ops::Op::*;
use model::ops::Overflow::*;
use model::ops::X::*;
use model::ops::{Op, Spec};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

/// The CI default: about 35 s on an idle 2-core machine in a debug build, 90 s under load.
const DEFAULT_CASES: u32 = 500;
/// The default maximum number of operations in one sequence.
const DEFAULT_STEPS: usize = 60;
/// The default seed: CI explores the same sequences every run; long searches pass their own.
const DEFAULT_SEED: u64 = 11;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs one sequence on its own runtime and server (`queue_load_window` `load_window`).
fn run_blocking(ops: &[Op], load_window: Option<u64>) -> Result<model::runner::Stats, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(model::runner::run_with(ops, load_window))
}

/// Runs a kept sequence and fails with the runner's explanation.
async fn replay(ops: Vec<Op>) {
    if let Err(e) = model::runner::run(&ops).await {
        panic!("{e}");
    }
}

#[test]
fn random_sequences_match_the_model() {
    search(None, DEFAULT_CASES, DEFAULT_SEED);
}

/// The same search with `queue_load_window` 2 (issue 16): every durable queue holding two
/// messages leaves the persistent ones that follow in the store, so gets load the head off
/// the connection task (`GetResult::Load`), purges remove stored regions never read (parked
/// on the blocking pool), consumers are fed by the loader, and restarts leave queues loading.
/// The model knows nothing of this: what clients see must not change.
#[test]
fn random_sequences_match_the_model_with_a_load_window_of_two() {
    search(Some(2), DEFAULT_CASES / 2, DEFAULT_SEED + 1);
}

/// Runs the search over generated sequences with `queue_load_window` `load_window`.
fn search(load_window: Option<u64>, default_cases: u32, default_seed: u64) {
    let cases = env_or("WARREN_MODEL_CASES", default_cases);
    let steps = env_or("WARREN_MODEL_STEPS", DEFAULT_STEPS);
    let seed = env_or("WARREN_MODEL_SEED", default_seed);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        // Sequences are kept as named tests below, not in a persistence file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: env_or("WARREN_MODEL_SHRINK_ITERS", 2000),
        // A failing step may wait out its timeouts; bound the time spent shrinking (ms).
        max_shrink_time: env_or("WARREN_MODEL_SHRINK_MS", 180_000),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let totals = std::cell::Cell::new((0usize, 0usize, 0usize, 0usize, 0usize));
    let started = std::time::Instant::now();
    model::runner::watchdog(std::time::Duration::from_secs(120));
    let result = runner.run(&model::ops::ops(steps), |ops| {
        let stats = run_blocking(&ops, load_window).map_err(|e| {
            // One line per failing attempt shows the shrinking's progress.
            eprintln!(
                "model_lifecycle: failing sequence of {} ops: {}",
                ops.len(),
                e.lines().next().unwrap_or_default()
            );
            TestCaseError::fail(e)
        })?;
        let (n, s, k, d, c) = totals.get();
        totals.set((
            n + 1,
            s + stats.steps,
            k + stats.skipped,
            d + stats.deliveries,
            c + stats.copies,
        ));
        Ok(())
    });
    let (n, s, k, d, c) = totals.get();
    println!(
        "model_lifecycle (load window {load_window:?}): seed {seed}, {n} passing sequences, {s} steps run ({k} skipped), \
         {c} message copies enqueued, {d} deliveries checked, {:.1?}",
        started.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!(
                "seed {seed}, load window {load_window:?}: the broker disagrees with the model \
                 ({} generated ops after shrinking).\n{why}",
                ops.len()
            );
        }
        Err(TestError::Abort(why)) => panic!("seed {seed}: aborted: {why}"),
    }
}

/// A durable queue without limits or dead-lettering.
const DURABLE: Spec = Spec {
    durable: true,
    max_len: None,
    dlx: false,
    priority: false,
};

/// Issue 11: a persistent message fanned out to several durable queues, one of which has a
/// no-ack consumer, is nacked and never reaches the others.
#[tokio::test]
async fn regression_fanout_persistent_with_no_ack_consumer() {
    replay(vec![
        Declare {
            q: 0,
            spec: DURABLE,
        },
        Declare {
            q: 1,
            spec: DURABLE,
        },
        Bind {
            q: 0,
            x: Fanout,
            key: 0,
        },
        Bind {
            q: 1,
            x: Fanout,
            key: 0,
        },
        Consume {
            q: 0,
            ch: 0,
            no_ack: true,
            prefetch: 0,
        },
        Publish {
            x: Fanout,
            key: 0,
            persistent: true,
            confirm: true,
            mandatory: false,
            priority: 0,
            headers: 0,
        },
    ])
    .await;
}

/// Issue 11, as the search first shrank it (seed 11, 51st sequence): without confirms the loss
/// is silent; the manual-ack consumer of the other durable queue never gets the message.
#[tokio::test]
async fn regression_fanout_loss_is_silent_without_confirms() {
    replay(vec![
        Declare {
            q: 1,
            spec: DURABLE,
        },
        Declare {
            q: 2,
            spec: DURABLE,
        },
        Consume {
            q: 2,
            ch: 0,
            no_ack: false,
            prefetch: 0,
        },
        Bind {
            q: 1,
            x: Fanout,
            key: 0,
        },
        Bind {
            q: 2,
            x: Fanout,
            key: 0,
        },
        Consume {
            q: 1,
            ch: 0,
            no_ack: true,
            prefetch: 0,
        },
        Publish {
            x: Fanout,
            key: 0,
            persistent: true,
            confirm: false,
            mandatory: false,
            priority: 0,
            headers: 0,
        },
    ])
    .await;
}

/// Found by the search (seeds 101 and 202, shrunk by hand to five steps): a persistent message
/// held unacked by a `basic.get` on one connection, while a no-ack consumer of the same durable
/// queue exists on another, is gone after a clean restart, and the no-ack consumer did not
/// receive it either (about one run in two). Presumably the channel closing at shutdown
/// requeues it, the queue hands it to the no-ack consumer of the closing connection, and it is
/// never written. Repeated to make the race likely to show.
#[tokio::test]
async fn regression_restart_loses_message_requeued_to_no_ack_consumer() {
    for _ in 0..10 {
        replay(vec![
            Declare {
                q: 2,
                spec: DURABLE,
            },
            Publish {
                x: Default,
                key: 2,
                persistent: true,
                confirm: true,
                mandatory: false,
                priority: 0,
                headers: 0,
            },
            Get {
                q: 2,
                ch: 0,
                no_ack: false,
            },
            Consume {
                q: 2,
                ch: 3,
                no_ack: true,
                prefetch: 0,
            },
            Restart,
        ])
        .await;
    }
}

/// Found by the search against main (seed 1001, with the fan-out fix): the connection-close
/// form of the race above, with a transient message in a transient queue. A message held by a
/// `basic.get` on one channel is requeued when its connection closes, the no-ack consumer of
/// the same queue on the other channel of that connection never receives it, and it is not in
/// the queue either. A closing connection now cancels every consumer of all its channels
/// before any channel requeues what it holds (`Channel::detach_consumers`), which closes the
/// server's side of it; it still fails about one run in two because the client closes its
/// channels one by one before the connection, so the message requeued by the first close may
/// be sent to the no-ack consumer of a channel the client is about to close and ignores. A
/// no-ack delivery is at most once, in RabbitMQ too (its closing channel drops deliveries the
/// same way), so this stays ignored: a record of accepted behaviour, not a bug to fix.
#[tokio::test]
#[ignore = "no-ack is at most once: a delivery to a no-ack consumer of a channel the client is closing is lost, as in RabbitMQ"]
async fn regression_connection_close_loses_message_requeued_to_no_ack_consumer() {
    let transient = Spec {
        durable: false,
        ..DURABLE
    };
    for _ in 0..10 {
        replay(vec![
            Declare {
                q: 1,
                spec: transient,
            },
            Publish {
                x: Default,
                key: 1,
                persistent: false,
                confirm: true,
                mandatory: false,
                priority: 0,
                headers: 0,
            },
            Get {
                q: 1,
                ch: 0,
                no_ack: false,
            },
            Consume {
                q: 1,
                ch: 1,
                no_ack: true,
                prefetch: 0,
            },
            CloseConnection { conn: 0 },
        ])
        .await;
    }
}

/// Found by the search (seed 101) when the model did not trim at a restart: a drop-head queue
/// of length 1 whose consumer holds two unacked messages keeps one of them after a restart. The
/// model was wrong: a clean shutdown closes the connections first, their channels requeue and
/// the queue trims as at any channel close (RabbitMQ's requeue_and_run). Kept as it passes.
#[tokio::test]
async fn kept_restart_trims_a_drop_head_queue_like_a_channel_close() {
    let publish = |key| Publish {
        x: Fanout,
        key,
        persistent: true,
        confirm: false,
        mandatory: false,
        priority: 0,
        headers: 0,
    };
    replay(vec![
        Declare {
            q: 2,
            spec: Spec {
                max_len: Some((1, DropHead)),
                ..DURABLE
            },
        },
        Bind {
            q: 2,
            x: Fanout,
            key: 0,
        },
        publish(0),
        Consume {
            q: 2,
            ch: 0,
            no_ack: false,
            prefetch: 3,
        },
        publish(3),
        Restart,
    ])
    .await;
}

/// Found by the search (seed 11) when the model routed dead letters at once: a fan-out publish
/// to a full drop-head queue and to that queue's dead-letter target reaches the target before
/// the message it pushed out of the full queue. The model was wrong (RabbitMQ dead-letters by a
/// later publish from the queue); kept as it passes.
#[tokio::test]
async fn kept_dead_letters_follow_the_publish_that_caused_them() {
    let transient = Spec {
        durable: false,
        ..DURABLE
    };
    let publish = |x, key| Publish {
        x,
        key,
        persistent: false,
        confirm: false,
        mandatory: false,
        priority: 0,
        headers: 0,
    };
    replay(vec![
        Declare {
            q: 5,
            spec: transient,
        },
        Declare {
            q: 0,
            spec: Spec {
                max_len: Some((1, DropHead)),
                dlx: true,
                ..transient
            },
        },
        publish(Default, 0),
        Bind {
            q: 5,
            x: Fanout,
            key: 0,
        },
        Bind {
            q: 0,
            x: Fanout,
            key: 0,
        },
        Bind {
            q: 5,
            x: Dlx,
            key: 0,
        },
        publish(Fanout, 0),
        Consume {
            q: 5,
            ch: 0,
            no_ack: false,
            prefetch: 0,
        },
    ])
    .await;
}

/// Found by the search against main (seed 1001) when the model dispatched only at the end of an
/// operation: a no-ack consumer of a priority queue gets a publish at once, before the dead
/// letter of higher priority that the same publish pushed out of a full queue. The model was
/// wrong; kept as it passes on main. On this branch's older publish path the dead letter does
/// overtake the publish (RabbitMQ delivers to a consumer with room on arrival, like main).
#[tokio::test]
async fn kept_a_consumer_takes_a_message_before_a_later_dead_letter_overtakes_it() {
    let transient = Spec {
        durable: false,
        ..DURABLE
    };
    let publish = |priority| Publish {
        x: Fanout,
        key: 0,
        persistent: false,
        confirm: false,
        mandatory: false,
        priority,
        headers: 0,
    };
    replay(vec![
        Declare {
            q: 0,
            spec: Spec {
                max_len: Some((2, DropHead)),
                dlx: true,
                ..transient
            },
        },
        Declare {
            q: 4,
            spec: Spec {
                priority: true,
                ..transient
            },
        },
        Bind {
            q: 0,
            x: Fanout,
            key: 0,
        },
        Bind {
            q: 4,
            x: Dlx,
            key: 0,
        },
        Consume {
            q: 4,
            ch: 0,
            no_ack: true,
            prefetch: 0,
        },
        publish(1),
        publish(0),
        Bind {
            q: 4,
            x: Fanout,
            key: 0,
        },
        publish(0),
    ])
    .await;
}

/// A smoke sequence touching every kind of operation once; it passes today and guards the
/// runner itself (a broken runner would fail here first).
#[tokio::test]
async fn smoke_every_operation_once() {
    let publish = |x, key, persistent| Publish {
        x,
        key,
        persistent,
        confirm: true,
        mandatory: true,
        priority: 1,
        headers: 1,
    };
    replay(vec![
        Declare {
            q: 0,
            spec: Spec {
                dlx: true,
                max_len: Some((2, DropHead)),
                ..DURABLE
            },
        },
        Declare {
            q: 1,
            spec: Spec {
                durable: false,
                max_len: Some((1, RejectPublish)),
                ..DURABLE
            },
        },
        Declare {
            q: 4,
            spec: DURABLE,
        },
        Declare {
            q: 2,
            spec: Spec {
                priority: true,
                ..DURABLE
            },
        },
        Bind {
            q: 0,
            x: Topic,
            key: 1,
        },
        Bind {
            q: 1,
            x: Direct,
            key: 0,
        },
        Bind {
            q: 4,
            x: Dlx,
            key: 0,
        },
        Bind {
            q: 2,
            x: Headers,
            key: 0,
        },
        publish(Topic, 0, true),
        publish(Topic, 2, true),
        publish(Topic, 2, false),
        publish(Direct, 0, true),
        publish(Direct, 0, true),
        publish(Headers, 1, true),
        publish(Fanout, 0, true),
        Get {
            q: 0,
            ch: 0,
            no_ack: false,
        },
        Consume {
            q: 4,
            ch: 1,
            no_ack: false,
            prefetch: 1,
        },
        Reject {
            ch: 0,
            pick: 0,
            requeue: false,
        },
        Nack {
            ch: 1,
            pick: 0,
            multiple: true,
            requeue: true,
        },
        Ack {
            ch: 1,
            pick: 0,
            multiple: false,
        },
        Consume {
            q: 2,
            ch: 2,
            no_ack: true,
            prefetch: 0,
        },
        Cancel { q: 2 },
        Get {
            q: 0,
            ch: 3,
            no_ack: false,
        },
        CloseConnection { conn: 1 },
        CloseChannel { ch: 1 },
        Purge { q: 1 },
        Restart,
        Get {
            q: 0,
            ch: 0,
            no_ack: true,
        },
        Delete { q: 0 },
    ])
    .await;
}

/// Seed 12 of the search with a load window of two: closing a connection whose one channel
/// holds unacked messages of a queue and whose other channel has a no-ack consumer on it. The
/// runner dropped its channel handles before `connection.close`, so lapin closed one channel
/// first; the broker rightly handed what that channel requeued to the other's no-ack consumer,
/// and lapin dropped the delivery as the connection closed. The runner now closes the
/// connection first (the broker detaches every consumer of a closing connection before any
/// channel requeues).
#[tokio::test]
async fn regression_close_connection_with_a_no_ack_consumer_on_another_channel() {
    let ops = vec![
        Publish {
            x: Fanout,
            key: 4,
            persistent: false,
            confirm: false,
            mandatory: true,
            priority: 3,
            headers: 1,
        },
        Restart,
        Declare {
            q: 4,
            spec: Spec {
                durable: true,
                max_len: None,
                dlx: false,
                priority: false,
            },
        },
        CloseChannel { ch: 1 },
        Declare {
            q: 0,
            spec: Spec {
                durable: false,
                max_len: Some((1, DropHead)),
                dlx: true,
                priority: false,
            },
        },
        Bind {
            q: 4,
            x: Fanout,
            key: 3,
        },
        Publish {
            x: Direct,
            key: 2,
            persistent: true,
            confirm: true,
            mandatory: false,
            priority: 3,
            headers: 2,
        },
        Bind {
            q: 0,
            x: Fanout,
            key: 4,
        },
        Bind {
            q: 4,
            x: Topic,
            key: 4,
        },
        Publish {
            x: Fanout,
            key: 5,
            persistent: true,
            confirm: true,
            mandatory: false,
            priority: 0,
            headers: 3,
        },
        Publish {
            x: Headers,
            key: 2,
            persistent: true,
            confirm: true,
            mandatory: false,
            priority: 0,
            headers: 1,
        },
        Publish {
            x: Fanout,
            key: 4,
            persistent: true,
            confirm: true,
            mandatory: false,
            priority: 3,
            headers: 0,
        },
        Consume {
            q: 4,
            ch: 2,
            no_ack: true,
            prefetch: 1,
        },
        Get {
            q: 0,
            ch: 1,
            no_ack: false,
        },
        Bind {
            q: 4,
            x: Fanout,
            key: 1,
        },
        Cancel { q: 4 },
        Publish {
            x: Fanout,
            key: 0,
            persistent: false,
            confirm: false,
            mandatory: false,
            priority: 0,
            headers: 2,
        },
        Consume {
            q: 4,
            ch: 3,
            no_ack: false,
            prefetch: 3,
        },
        Consume {
            q: 0,
            ch: 1,
            no_ack: false,
            prefetch: 0,
        },
        Cancel { q: 0 },
        Consume {
            q: 0,
            ch: 0,
            no_ack: true,
            prefetch: 2,
        },
        CloseConnection { conn: 0 },
    ];
    if let Err(e) = model::runner::run_with(&ops, Some(2)).await {
        panic!("{e}");
    }
}
