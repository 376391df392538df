//! Developer commands for the Warren workspace. The code generator lives in the library so that a
//! test can run it and fail when the committed output is stale.

pub mod codegen;
