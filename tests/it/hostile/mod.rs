//! Hostile clients: malformed and fuzzed requests, slow and greedy connections, password floods,
//! hostile use of the side stores, property tests of the parsers.

mod auth_flood;
mod fuzz_requests;
mod hostile_requests;
mod hostile_stores;
mod inputs;
mod properties;
mod slow_clients;
