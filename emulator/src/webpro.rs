//! The share download hop (stats word `web-pro`, docs/123.md, web §0.5).
//!
//! `/web-pro/download-v2/?params=<base64 URL>&is_s3=0` is the outer `DownloadURL`; clients decode
//! `params` themselves (a browser GET is answered with a 302 to the decoded URL). The decoded URL,
//! `/web-pro/redirect/<cdn tail>?…&auto_redirect=0`, answers 302 + `Location` or, with the
//! `share_redirect_json` switch, 200 + `{"code":0,"message":"ok","data":{"redirect_url":…}}`.
//! The final `/cdn/…` URL (on the CDN host) needs `Referer: <web-pro host>/`, the origin of the
//! outer URL.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, LOCATION, REFERER};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::cdn::{tail_and_query, verify, CdnLink, LinkError};
use crate::emulator::Shared;
use crate::hosts::Host;
use crate::http::{empty, encode_query_value, json, query, query_pairs, text, Resp};
use crate::server::Ctx;
use crate::state::Entry;
use crate::web::names_web_origin;

/// The outer download URL that share and personal `download_info` hand out for `file`: the
/// `params` hop around a CDN link bound to `peer` that wants the Referer, valid for
/// `cdn_link_ttl`.
pub fn download_url(sh: &Shared, file: Entry, peer: std::net::IpAddr) -> String {
    let ttl = i64::try_from(sh.switches().cdn_link_ttl.as_secs()).unwrap_or(i64::MAX);
    let link = CdnLink {
        bucket: "123-680",
        md5: file.md5,
        size: file.size,
        filename: file.name,
        ip: peer,
        referer: true,
        expires: sh.now().saturating_add(ttl),
    };
    let (tail, q) = tail_and_query(sh, &link);
    let hop = format!(
        "{}/web-pro/redirect{tail}?{q}&auto_redirect=0",
        sh.url(Host::WebPro)
    );
    format!(
        "{}/web-pro/download-v2/?params={}&is_s3=0",
        sh.url(Host::WebPro),
        encode_query_value(&STANDARD.encode(hop))
    )
}

/// `GET /web-pro/…`. A `Referer`, when sent, must name the web host: the web client (and a
/// browser on 123's pages) fetch the hop from there (docs/123.md, web §0.5).
pub fn handle(ctx: &Ctx, req: Request<Incoming>) -> Resp {
    let sh = &ctx.shared;
    let path = req.uri().path();
    let pairs = query_pairs(req.uri());
    if let Some(referer) = req.headers().get(REFERER) {
        if !names_web_origin(sh, referer.to_str().ok()) {
            return text(StatusCode::FORBIDDEN, "403 Forbidden: anti-leech (Referer)");
        }
    }
    if path == "/web-pro/download-v2/" || path == "/web-pro/download-v2" {
        let decoded = query(&pairs, "params")
            .and_then(|p| STANDARD.decode(p.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        return match decoded {
            Some(url) => redirect(&url),
            None => text(StatusCode::BAD_REQUEST, "400 Bad Request: params"),
        };
    }
    let Some(tail) = path.strip_prefix("/web-pro/redirect") else {
        return text(StatusCode::NOT_FOUND, "404 Not Found");
    };
    match verify(sh, tail, &pairs) {
        Ok(_) => {}
        Err(LinkError::Invalid) => {
            return text(StatusCode::FORBIDDEN, "403 Forbidden: invalid link")
        }
        Err(LinkError::Expired) => {
            return text(StatusCode::FORBIDDEN, "403 Forbidden: link expired")
        }
    }
    let q: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("auto_redirect"))
        .collect();
    let target = format!("{}/cdn{tail}?{}", sh.url(Host::Cdn), q.join("&"));
    if sh.switches().share_redirect_json {
        json(
            StatusCode::OK,
            &json!({"code": 0, "message": "ok", "data": {"redirect_url": target}}),
        )
    } else {
        redirect(&target)
    }
}

fn redirect(url: &str) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}
