//! How file bytes reach the client: the download policy, exact Range pass-through, conditional
//! requests, and signed `/-/d/` URLs.

use bytes::Bytes;

/// The body type of every response this server writes.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub mod conditional;
pub mod local;
pub mod proxy;
pub mod range;
pub mod respond;
pub mod sign;
