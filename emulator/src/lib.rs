//! pan123-emulator: a faithful local stand-in for 123pan (123云盘) servers, for tests, benchmarks
//! and demos of the pan123-webdav gateway. Each 123 host has its own loopback listener (its own
//! origin): the Open API, its upload host, the download CDN, the direct-link host, the web API
//! (share links and the personal account), the web login host, the download hop and the
//! presigned-part upload host, and the token-renewal service; every listener also answers the control API. See the crate README
//! for URLs, flags, switches and faults.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pan123_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! emu.put_file("/docs/hello.txt", "hello");
//! println!("Open API at {}", emu.base_url());
//! println!("web API at {}", emu.host_url(pan123_emulator::Host::Web));
//! # Ok(()) }
//! ```

// Handlers return a ready error response as `Err(Resp)` for early exits; a response is built
// at most once per request, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

pub mod auth_key;
mod cdn;
pub mod clock;
pub mod config;
pub mod content;
mod control;
mod direct;
mod emulator;
pub mod faults;
pub mod hosts;
mod http;
mod multipart;
pub mod names;
pub mod oauth;
mod open_api;
mod personal;
mod personal_upload;
mod personal_write;
pub mod qps;
mod range;
mod s3;
mod s3_static;
mod seed;
mod server;
mod share;
pub mod sign;
mod sigv4;
mod state;
pub mod stats;
mod tokens;
mod upload;
mod web;
mod webpro;

pub use config::{
    AuthKeyPath, EmulatorConfig, ErrorStatus, GenerateSpec, OAuthExpiresIn, OverwriteAt, ShareSpec,
    Switches, TakenName, TrafficMessage, UploadCredentials, WebLoginRefusal, WebRateLimitStyle,
    WebSignatureFailure, ZeroByteUpload,
};
pub use emulator::{Emulator, EntryInfo};
pub use faults::{Fault, FaultKind};
pub use hosts::Host;
pub use personal_upload::{MAX_PRESIGN_BATCH, WEB_PART_SIZE};
pub use qps::default_qps;
pub use stats::Stats;
pub use web::MSG_STALE_ITEM;
