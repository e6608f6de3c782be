//! Workspace-level examples, benchmarks and end-to-end tests for the `supervisor` and `jobs`
//! crates. This package has no library code of its own; the README below is compiled as its
//! documentation so that its samples are checked by `cargo test`.
#![doc = include_str!("../README.md")]
