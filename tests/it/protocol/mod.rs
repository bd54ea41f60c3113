//! WebDAV as the README promises it: the conformance matrix over every backend × policy, documented
//! behaviour, the one-pass PROPFIND writer, writes through every writable backend.

mod base_path;
mod conformance;
mod cross_mount;
mod documented;
mod empty_files;
mod freshness;
mod propfind_fast;
mod public_url;
mod upload_slices;
mod writes;
