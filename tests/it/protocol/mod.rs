//! WebDAV as the README promises it: the conformance matrix over every backend × policy, documented
//! behaviour, the one-pass PROPFIND writer, writes through every writable backend.

mod conformance;
mod documented;
mod propfind_fast;
mod writes;
