//! The behavioural suite: every case takes a fresh [`Harness`](super::Harness) and states one
//! rule of the store. `memory_store.rs` and `sled_store.rs` run all of them.

mod definitions;
mod messages;

// Not every test binary runs the suite (faulty_store.rs only borrows helpers).
#[allow(unused_imports)]
pub use definitions::*;
#[allow(unused_imports)]
pub use messages::*;
