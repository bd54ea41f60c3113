//! Integration tests: every test starts its own emulator on 127.0.0.1:0 and talks real HTTP.

mod common;

mod binary;
mod cdn;
mod control;
mod direct;
mod hosts;
mod limits;
mod oauth;
mod open_api;
mod personal;
mod personal_write;
mod share;
mod upload;
