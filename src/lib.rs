//! pan123-webdav: a WebDAV gateway that serves 123pan storage to ordinary WebDAV clients.
//!
//! Layers, outermost first: `server` (listener, auth, routing, client profiles), `download`
//! (policy and bytes on the wire), `dav` (the dav-server adapter), `vfs` (paths and caches),
//! `backend` (one trait, one folder per 123 API); README's "Layout" section lists the folders.
//! What the code relies on from 123's services is in `docs/123.md`, which comments cite as
//! `docs/123.md, open §N` or `web §N`.

pub mod backend;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dav;
#[cfg(feature = "demo")]
pub mod demo;
pub mod download;
pub mod malloc;
pub mod metrics;
pub mod mount;
pub mod page;
pub mod response;
pub mod server;
pub mod state_files;
pub mod traffic;
pub mod upload;
pub mod vfs;
