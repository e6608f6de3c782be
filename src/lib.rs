//! Workspace-level examples, benchmarks and end-to-end tests for the `supervisor` and `jobs` crates.
//!
//! This package has no library code of its own; see `crates/` for the crates.
