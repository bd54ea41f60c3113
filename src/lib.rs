//! pan123-webdav: a WebDAV gateway that serves 123pan storage to ordinary WebDAV clients.
//!
//! Layers, outermost first: `server` (listener, auth, routing, client profiles), `download`
//! (policy and bytes on the wire), `dav` (the dav-server adapter), `vfs` (paths and caches),
//! `backend` (one trait, one folder per 123 API). See ARCHITECTURE.md in the shared docs.

pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dav;
pub mod demo;
pub mod download;
pub mod metrics;
pub mod mount;
pub mod response;
pub mod server;
pub mod state_files;
pub mod upload;
pub mod vfs;
