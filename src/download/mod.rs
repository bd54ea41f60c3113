//! How file bytes reach the client: the download policy, exact Range pass-through, conditional
//! requests, and signed `/-/d/` URLs.

/// Re-exported for the code that still names it here; its home is [`crate::response`].
pub use crate::response::ResponseBody;

pub mod conditional;
pub mod local;
pub mod proxy;
pub mod range;
pub mod respond;
pub mod sign;
