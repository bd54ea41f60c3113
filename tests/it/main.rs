//! Every integration test, as one binary: one link instead of one per file, and one pool of
//! test threads, so that tests waiting on pacing or timeouts overlap. Each test starts its own
//! emulator and gateway on ephemeral loopback ports (`common::TestEnv`); nothing in this
//! process is shared between tests except the test harness. `tests/README.md` maps each file
//! to what it proves. (`tests/load.rs` is a binary of its own: it measures this process's
//! descriptors and memory.)

mod common;

mod backends;
mod clients;
mod hostile;
mod ops;
mod protocol;
