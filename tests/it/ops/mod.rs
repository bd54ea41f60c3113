//! Running it: probes and metrics, the CLI, the demo, packaging, TLS, secrets kept out of logs,
//! shutdown and crash recovery.

mod cluster;
mod cluster_balancer;
mod cluster_outage;
mod cluster_pending;
mod cluster_props;
mod cluster_shared;
mod config_cli;
mod crash_resume;
// The `demo` command exists only with the feature (on by default).
#[cfg(feature = "demo")]
mod demo;
mod packaging;
mod probes;
mod readme_zh;
mod secrets;
mod shutdown;
mod tls;
