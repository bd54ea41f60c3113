//! The download policy: how the bytes of one file reach this client (a redirect to 123's
//! link, the local proxy, or a signed `proxy-url` link to this gateway), decided per mount and
//! per client profile. [`serve_file`] is the one entry point for GET and HEAD of a file.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};

use super::conditional::{preflight, Preflight, Validators};
use super::local;
use super::proxy::send_file;
use super::respond;
use super::sign::UrlSigner;
use super::upstream::{LinkSource, ProxyError};
use crate::backend::{Entry, Error, Link};
use crate::clock::Clock;
use crate::config::{ClientRule, DownloadPolicy};
use crate::mount::Mount;
use crate::response::status_text;
use crate::response::ResponseBody;
use crate::traffic::{Meter, Refused, Scope};

/// What the download policy decided for one GET.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Redirect,
    Proxy,
    ProxyUrl,
}

/// Picks how a file's bytes reach this client. A client that cannot follow redirects
/// (`never_redirect`) is always proxied.
pub fn delivery(policy: DownloadPolicy, portable_links: bool, never_redirect: bool) -> Delivery {
    let wanted = match policy {
        DownloadPolicy::Auto if portable_links => Delivery::Redirect,
        DownloadPolicy::Auto | DownloadPolicy::Proxy => Delivery::Proxy,
        DownloadPolicy::Redirect => Delivery::Redirect,
        DownloadPolicy::ProxyUrl => Delivery::ProxyUrl,
    };
    if never_redirect && wanted != Delivery::Proxy {
        return Delivery::Proxy;
    }
    wanted
}

/// What the download path needs from the server, borrowed for one request.
pub struct Downloads<'a> {
    /// The client for CDN downloads (one connection pool with the API calls), the counters
    /// and the upstream timeouts.
    pub upstream: &'a crate::backend::Upstream,
    /// Signs and checks `/-/d/` links (`server.signing_key`).
    pub signer: Option<&'a UrlSigner>,
    /// How long a signed link stays valid (`server.sign_ttl`).
    pub sign_ttl: Duration,
    /// The clock signed links expire by.
    pub clock: &'a Clock,
    /// `server.public_url`: where signed links point when a mount has no `proxy_url`.
    pub public_url: Option<&'a str>,
    /// `server.base_path` (empty at the root).
    pub base_path: &'a str,
    /// The traffic meter and its budgets (`traffic_budget`).
    pub traffic: &'a Arc<Meter>,
    /// `[[clients]]`: a row's own `traffic_budget` applies to the clients it matches.
    pub clients: &'a [ClientRule],
}

impl Downloads<'_> {
    /// The budgets a download of `mount` by the client sending `headers` counts against: the
    /// mount's and its `[[clients]]` row's (the first row matching the User-Agent).
    pub fn scope(&self, mount: &Mount, headers: &HeaderMap) -> Scope {
        let ua = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let client = self
            .clients
            .iter()
            .find(|r| r.matches(ua))
            .map(|r| (r.user_agent.clone(), r.traffic_budget));
        Scope {
            mount: mount.label.clone(),
            mount_budget: mount.config.traffic_budget,
            client,
        }
    }

    /// The budgets of a GET (`None` for HEAD: no bytes), or why a budget refuses it (answer
    /// [`Self::budget_refused`]), before 123 is asked for anything.
    pub fn admit(
        &self,
        mount: &Mount,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Scope>, Refused> {
        match self.scope_of(mount, method, headers) {
            Some(scope) => self.traffic.admit(&scope).map(|()| Some(scope)),
            None => Ok(None),
        }
    }

    /// The budgets a request counts against: a GET's (`None` for HEAD: no bytes).
    fn scope_of(&self, mount: &Mount, method: &Method, headers: &HeaderMap) -> Option<Scope> {
        (method == Method::GET).then(|| self.scope(mount, headers))
    }

    /// 503 until the month ends, for a download a budget does not allow.
    pub fn budget_refused(&self, refused: &Refused) -> Response<ResponseBody> {
        tracing::debug!(budget = %refused.whose, "download refused: the monthly traffic budget is used up");
        status_text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "The monthly download budget (traffic_budget of {}) is used up until {}; listings \
                 still work",
                refused.whose,
                crate::traffic::calendar::rfc3339(refused.until)
            ),
            Some(crate::traffic::calendar::until(
                refused.until,
                self.clock.system(),
            )),
        )
    }

    /// Notes what a link request said about 123's quota (readiness shows it): `None` for a
    /// link handed out, else its error.
    fn note_quota(&self, mount: &Mount, error: Option<&Error>) {
        match error {
            None => self.traffic.quota_available(&mount.config.path),
            Some(Error::TrafficExceeded { resets_at, .. }) => {
                self.traffic.quota_exhausted(&mount.config.path, *resets_at)
            }
            Some(_) => {}
        }
    }
}

