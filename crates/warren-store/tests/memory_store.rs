//! The behavioural suite on [`MemoryStore`]; `reopen` rebuilds its state from its data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::MemoryHarness;

behaviour_suite!(MemoryHarness::new());
