//! The download hop of web-API links, share and personal alike (docs/123.md, web §0.5): a
//! `DownloadUrl` is resolved to the CDN URL and the `Referer` the CDN checks.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, LOCATION, REFERER};
use http::StatusCode;

use super::wire::HopReply;
use super::{
    read_capped, transport, unparsable, Retries, MAX_429_RETRIES, MAX_BODY, MAX_TRANSIENT_RETRIES,
};
use crate::backend::{deadline, pacer, Error, Link, Upstream};

/// The client of the download hop, which must not follow redirects (its 302 *is* the answer).
pub struct Hop {
    /// `None` when it could not be built; links then fail with a transport error.
    client: Option<reqwest::Client>,
    /// `<scheme>://<host[:port]>` of the web API, sent as the hop's `Referer`.
    origin: String,
    first_byte: std::time::Duration,
}

impl Hop {
    /// `user_agent` (`server.user_agent`) is the hop's: the hop resolves a link once for every
    /// client that then plays it, so it is not any one player's.
    pub fn new(upstream: &Upstream, api_base: &str, user_agent: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(upstream.timeouts.connect)
            .user_agent(user_agent)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the download-hop client"))
            .ok();
        Self {
            client,
            origin: super::origin_of(api_base),
            first_byte: upstream.timeouts.first_byte,
        }
    }

    /// The link behind a web-API `DownloadUrl`: the hop resolved, and the Referer the CDN
    /// checks attached.
    pub async fn link(&self, download_url: &str) -> Result<Link, Error> {
        if download_url.is_empty() {
            return Err(Error::Upstream {
                code: 0,
                message: "123 returned an empty download URL".into(),
                trace_id: String::new(),
            });
        }
        let (url, referer) = self.resolve(download_url).await?;
        let mut headers = http::HeaderMap::new();
        headers.insert(REFERER, referer);
        // The CDN URL's lifetime is not documented: the vfs caches it for its default.
        Ok(Link::new(url, None, false).with_headers(headers))
    }

    /// Resolves a share `DownloadURL` to the final CDN URL and the `Referer` it needs (docs/123.md,
    /// web §0.5): decode `params` (standard base64) when present, GET that URL without following
    /// redirects, and take the `Location` of a 302 or the `data.redirect_url` of a 2xx JSON
    /// answer. The Referer is the origin of the *outer* URL.
    pub async fn resolve(&self, download_url: &str) -> Result<(String, HeaderValue), Error> {
        let outer = url::Url::parse(download_url)
            .map_err(|_| unparsable("123 returned a download URL that is not a URL"))?;
        let referer = HeaderValue::from_str(&format!("{}/", outer.origin().ascii_serialization()))
            .map_err(|_| unparsable("123 returned a download URL without a usable host"))?;
        let hop = decode_params(&outer).unwrap_or_else(|| outer.clone());
        let Some(client) = &self.client else {
            return Err(Error::Transport(
                "the download-hop HTTP client could not be built".into(),
            ));
        };
        let mut retries = Retries::new(MAX_429_RETRIES, MAX_TRANSIENT_RETRIES);
        // Bounded: every turn returns or uses up one of the counted retries.
        let response = loop {
            let outcome = client
                .get(hop.as_str())
                .header(REFERER, format!("{}/", self.origin))
                .timeout(deadline::attempt(self.first_byte)?)
                .send()
                .await;
            let error = match outcome {
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
                    retry_after: pacer::retry_after(r.headers()),
                },
                // Not OpenList's "keep the decoded URL" (docs/123.md, web §0.5): a 5xx link would be cached and fail
                // for minutes, while an error is retried (here, and by the next request).
                Ok(r) if r.status().is_server_error() => Error::Unavailable(format!(
                    "the download hop answered HTTP {}",
                    r.status().as_u16()
                )),
                Ok(r) => break r,
                Err(e) => transport(e),
            };
            match retries.next(&error) {
                Some(delay) => {
                    tracing::info!(error = %error, "retrying the download hop");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        };
        let status = response.status();
        let target = if status == StatusCode::FOUND {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| unparsable("the download hop answered 302 without a Location"))?;
            hop.join(location)
                .map_err(|_| unparsable("the download hop answered 302 with a bad Location"))?
        } else if status.is_success() {
            let body = read_capped(response, MAX_BODY).await?;
            let reply: HopReply = serde_json::from_slice(&body)
                .map_err(|_| unparsable("the download hop answered 2xx without JSON"))?;
            let url = reply
                .data
                .and_then(|d| d.redirect_url)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| unparsable("the download hop answered without redirect_url"))?;
            url::Url::parse(&url)
                .map_err(|_| unparsable("the download hop's redirect_url is not a URL"))?
        } else {
            // Other statuses (301, 307, 4xx but 429): keep the decoded URL, as OpenList does. A 4xx
            // then shows at the CDN, where the proxy fetches one fresh link.
            hop
        };
        if !matches!(target.scheme(), "http" | "https") {
            return Err(unparsable("the final download URL is not http(s)"));
        }
        Ok((target.into(), referer))
    }
}

/// The URL inside `params` (standard base64 with padding), if there is one that decodes.
/// Query unescaping turns a raw `+` into a space; it is put back before decoding.
fn decode_params(outer: &url::Url) -> Option<url::Url> {
    let (_, params) = outer.query_pairs().find(|(k, _)| k == "params")?;
    let params = params.trim().replace(' ', "+");
    let bytes = STANDARD.decode(params.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    url::Url::parse(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode() {
        let inner = "http://127.0.0.1:1/web-pro/redirect/x?a=1&auto_redirect=0";
        let encoded = STANDARD.encode(inner);
        let percent: String =
            percent_encoding::utf8_percent_encode(&encoded, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let outer = url::Url::parse(&format!(
            "https://web-pro2.123952.com/download-v2/?params={percent}&is_s3=0"
        ))
        .expect("url");
        assert_eq!(
            decode_params(&outer).map(String::from).as_deref(),
            Some(inner)
        );
        // A raw `+` read back as a space still decodes.
        let raw = url::Url::parse(&format!("https://h/d/?params={encoded}")).expect("url");
        assert_eq!(
            decode_params(&raw).map(String::from).as_deref(),
            Some(inner)
        );
        // Garbage keeps the outer URL (None here).
        let bad = url::Url::parse("https://h/d/?params=%%%").expect("url");
        assert!(decode_params(&bad).is_none());
        let none = url::Url::parse("https://h/d/?x=1").expect("url");
        assert!(decode_params(&none).is_none());
    }
}