/// The URL of this gateway's root as clients reach it, from a configured URL of it
/// (`public_url`, `proxy_url`): a URL without a path gets `base_path` appended; one with a path
/// is taken as written (a reverse proxy may map another prefix onto `base_path`). No trailing
/// slash.
pub fn gateway_url(url: &str, base_path: &str) -> String {
    let url = url.trim_end_matches('/');
    let has_path = url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        url.to_string()
    } else {
        format!("{url}{base_path}")
    }
}

/// One GET or HEAD of a file, as the download path sees it.
pub struct FileRequest<'r> {
    pub method: &'r Method,
    pub headers: &'r HeaderMap,
    /// The client cannot follow redirects: always proxy (`[[clients]]`, Windows).
    pub never_redirect: bool,
    /// The file's path from the server's root (mount name included), for signed links.
    pub path: &'r [String],
    /// A mount and path for the log.
    pub full_path: &'r str,
}

/// Why a file could not be sent. Nothing reached the client yet; the server maps this to a
/// status in the one place that maps errors.
#[derive(Debug)]
pub enum Failure {
    /// A backend call (resolve, link) failed.
    Backend(Error),
    /// The upstream download failed before the first byte.
    Upstream(ProxyError),
}

/// A [`Failure`] and the mount and path it happened on (for the log).
#[derive(Debug)]
pub struct Failed {
    pub failure: Failure,
    pub full_path: String,
}

impl Failed {
    fn backend(error: Error, full_path: &str) -> Self {
        Failed {
            failure: Failure::Backend(error),
            full_path: full_path.to_owned(),
        }
    }
}

/// Answers GET or HEAD on the file `entry` of `mount`: preconditions and HEAD once, from the
/// listing ([`preflight`]); then local bytes if the file is still on this machine, else what
/// the policy decides for this client.
pub async fn serve_file(
    dl: &Downloads<'_>,
    mount: &Mount,
    entry: &Entry,
    req: &FileRequest<'_>,
) -> Result<Response<ResponseBody>, Failed> {
    let honour_range = match preflight(req.method, req.headers, entry) {
        Preflight::Answered(res) => return Ok(res),
        Preflight::Send { honour_range } => honour_range,
    };
    // The branches that stream are boxed (here and the proxy below): their futures are
    // large, and inline they would make every request's future, redirects included, that size
    // (moved whole a few times per request).
    match mount.vfs.local(entry) {
        Some(crate::vfs::Local::Spooled(path)) => {
            let source = local::Source::File(&path);
            let v = Validators::for_entry(entry);
            return Ok(Box::pin(local::send(req.headers, entry, &v, honour_range, source)).await);
        }
        Some(crate::vfs::Local::Remote(record)) => {
            let sent = super::remote::send(dl.upstream, &record, req.headers, honour_range);
            return Ok(Box::pin(sent).await);
        }
        Some(crate::vfs::Local::Empty) => {
            let source = local::Source::Memory(Bytes::new());
            let v = Validators::for_entry(entry);
            return Ok(Box::pin(local::send(req.headers, entry, &v, honour_range, source)).await);
        }
        None => {}
    }
    let delivery = delivery(
        mount.policy(),
        mount.vfs.backend().capabilities().portable_links,
        req.never_redirect,
    );
    if delivery != Delivery::Redirect {
        if let Err(refused) = dl.admit(mount, req.method, req.headers) {
            return Ok(dl.budget_refused(&refused));
        }
    }
    match delivery {
        Delivery::Redirect => {
            // The bytes the client is sent to fetch count now: the range, or the whole file.
            // One look at the budgets: `reserve` refuses a used-up budget as `admit` does.
            let scope = dl.scope_of(mount, req.method, req.headers);
            let len = redirect_len(req.headers, entry, honour_range);
            if let Some(scope) = &scope {
                if let Err(refused) = dl.traffic.reserve(scope, len) {
                    return Ok(dl.budget_refused(&refused));
                }
            }
            let link = mount.vfs.link(entry, false).await;
            dl.note_quota(mount, link.as_ref().err());
            match link {
                Ok(link) => Ok(respond::redirect_to(link.location())),
                Err(e) => {
                    if let Some(scope) = &scope {
                        dl.traffic.refund(scope, len);
                    }
                    Err(Failed::backend(e, req.full_path))
                }
            }
        }
        Delivery::ProxyUrl => Ok(super::signed_route::redirect(dl, mount, req.path)),
        Delivery::Proxy => {
            let v = Validators::for_entry(entry);
            Box::pin(proxy_file(dl, mount, entry, req, &v, honour_range)).await
        }
    }
}

