//! Client profiles: the User-Agent turned once per request into named behaviours.

use http::HeaderMap;

/// What the gateway adapts to a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientProfile {
    /// The client follows redirects to foreign hosts badly: proxy even on redirect mounts.
    /// Windows' mini-redirector and RaiDrive fail to open files behind a 302 to another host;
    /// Kodi's audio player does not follow redirects.
    pub never_redirect: bool,
    /// Windows Explorer (mini-redirector).
    pub windows: bool,
    /// macOS Finder.
    pub finder: bool,
}

impl ClientProfile {
    /// The profile for a request, from its User-Agent.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let ua = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let windows = ua.contains("Microsoft-WebDAV-MiniRedir");
        let finder = ua.contains("WebDAVFS") || ua.contains("WebDAVLib");
        let never_redirect = windows || ua.contains("RaiDrive") || ua.contains("Kodi");
        Self {
            never_redirect,
            windows,
            finder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(ua: &str) -> ClientProfile {
        let mut h = HeaderMap::new();
        h.insert(http::header::USER_AGENT, ua.parse().unwrap());
        ClientProfile::from_headers(&h)
    }

    #[test]
    fn table() {
        assert!(profile("Microsoft-WebDAV-MiniRedir/10.0.19045").never_redirect);
        assert!(profile("RaiDrive/2023.9.0").never_redirect);
        assert!(profile("Kodi/20.2 (X11; Linux x86_64)").never_redirect);
        assert!(profile("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0").finder);
        assert!(!profile("rclone/v1.60.1").never_redirect);
        assert_eq!(
            ClientProfile::from_headers(&HeaderMap::new()),
            ClientProfile::default()
        );
    }
}
