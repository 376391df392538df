//! Publisher-confirm bookkeeping: which delivery tags the broker has settled.
//!
//! A broker may settle tags singly and out of order, or many at once with `multiple`; this counts
//! each tag once either way, so a producer knows how many publishes are still unconfirmed.

use std::collections::BTreeSet;

/// The settled tags of one confirm-mode channel (tags start at 1).
#[derive(Debug, Default)]
pub struct ConfirmTracker {
    /// Every tag up to and including this one is settled.
    upto: u64,
    /// Tags above `upto` settled one by one.
    singles: BTreeSet<u64>,
}

impl ConfirmTracker {
    /// Records `basic.ack`/`basic.nack` for `tag`, returning how many tags it newly settles.
    pub fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        if tag <= self.upto {
            return 0;
        }
        let newly = if multiple {
            let above = self.singles.split_off(&(tag + 1));
            let already = self.singles.len() as u64;
            self.singles = above;
            let n = tag - self.upto - already;
            self.upto = tag;
            n
        } else if self.singles.insert(tag) {
            1
        } else {
            0
        };
        while self.singles.first() == Some(&(self.upto + 1)) {
            self.singles.pop_first();
            self.upto += 1;
        }
        newly
    }

    /// How many tags are settled in all.
    pub fn settled(&self) -> u64 {
        self.upto + self.singles.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiple_and_single_acks_count_each_tag_once() {
        let mut t = ConfirmTracker::default();
        assert_eq!(t.settle(3, false), 1);
        assert_eq!(t.settle(3, false), 0);
        assert_eq!(t.settle(1, false), 1);
        assert_eq!(t.settled(), 2);
        assert_eq!(t.settle(5, true), 3); // 2, 4, 5
        assert_eq!(t.settled(), 5);
        assert_eq!(t.settle(4, true), 0);
        assert_eq!(t.settle(7, false), 1);
        assert_eq!(t.settle(6, false), 1);
        assert_eq!(t.settled(), 7);
        assert_eq!(t.settle(10, true), 3);
        assert_eq!(t.settled(), 10);
    }
}
