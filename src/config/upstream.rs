//! How the gateway presents itself to 123, in `[server]`: `qps_scale` (the share of 123's
//! published per-endpoint limits it uses; docs/123.md, open §11, "QPS") and `user_agent` (the
//! `User-Agent` of its own API calls; docs/123.md, web §7: 123 tracks clients by it).

use super::file::{Report, Section};

/// Default `server.qps_scale`: 80 % of the published limits, leaving room for the window
/// edges and for other clients of the same account.
pub const DEFAULT_QPS_SCALE: f64 = 0.8;
/// Smallest and largest accepted `server.qps_scale`.
pub const QPS_SCALE_RANGE: (f64, f64) = (0.1, 1.0);
/// Default `server.user_agent`: this project's own name and version, never another project's.
pub const DEFAULT_USER_AGENT: &str = concat!("pan123-webdav/", env!("CARGO_PKG_VERSION"));
/// Longest accepted `server.user_agent`.
const MAX_USER_AGENT_LEN: usize = 256;

/// `server.qps_scale`, its default when absent or out of range (reported).
pub(super) fn resolve_qps_scale(report: &mut Report, s: &Section, value: Option<f64>) -> f64 {
    let (min, max) = QPS_SCALE_RANGE;
    match value {
        None => DEFAULT_QPS_SCALE,
        Some(v) if (min..=max).contains(&v) => v,
        Some(v) => {
            report.add(
                s.key("qps_scale"),
                format!(
                    "{v} is out of range; use a number from {min} to {max} (default \
                     {DEFAULT_QPS_SCALE}): the share of 123's published per-endpoint limits the \
                     gateway uses"
                ),
            );
            DEFAULT_QPS_SCALE
        }
    }
}

/// `server.user_agent`: printable ASCII (it is an HTTP header), not empty, at most 256 bytes.
pub(super) fn resolve_user_agent(
    report: &mut Report,
    s: &Section,
    value: Option<String>,
) -> String {
    let Some(text) = value else {
        return DEFAULT_USER_AGENT.to_string();
    };
    let trimmed = text.trim();
    if trimmed.is_empty()
        || trimmed.len() > MAX_USER_AGENT_LEN
        || !trimmed.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        report.add(
            s.key("user_agent"),
            format!(
                "must be 1 to {MAX_USER_AGENT_LEN} printable ASCII characters (it is sent as an \
                 HTTP header); leave it out for the default \"{DEFAULT_USER_AGENT}\""
            ),
        );
        return DEFAULT_USER_AGENT.to_string();
    }
    trimmed.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::resolve::parse_with_env;
    use super::super::ConfigError;
    use super::*;

    const MOUNT: &str = "\n[[mounts]]\npath = \"/open\"\nbackend = \"open\"\nclient_id = \"id\"\nclient_secret = \"secret\"\n";

    fn parse(server: &str) -> Result<super::super::Config, ConfigError> {
        let text = format!("[server]\n{server}\n{MOUNT}");
        parse_with_env(&text, Path::new("/etc/pan/config.toml"), &|_| None)
    }

    fn problems(server: &str) -> Vec<String> {
        match parse(server) {
            Ok(_) => panic!("expected problems for {server}"),
            Err(err) => err
                .problems()
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn defaults() {
        let c = parse("").expect("config");
        assert_eq!(c.server.qps_scale, 0.8);
        assert_eq!(c.server.user_agent, DEFAULT_USER_AGENT);
        assert!(DEFAULT_USER_AGENT.starts_with("pan123-webdav/"));
    }

    #[test]
    fn values_in_range() {
        let c = parse("qps_scale = 0.5\nuser_agent = \"my-box/1.0\"").expect("config");
        assert_eq!(c.server.qps_scale, 0.5);
        assert_eq!(c.server.user_agent, "my-box/1.0");
        assert_eq!(
            parse("qps_scale = 1").expect("config").server.qps_scale,
            1.0
        );
        assert_eq!(
            parse("qps_scale = 0.1").expect("config").server.qps_scale,
            0.1
        );
    }

    #[test]
    fn refusals_name_file_key_and_reason() {
        assert_eq!(
            problems("qps_scale = 1.5"),
            [
                "server.qps_scale: 1.5 is out of range; use a number from 0.1 to 1 (default 0.8): \
              the share of 123's published per-endpoint limits the gateway uses"
            ]
        );
        assert_eq!(problems("qps_scale = 0.05").len(), 1);
        assert_eq!(problems("qps_scale = 0").len(), 1);
        let ua = problems("user_agent = \"\"");
        assert_eq!(ua.len(), 1);
        assert!(
            ua[0].starts_with("server.user_agent: must be 1 to 256 printable ASCII"),
            "{ua:?}"
        );
        assert_eq!(problems("user_agent = \"caf\u{e9}\"").len(), 1);
        // The file is named with the problems.
        let err = parse("qps_scale = 2").expect_err("refused");
        assert!(err.to_string().contains("/etc/pan/config.toml"), "{err}");
    }
}
