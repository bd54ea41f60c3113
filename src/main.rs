//! The `pan123-webdav` binary: everything lives in the library (`pan123_webdav::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    pan123_webdav::cli::run()
}
