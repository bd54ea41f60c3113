//! Each backend beyond the conformance matrix: Open, share, web (personal) and link mounts, the
//! upload engine, and 123's faults, envelopes and timeouts.

mod auth_key_path;
mod delete_mode;
mod envelopes;
mod link;
mod open_logins;
mod open_read;
mod share;
mod timeouts;
mod traffic_quota;
mod upload_engine;
mod upstream_faults;
mod upstream_timeouts;
mod upstream_unreachable;
mod user_agent;
mod web;
mod web_logins;
