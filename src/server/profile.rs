//! Client profiles: the User-Agent turned once per request into named behaviours, from the
//! `[[clients]]` table (`config::ClientRule`; its built-in rows are the defaults).

use http::HeaderMap;

use crate::config::{builtin_clients, ClientDownload, ClientRule};

/// What the gateway adapts to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientProfile {
    /// The client follows redirects to foreign hosts badly: proxy even on redirect mounts.
    /// Built in for Windows' mini-redirector, RaiDrive, Kodi and ffmpeg (`config::builtin_clients`
    /// says why).
    pub never_redirect: bool,
    /// Client junk (`._*`, `.DS_Store`, `Thumbs.db`, `desktop.ini`) is answered from the
    /// gateway's side store and never reaches 123.
    pub junk_local: bool,
    /// Windows Explorer (mini-redirector).
    pub windows: bool,
    /// macOS Finder.
    pub finder: bool,
}

impl Default for ClientProfile {
    /// A client no row matches: the mount's policy, junk kept locally.
    fn default() -> Self {
        Self {
            never_redirect: false,
            junk_local: true,
            windows: false,
            finder: false,
        }
    }
}

impl ClientProfile {
    /// The profile for a request under the built-in rows only.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_rules(headers, &builtin_clients())
    }

    /// The profile for a request: the first row of `rules` whose pattern is in the User-Agent.
    pub fn from_rules(headers: &HeaderMap, rules: &[ClientRule]) -> Self {
        let ua = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut profile = Self {
            windows: ua.contains("Microsoft-WebDAV-MiniRedir"),
            finder: ua.contains("WebDAVFS") || ua.contains("WebDAVLib"),
            ..Self::default()
        };
        if let Some(rule) = rules.iter().find(|r| r.matches(ua)) {
            profile.never_redirect = rule.download == ClientDownload::Proxy;
            profile.junk_local = rule.junk_local;
        }
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ua: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::USER_AGENT, ua.parse().unwrap());
        h
    }

    fn profile(ua: &str) -> ClientProfile {
        ClientProfile::from_headers(&headers(ua))
    }

    #[test]
    fn built_in_table() {
        assert!(profile("Microsoft-WebDAV-MiniRedir/10.0.19045").never_redirect);
        assert!(profile("Microsoft-WebDAV-MiniRedir/10.0.19045").windows);
        assert!(profile("RaiDrive/2023.9.0").never_redirect);
        assert!(profile("Kodi/20.2 (X11; Linux x86_64)").never_redirect);
        assert!(profile("Lavf/59.27.100").never_redirect);
        let finder = profile("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0");
        assert!(finder.finder && finder.junk_local && !finder.never_redirect);
        assert!(profile("WebDAVLib/1.3").finder);
        assert!(!profile("rclone/v1.60.1").never_redirect);
        assert_eq!(
            ClientProfile::from_headers(&HeaderMap::new()),
            ClientProfile::default()
        );
    }

    #[test]
    fn first_matching_row_wins_and_omitted_keys_keep_defaults() {
        let rules = vec![
            ClientRule {
                user_agent: "kodi".into(),
                download: ClientDownload::Mount,
                junk_local: true,
                builtin: false,
                traffic_budget: None,
            },
            ClientRule {
                user_agent: "rclone".into(),
                download: ClientDownload::Mount,
                junk_local: false,
                builtin: false,
                traffic_budget: None,
            },
            ClientRule {
                user_agent: "rclone/v1".into(),
                download: ClientDownload::Proxy,
                junk_local: true,
                builtin: false,
                traffic_budget: None,
            },
        ];
        let kodi = ClientProfile::from_rules(&headers("Kodi/20.2"), &rules);
        assert!(
            !kodi.never_redirect,
            "the operator's row replaced the built-in one"
        );
        let rclone = ClientProfile::from_rules(&headers("rclone/v1.60.1"), &rules);
        assert!(!rclone.junk_local && !rclone.never_redirect);
        assert_eq!(
            ClientProfile::from_rules(&headers("curl/8"), &rules),
            ClientProfile::default()
        );
    }
}
