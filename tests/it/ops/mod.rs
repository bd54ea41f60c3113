//! Running it: probes and metrics, the CLI, the demo, packaging, TLS, secrets kept out of logs,
//! shutdown and crash recovery.

mod config_cli;
mod crash_resume;
mod demo;
mod packaging;
mod probes;
mod secrets;
mod shutdown;
mod tls;
