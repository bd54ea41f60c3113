//! The 123 hosts the emulator stands in for. Each one is served on its own loopback listener, so
//! each has its own origin: a client that sends a request to the wrong host, or names the wrong
//! one in `Referer`/`Origin`, fails as it would against 123.

use std::collections::BTreeMap;
use std::fmt;

/// One of 123's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// The Open API (`open-api.123pan.com`): every `/api/v1`, `/api/v2` call and `mkdir`,
    /// `create`, `upload_complete`, `/upload/v2/file/domain`. Its URL is `Emulator::base_url`.
    Open,
    /// The upload server named by `create`'s `servers` and `/upload/v2/file/domain`
    /// (`openapi-upload.123242.com`): slices.
    Upload,
    /// The download CDN behind `downloadUrl` and the share hop (`download-cdn.cjjd19.com`).
    Cdn,
    /// The direct-link host (`vip.123pan.cn`).
    Direct,
    /// The web API (`yun.123pan.com/b/api`), share and personal endpoints; also the origin the
    /// web client's pages live on, so its `Referer`/`Origin` name this host.
    Web,
    /// The web login host (`login.123pan.com/api`).
    Login,
    /// The share and personal download hop (`web-proN.123952.com`).
    WebPro,
    /// The presigned part host of personal uploads.
    S3,
    /// A token-renewal service (OpenList's `api.oplist.org/123cloud/renewapi` or a self-hosted
    /// copy): not 123's, but a host of its own that calls 123's OAuth token endpoint.
    Renew,
}

impl Host {
    /// Every host, in the order `--hosts-port-base` numbers them (the Open API first).
    pub const ALL: [Host; 9] = [
        Host::Open,
        Host::Upload,
        Host::Cdn,
        Host::Direct,
        Host::Web,
        Host::Login,
        Host::WebPro,
        Host::S3,
        Host::Renew,
    ];

    /// Its name in `GET /__emulator/hosts` (the stats word where the host has one).
    pub fn name(self) -> &'static str {
        match self {
            Host::Open => "open",
            Host::Upload => "upload",
            Host::Cdn => "cdn",
            Host::Direct => "direct",
            Host::Web => "web",
            Host::Login => "login",
            Host::WebPro => "web-pro",
            Host::S3 => "s3",
            Host::Renew => "renew",
        }
    }

    /// The host named `name` (as in `name()`).
    pub fn from_name(name: &str) -> Option<Host> {
        Host::ALL.into_iter().find(|h| h.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The base URL (`http://127.0.0.1:PORT`, no trailing slash) of every host.
#[derive(Debug, Clone)]
pub(crate) struct HostUrls([String; 9]);

impl HostUrls {
    pub fn new(urls: [String; 9]) -> HostUrls {
        HostUrls(urls)
    }

    pub fn get(&self, h: Host) -> &str {
        &self.0[h.index()]
    }

    /// `{ "open": url, "upload": url, … }`.
    pub fn map(&self) -> BTreeMap<String, String> {
        Host::ALL
            .into_iter()
            .map(|h| (h.name().to_string(), self.get(h).to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for (i, h) in Host::ALL.into_iter().enumerate() {
            assert_eq!(h.index(), i);
            assert_eq!(Host::from_name(h.name()), Some(h));
        }
        assert_eq!(Host::from_name("nope"), None);
    }
}
