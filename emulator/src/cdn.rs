//! The download CDN (`/cdn/…`, stats word `cdn`): signed, expiring links bound to the address
//! that asked for them (docs/123.md, open §5), optionally also bound to a `Referer` (share links,
//! docs/123.md, web §0.5).
//!
//! Link shape: `<cdn host>/cdn/<bucket>/<md5[..8]>/<size>-0/<md5>?v=3&t=<expiry>&s=<sig>&filename=…&ip=<requester>[&r=1]`.
//! `s` is an MD5 over a per-process secret, the path after `/cdn`, `t`, `ip` and `r`, so a link
//! cannot be altered; the emulator keeps no per-link state.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE, RANGE, REFERER};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::emulator::{lock, Shared};
use crate::hosts::Host;
use crate::http::{encode_query_value, json, query, query_pairs, text, Resp};
use crate::range::{serve, ServeOpts};
use crate::server::Ctx;

/// What a link grants.
pub struct CdnLink {
    /// First path segment, cosmetic (`123-61` for Open API links, `123-680` for share links).
    pub bucket: &'static str,
    /// Content MD5.
    pub md5: String,
    /// Content size.
    pub size: u64,
    /// Name offered in `filename` and `Content-Disposition`.
    pub filename: String,
    /// The address that asked for the link; only it may use the link.
    pub ip: IpAddr,
    /// Require `Referer: <web-pro host>/` (share and personal web links).
    pub referer: bool,
    /// Unix expiry (`t`).
    pub expires: i64,
}

fn signature(secret: &str, tail: &str, t: i64, ip: &str, r: bool) -> String {
    crate::content::md5_hex(format!("{secret}|{tail}|{t}|{ip}|{}", u8::from(r)).as_bytes())
}

/// The path after the host prefix and the query of a link (`/123-61/…?v=3&…`).
pub(crate) fn tail_and_query(sh: &Shared, link: &CdnLink) -> (String, String) {
    let prefix: String = link.md5.chars().take(8).collect();
    let tail = format!("/{}/{prefix}/{}-0/{}", link.bucket, link.size, link.md5);
    let ip = link.ip.to_string();
    let s = signature(&sh.cdn_secret, &tail, link.expires, &ip, link.referer);
    let mut q = format!(
        "v=3&t={}&s={s}&filename={}&ip={}",
        link.expires,
        encode_query_value(&link.filename),
        encode_query_value(&ip)
    );
    if link.referer {
        q.push_str("&r=1");
    }
    (tail, q)
}

/// A full CDN URL for a link.
pub fn mint(sh: &Shared, link: &CdnLink) -> String {
    let (tail, q) = tail_and_query(sh, link);
    format!("{}/cdn{tail}?{q}", sh.url(Host::Cdn))
}

/// A link read back from a request: `(md5, size, ip, referer required, filename)`.
pub(crate) struct Parsed {
    pub md5: String,
    pub size: u64,
    pub ip: String,
    pub referer: bool,
    pub filename: Option<String>,
}

/// Why a link was refused before any byte.
pub(crate) enum LinkError {
    /// Not a link this emulator made, or altered.
    Invalid,
    /// `t` has passed.
    Expired,
}

/// Check a link's tail + query (signature and expiry; not the requester).
pub(crate) fn verify(
    sh: &Shared,
    tail: &str,
    pairs: &[(String, String)],
) -> Result<Parsed, LinkError> {
    let segs: Vec<&str> = tail.split('/').collect();
    let [_, _bucket, _prefix, size0, md5] = segs.as_slice() else {
        return Err(LinkError::Invalid);
    };
    let size: u64 = size0
        .strip_suffix("-0")
        .and_then(|s| s.parse().ok())
        .ok_or(LinkError::Invalid)?;
    let t: i64 = query(pairs, "t")
        .and_then(|t| t.parse().ok())
        .ok_or(LinkError::Invalid)?;
    let s = query(pairs, "s").ok_or(LinkError::Invalid)?;
    let ip = query(pairs, "ip").ok_or(LinkError::Invalid)?;
    let r = query(pairs, "r") == Some("1");
    if signature(&sh.cdn_secret, tail, t, ip, r) != s {
        return Err(LinkError::Invalid);
    }
    // A link is good up to, not including, its expiry second: a zero TTL is born expired.
    if t <= sh.now() {
        return Err(LinkError::Expired);
    }
    Ok(Parsed {
        md5: md5.to_string(),
        size,
        ip: ip.to_string(),
        referer: r,
        filename: query(pairs, "filename").map(str::to_string),
    })
}

/// A city name for an address, for the `1010` refusal text. Loopback addresses differ by their
/// last octet, so 127.0.0.1 and 127.0.0.2 are "different cities".
fn city(ip: &str) -> &'static str {
    const CITIES: [&str; 8] = [
        "shanghai",
        "beijing",
        "guangzhou",
        "shenzhen",
        "hangzhou",
        "chengdu",
        "wuhan",
        "nanjing",
    ];
    let last = ip
        .rsplit(['.', ':'])
        .next()
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    CITIES[last % CITIES.len()]
}

/// `GET|HEAD /cdn/…`.
pub fn handle(ctx: &Ctx, req: Request<Incoming>) -> Resp {
    let sh = &ctx.shared;
    let tail = req.uri().path().trim_start_matches("/cdn").to_string();
    let pairs = query_pairs(req.uri());
    let link = match verify(sh, &tail, &pairs) {
        Ok(l) => l,
        Err(LinkError::Invalid) => {
            return text(StatusCode::FORBIDDEN, "403 Forbidden: invalid link")
        }
        Err(LinkError::Expired) => {
            // The 200-with-JSON refusal style applies to every refusal of the CDN.
            if sh.switches().cdn_refusal_http_200 {
                let body = json!({"code": 1010, "message": "download err: 50002"});
                return json(StatusCode::OK, &body);
            }
            return text(StatusCode::FORBIDDEN, "403 Forbidden: link expired");
        }
    };
    let requester = ctx.peer.ip().to_string();
    if requester != link.ip {
        let body = json!({
            "code": 1010,
            "message": format!("forbidden realc:{} arg_c:{}", city(&requester), city(&link.ip)),
        });
        let status = if sh.switches().cdn_refusal_http_200 {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        return json(status, &body);
    }
    if link.referer {
        // The origin of the outer DownloadURL, the hop host (docs/123.md, web §0.5).
        let want = format!("{}/", sh.url(Host::WebPro));
        let got = req.headers().get(REFERER).and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            let mut r = text(StatusCode::FORBIDDEN, "403 Forbidden: anti-leech (Referer)");
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return r;
        }
    }
    serve_content(ctx, &req, "cdn", &link.md5, link.size, link.filename)
}

/// Serve known content with Range support, the rate cap and the cut fault of `host`.
pub(crate) fn serve_content(
    ctx: &Ctx,
    req: &Request<Incoming>,
    host: &'static str,
    md5: &str,
    size: u64,
    filename: Option<String>,
) -> Resp {
    let sh = &ctx.shared;
    let Some(blob) = lock(&sh.fs).content.get(md5, size) else {
        return text(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let cut_after = lock(&sh.faults).take_cut(host);
    let counter_sh: Arc<Shared> = sh.clone();
    let range = req.headers().get(RANGE).and_then(|v| v.to_str().ok());
    serve(
        blob,
        size,
        range,
        ServeOpts {
            etag: md5.to_string(),
            filename,
            head: req.method() == Method::HEAD,
            rate: sh.switches().cdn_rate_limit,
            cut_after,
            count: Arc::new(move |n| counter_sh.count_bytes(host, n)),
        },
    )
}
