//! Model-based testing of the message lifecycle: operations and their generator, the reference
//! model, and the runner that drives the real broker and compares.

pub mod ops;
pub mod reference;
pub mod runner;
