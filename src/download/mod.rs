//! How file bytes reach the client: the download policy ([`policy`]), the signed `/-/d/`
//! route ([`signed_route`]), the local proxy ([`proxy`]) over the one upstream fetch
//! ([`upstream::fetch`]), exact Range pass-through, conditional requests and local bytes.

pub mod client;
pub mod conditional;
pub mod exact;
pub mod judge;
pub mod local;
pub mod metered;
pub mod policy;
pub mod proxy;
pub mod range;
pub mod remote;
pub mod respond;
pub mod sign;
pub mod signed_route;
#[cfg(test)]
pub(crate) mod test_util;
pub mod upstream;

pub use policy::{serve_file, serve_memory, Downloads, Failed, Failure, FileRequest, VfsLinks};
pub use upstream::{fetch, LinkSource, ProxyError};
