//! The ready messages of a queue: one FIFO per priority level (a single one unless the queue was
//! declared with `x-max-priority`), with the counts that length limits need.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::Message;

/// No deadline: the message never expires.
pub const NEVER: u64 = u64::MAX;

/// A message waiting for a consumer.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// When it expires (epoch milliseconds), or [`NEVER`].
    pub deadline: u64,
    /// Times it was handed out and came back (the delivery limit counts these).
    pub returns: u32,
    /// It was delivered before.
    pub redelivered: bool,
}

/// Ready messages in delivery order: highest priority first, FIFO within a priority.
#[derive(Debug, Default)]
pub struct ReadyList {
    /// Index = priority level.
    levels: Vec<VecDeque<Ready>>,
    len: usize,
    bytes: u64,
}

impl ReadyList {
    /// A list with priority levels `0..=max_priority`.
    pub fn new(max_priority: u8) -> Self {
        ReadyList {
            levels: (0..=max_priority).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes held (what `x-max-length-bytes` limits).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn level_of(&self, message: &Message) -> usize {
        (message.priority as usize).min(self.levels.len().saturating_sub(1))
    }

    /// Appends a message at its priority.
    pub fn push_back(&mut self, r: Ready) {
        let level = self.level_of(&r.message);
        self.len += 1;
        self.bytes += r.message.body.len() as u64;
        if let Some(l) = self.levels.get_mut(level) {
            l.push_back(r);
        }
    }

    fn highest(&self) -> Option<usize> {
        self.levels.iter().rposition(|l| !l.is_empty())
    }

    /// Takes the next message to deliver.
    pub fn pop_front(&mut self) -> Option<Ready> {
        let level = self.highest()?;
        let r = self.levels.get_mut(level)?.pop_front()?;
        self.taken(&r);
        Some(r)
    }

    /// Takes, from the head of each level, every message whose deadline is at or before `now`.
    /// Like RabbitMQ, an expired message behind a live one waits until it reaches the head.
    pub fn pop_expired(&mut self, now: u64, out: &mut Vec<Ready>) {
        for level in 0..self.levels.len() {
            while let Some(l) = self.levels.get_mut(level)
                && l.front().is_some_and(|r| r.deadline <= now)
                && let Some(r) = l.pop_front()
            {
                self.len -= 1;
                self.bytes -= r.message.body.len() as u64;
                out.push(r);
            }
        }
    }

    /// The earliest deadline among the level heads, or [`NEVER`].
    pub fn next_deadline(&self) -> u64 {
        self.levels
            .iter()
            .filter_map(|l| l.front().map(|r| r.deadline))
            .min()
            .unwrap_or(NEVER)
    }

    /// Puts settled-with-requeue messages back in their original order: ahead of the messages
    /// never delivered, behind none that came before them.
    pub fn requeue(&mut self, mut back: Vec<Ready>) {
        // Newest first, so that the usual case (all belong at the front) inserts at index 0.
        back.sort_by_key(|r| std::cmp::Reverse(r.seq));
        for r in back {
            let level = self.level_of(&r.message);
            self.len += 1;
            self.bytes += r.message.body.len() as u64;
            let Some(l) = self.levels.get_mut(level) else {
                continue;
            };
            // Usually the requeued message belongs at the front; otherwise find its place.
            let at = l.partition_point(|x| x.seq < r.seq);
            l.insert(at, r);
        }
    }

    /// Takes every message.
    pub fn drain(&mut self) -> impl Iterator<Item = Ready> + '_ {
        self.len = 0;
        self.bytes = 0;
        self.levels.iter_mut().flat_map(|l| l.drain(..))
    }

    fn taken(&mut self, r: &Ready) {
        self.len -= 1;
        self.bytes -= r.message.body.len() as u64;
    }
}
