//! Routing dead letters: through the dead-letter exchange into their new queues, persistent ones
//! stored there before they are removed from the queue they died in.
//!
//! A dead letter can make its new queue overflow, which kills another message, and so on; the
//! chain is followed with a work list rather than recursion, and RabbitMQ's cycle rule
//! ([`is_cycle`]) guarantees it ends.

use std::sync::Arc;

use warren_codec::FieldValue;

use super::VHost;
use crate::Queue;
use crate::dead_letter::{DeadLetter, dead_lettered, is_cycle};
use crate::timers::now_ms;

impl VHost {
    /// Dead-letters messages that died in `from`, then removes them from its store.
    pub(crate) fn dead_letter(&self, from: &Arc<Queue>, dead: Vec<DeadLetter>) {
        let mut work = vec![(from.clone(), dead)];
        let mut targets = Vec::new();
        while let Some((source, letters)) = work.pop() {
            let Some(target) = source.dead_letter_target() else {
                source.forget(&letters);
                continue;
            };
            let now = now_ms();
            for letter in &letters {
                let (message, keys) = match dead_lettered(
                    &letter.message,
                    letter.reason,
                    &source.name,
                    &target,
                    now,
                ) {
                    Ok(made) => made,
                    Err(e) => {
                        tracing::warn!(queue = %source.name, error = %e, "cannot dead-letter a message with malformed properties; dropped");
                        continue;
                    }
                };
                let props = message.properties.decode().ok();
                let headers = props.as_ref().and_then(|p| p.headers.as_ref());
                let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                targets.clear();
                let routed = self.topology().route(
                    target.exchange.as_bytes(),
                    &key_refs,
                    headers,
                    &mut targets,
                );
                if routed.is_err() {
                    // RabbitMQ drops dead letters whose exchange does not exist.
                    continue;
                }
                targets.retain(|q: &Arc<Queue>| {
                    let cycle = is_cycle_in(headers, letter, q);
                    if cycle {
                        tracing::warn!(queue = %q.name, "dead-letter cycle detected; message dropped");
                    }
                    !cycle
                });
                // Stored (once, under a new id: a dead letter is a new message) as any publish.
                self.fan_out(message, &mut targets, |q, more| work.push((q, more)));
            }
            source.forget(&letters);
        }
    }
}

fn is_cycle_in(headers: Option<&warren_codec::FieldTable>, letter: &DeadLetter, q: &Queue) -> bool {
    match headers.and_then(|h| h.get("x-death")) {
        Some(FieldValue::Array(deaths)) => is_cycle(deaths, letter.reason, q.name.as_bytes()),
        _ => false,
    }
}
