//! The scenario registry and the assertion helpers shared by the scenario modules.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Why a scenario did not pass: the broker did not behave as RabbitMQ 3.10 does (or the
/// client failed). Every scenario here is expressible with lapin, so there is no "skip".
#[derive(Debug)]
pub enum Outcome {
    /// What went wrong.
    Fail(String),
}

impl From<lapin::Error> for Outcome {
    fn from(e: lapin::Error) -> Self {
        Outcome::Fail(format!("lapin error: {e}"))
    }
}

/// What a scenario returns: a detail for the report, or why it did not pass.
pub type Res<T = String> = Result<T, Outcome>;

type Run = fn(String) -> Pin<Box<dyn Future<Output = Res>>>;

/// One named scenario.
pub struct Scenario {
    /// The name shared with the other clients.
    pub name: &'static str,
    /// Runs it against a broker URL.
    pub run: Run,
}

/// Builds a `Vec<Scenario>` from `"name" => async_fn(url: String) -> Res` pairs.
#[macro_export]
macro_rules! scenarios {
    ($($name:literal => $f:path),* $(,)?) => {
        vec![$($crate::harness::Scenario {
            name: $name,
            run: |url| Box::pin($f(url)),
        }),*]
    };
}

/// Fails with `msg` unless `cond`.
pub fn check(cond: bool, msg: impl Into<String>) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(Outcome::Fail(msg.into()))
    }
}

/// Fails unless `got == want`, showing both.
pub fn eq<T: PartialEq + Debug>(got: T, want: T, what: &str) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(Outcome::Fail(format!("{what}: got {got:?}, want {want:?}")))
    }
}

/// A failure with this message.
pub fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(Outcome::Fail(msg.into()))
}

/// 64 pseudo-random bits (std's randomly keyed hasher over a counter and the clock).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// A name no other run uses: `conf.<tag>.<pid>.<random>`.
pub fn unique(tag: &str) -> String {
    format!(
        "conf.{tag}.{}.{:08x}",
        std::process::id(),
        random_u64() as u32
    )
}

/// A future that completes once a timer thread has slept `ms` (no async runtime here: lapin
/// runs its own I/O threads, and the scenarios are driven by `futures_lite::future::block_on`).
pub async fn sleep(ms: u64) {
    let (tx, rx) = async_oneshot();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        tx.fire();
    });
    rx.await;
}

struct Shot {
    fired: bool,
    waker: Option<std::task::Waker>,
}

/// Fires a `Wait` once.
struct Fire(std::sync::Arc<std::sync::Mutex<Shot>>);

/// Completes when its `Fire` fires.
struct Wait(std::sync::Arc<std::sync::Mutex<Shot>>);

fn async_oneshot() -> (Fire, Wait) {
    let shot = std::sync::Arc::new(std::sync::Mutex::new(Shot {
        fired: false,
        waker: None,
    }));
    (Fire(shot.clone()), Wait(shot))
}

impl Fire {
    fn fire(self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.fired = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.fired {
            std::task::Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    }
}

/// Polls `pred` every 20 ms until it is true or `ms` passed; returns its last value.
pub async fn wait_until(ms: u64, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        if pred() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(20).await;
    }
}

/// The suite's URLs end in `/` (vhost `/` for the other clients); lapin reads an empty path
/// as vhost `""`, so the trailing `/` goes (an absent path is vhost `/` for lapin). Query
/// parameters (`?heartbeat=2`) may follow.
pub fn lapin_url(url: &str) -> String {
    url.strip_suffix('/').unwrap_or(url).to_string()
}

/// The reply code and text of a channel or connection close carried by a lapin error.
pub fn close_of(e: &lapin::Error) -> Option<(u16, String)> {
    match e {
        lapin::Error::ProtocolError(amqp) => {
            Some((amqp.get_id(), amqp.get_message().as_str().to_string()))
        }
        _ => None,
    }
}

/// Checks that `result` is the broker closing the channel with `code` and exactly `text`;
/// returns "code text" for the report.
pub fn expect_close<T: Debug>(result: lapin::Result<T>, code: u16, text: &str) -> Res {
    match result {
        Ok(v) => fail(format!("no channel.close {code} (call succeeded: {v:?})")),
        Err(e) => match close_of(&e) {
            Some((got, got_text)) => {
                eq(got, code, "reply code")?;
                eq(got_text.as_str(), text, "reply text")?;
                Ok(format!("{got} {got_text}"))
            }
            None => fail(format!("no channel.close {code}: {e}")),
        },
    }
}