/// The bytes a redirect sends the client to fetch: its one `Range`'s length when honoured, else
/// the file's size.
fn redirect_len(headers: &HeaderMap, entry: &Entry, honour_range: bool) -> u64 {
    let mut ranges = headers.get_all(http::header::RANGE).iter();
    let want = match (ranges.next(), ranges.next()) {
        (Some(range), None) if honour_range => super::range::parse_range(Some(range), entry.size),
        _ => super::range::RangeRequest::Full,
    };
    match want {
        super::range::RangeRequest::Unsatisfiable => 0,
        want => want.len(entry.size),
    }
}

/// Answers GET or HEAD on bytes held in memory (client junk kept by the gateway), with the
/// same preconditions, HEAD and Range handling as every other file.
pub async fn serve_memory(
    method: &Method,
    headers: &HeaderMap,
    entry: &Entry,
    bytes: Bytes,
) -> Response<ResponseBody> {
    local::serve(method, headers, entry, local::Source::Memory(bytes)).await
}

/// The links of one file, from its mount's VFS (cached; `refresh` bypasses the cache).
pub struct VfsLinks<'a> {
    pub mount: &'a Mount,
    pub entry: &'a Entry,
}

#[async_trait::async_trait]
impl LinkSource for VfsLinks<'_> {
    async fn link(&self, refresh: bool) -> Result<Arc<Link>, Error> {
        self.mount.vfs.link(self.entry, refresh).await
    }
}

/// The local proxy, after [`preflight`].
pub(super) async fn proxy_file(
    dl: &Downloads<'_>,
    mount: &Mount,
    entry: &Entry,
    req: &FileRequest<'_>,
    v: &Validators,
    honour_range: bool,
) -> Result<Response<ResponseBody>, Failed> {
    // A size the backend does not know (a link-tree file whose HEAD failed) cannot be proxied:
    // the proxy promises exactly `entry.size` bytes, which would be an empty 200. Send the
    // client to the link itself, which such backends hand out portable.
    if entry.size == 0 && mount.vfs.backend().capabilities().sizes_may_be_unknown {
        return match mount.vfs.link(entry, false).await {
            Ok(link) if link.portable => Ok(respond::redirect_to(link.location())),
            Ok(_) => Ok(status_text(
                StatusCode::BAD_GATEWAY,
                "The size of this file is unknown, so it cannot be proxied",
                None,
            )),
            Err(e) => Err(Failed::backend(e, req.full_path)),
        };
    }
    let links = VfsLinks { mount, entry };
    let sent = send_file(dl.upstream, req.headers, entry, v, honour_range, &links).await;
    match &sent {
        Ok(_) => dl.note_quota(mount, None),
        Err(ProxyError::Link(e)) => dl.note_quota(mount, Some(e)),
        Err(_) => {}
    }
    sent.map(|res| {
        if req.method != Method::GET {
            return res;
        }
        // Counted as the bytes pass, and cut at a budget's last byte.
        let scope = dl.scope(mount, req.headers);
        res.map(|body| super::metered::metered(body, dl.traffic.clone(), scope))
    })
    .map_err(|e| Failed {
        failure: match e {
            ProxyError::Link(e) => Failure::Backend(e),
            e => Failure::Upstream(e),
        },
        full_path: req.full_path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_table() {
        use DownloadPolicy::*;
        let cases = [
            (Auto, true, false, Delivery::Redirect),
            (Auto, false, false, Delivery::Proxy),
            (Redirect, false, false, Delivery::Redirect),
            (Proxy, true, false, Delivery::Proxy),
            (ProxyUrl, false, false, Delivery::ProxyUrl),
            (Redirect, true, true, Delivery::Proxy),
            (ProxyUrl, true, true, Delivery::Proxy),
            (Auto, true, true, Delivery::Proxy),
        ];
        for (policy, portable, never_redirect, want) in cases {
            assert_eq!(
                delivery(policy, portable, never_redirect),
                want,
                "{policy:?} portable={portable} never_redirect={never_redirect}"
            );
        }
    }

    #[test]
    fn gateway_urls() {
        assert_eq!(gateway_url("https://h", ""), "https://h");
        assert_eq!(gateway_url("https://h/", "/dav"), "https://h/dav");
        assert_eq!(gateway_url("https://h:8443", "/dav"), "https://h:8443/dav");
        assert_eq!(gateway_url("https://h/files/", "/dav"), "https://h/files");
        assert_eq!(gateway_url("https://h/dav", "/dav"), "https://h/dav");
    }
}
