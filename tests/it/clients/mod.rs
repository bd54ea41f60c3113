//! Real third-party clients (litmus, rclone, ffmpeg, Chromium) and replayed request sequences of
//! Windows Explorer and Finder.

mod browser;
mod chromium;
mod client_sequences;
mod ffmpeg;
pub(crate) mod litmus;
mod rclone;
