//! `[[clients]]`: per-client overrides, chosen by the request's User-Agent.
//!
//! Each row names a User-Agent pattern (a case-insensitive substring) and what to change for
//! clients that match it. Rows are tried in order, operator rows first, then the built-in rows
//! the operator did not replace (a row with the same pattern replaces a built-in one); the first
//! match wins, and keys a row leaves out keep the defaults (the mount's download policy, junk
//! kept locally).

use serde::Deserialize;

use super::file::{fields_of, list, Report, Section};

/// What a client's file downloads do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientDownload {
    /// The mount's `download` policy.
    Mount,
    /// Always proxied, even on redirect and proxy-url mounts: for clients that follow a 302 to
    /// another host badly.
    Proxy,
}

impl ClientDownload {
    pub const ALL: [ClientDownload; 2] = [Self::Mount, Self::Proxy];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mount => "mount",
            Self::Proxy => "proxy",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// One row of the client table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRule {
    /// Matched as a case-insensitive substring of the User-Agent.
    pub user_agent: String,
    pub download: ClientDownload,
    /// Client junk (`._*`, `.DS_Store`, `Thumbs.db`, `desktop.ini`) is kept in the gateway's
    /// side store instead of being stored on 123.
    pub junk_local: bool,
    /// A built-in row (not written in the file).
    pub builtin: bool,
    /// `traffic_budget`: bytes the clients of this row may download from 123 per calendar
    /// month (China time), over all mounts; `None` for no budget of its own.
    pub traffic_budget: Option<u64>,
}

impl ClientRule {
    /// Whether this row applies to a User-Agent.
    pub fn matches(&self, user_agent: &str) -> bool {
        // Asked on every request (profile, traffic scope): compared in place, no lowercased
        // copies.
        let (hay, needle) = (user_agent.as_bytes(), self.user_agent.as_bytes());
        needle.is_empty()
            || hay
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
    }
}

/// The built-in rows. Windows' mini-redirector and RaiDrive fail to open files behind a 302 to
/// another host; Kodi's audio player does not follow redirects; ffmpeg's HTTP client (`Lavf`,
/// inside mpv, ffplay and media servers) sends its seeks after a 302 back to the first URL
/// without credentials and does not answer the challenge, so a seek fails.
pub fn builtin_clients() -> Vec<ClientRule> {
    ["Microsoft-WebDAV-MiniRedir", "RaiDrive", "Kodi", "Lavf"]
        .into_iter()
        .map(|ua| ClientRule {
            user_agent: ua.to_string(),
            download: ClientDownload::Proxy,
            junk_local: true,
            builtin: true,
            traffic_budget: None,
        })
        .collect()
}

/// The keys of one `[[clients]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub user_agent: Option<String>,
    pub download: Option<String>,
    pub junk_local: Option<bool>,
    pub traffic_budget: Option<String>,
}

/// The effective table: the file's rows, then the built-in rows they do not replace.
pub(super) fn resolve(report: &mut Report, tables: Vec<toml::Table>) -> Vec<ClientRule> {
    let mut rules: Vec<ClientRule> = Vec::new();
    for (i, mut table) in tables.into_iter().enumerate() {
        let mut s = Section::new(format!("clients[{i}]"));
        let valid = fields_of::<RawClient>();
        s.strip_unknown(report, &mut table, valid, |_| {
            let fix = format!("valid keys for a client are: {}", list(valid));
            ("unknown key".to_string(), fix)
        });
        let raw: RawClient = s.deserialize(report, table);
        let user_agent = match raw.user_agent {
            None => {
                s.missing(
                    report,
                    "user_agent",
                    "set it to a part of the client's User-Agent, like \"Kodi\"",
                );
                continue;
            }
            Some(ua) if ua.trim().is_empty() => {
                report.add(
                    s.key("user_agent"),
                    "empty, so it would match every client; set it to a part of the client's \
                     User-Agent, like \"Kodi\"",
                );
                continue;
            }
            Some(ua) => ua,
        };
        if let Some(first) = rules
            .iter()
            .position(|r| r.user_agent.eq_ignore_ascii_case(&user_agent))
        {
            report.add(
                s.key("user_agent"),
                format!(
                    "\"{user_agent}\" is already used by clients[{first}]; the first matching \
                     row wins, so merge the two rows"
                ),
            );
            continue;
        }
        let download = match raw.download {
            None => ClientDownload::Mount,
            Some(name) => ClientDownload::from_name(&name).unwrap_or_else(|| {
                let names: Vec<&str> = ClientDownload::ALL.iter().map(|d| d.as_str()).collect();
                report.add(
                    s.key("download"),
                    format!(
                        "\"{name}\" is not a client download override; use one of: {} \
                         (\"mount\" follows the mount's own download policy)",
                        list(&names)
                    ),
                );
                ClientDownload::Mount
            }),
        };
        let traffic_budget =
            super::resolve::traffic_budget(report, s.key("traffic_budget"), raw.traffic_budget);
        rules.push(ClientRule {
            user_agent,
            download,
            junk_local: raw.junk_local.unwrap_or(true),
            builtin: false,
            traffic_budget,
        });
    }
    let builtin: Vec<ClientRule> = builtin_clients()
        .into_iter()
        .filter(|b| {
            !rules
                .iter()
                .any(|r| r.user_agent.eq_ignore_ascii_case(&b.user_agent))
        })
        .collect();
    rules.extend(builtin);
    rules
}

#[cfg(test)]
mod match_tests {
    use super::*;

    fn rule(ua: &str) -> ClientRule {
        ClientRule {
            user_agent: ua.to_string(),
            download: ClientDownload::Proxy,
            junk_local: false,
            builtin: false,
            traffic_budget: None,
        }
    }

    #[test]
    fn matches_a_substring_in_any_case() {
        assert!(rule("kodi").matches("Kodi/20.2 (X11)"));
        assert!(rule("LAVF").matches("Lavf/59.27.100"));
        assert!(rule("").matches("anything"));
        assert!(!rule("Kodi").matches(""));
        assert!(!rule("Kodi/20.2 (X11) longer").matches("Kodi/20.2"));
        assert!(!rule("Lavf").matches("VLC/3.0"));
    }
}
