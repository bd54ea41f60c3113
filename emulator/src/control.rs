//! The control API under `/__emulator/`: the same data as the Rust API, as JSON over HTTP, so
//! the demo, benchmarks and a person with curl can read counters and arm faults.
//!
//! | method + path | body | effect |
//! |---|---|---|
//! | `GET /__emulator/info` | | base URL, hosts, client id/secret, uid |
//! | `GET /__emulator/hosts` | | `{"open": url, "upload": url, …}`: every host's base URL |
//! | `GET /__emulator/stats` | | `Stats` |
//! | `DELETE /__emulator/stats` | | zero the counters |
//! | `GET /__emulator/faults` | | armed faults |
//! | `POST /__emulator/faults` | a `Fault` or an array of them | arm |
//! | `DELETE /__emulator/faults` | | disarm all |
//! | `GET /__emulator/switches` | | `Switches` |
//! | `POST /__emulator/switches` | some `Switches` keys | change those |
//! | `POST /__emulator/expire_tokens` | | invalidate every token |
//! | `GET`/`POST /__emulator/clock` | `{"offset_secs": N}` | read / shift the wall clock |
//! | `POST /__emulator/qps` | `{"enabled": bool}` | QPS limiter on/off |
//! | `POST /__emulator/oauth/code` | `{"redirect_uri": URL}` | an authorization code (the browser step) |
//! | `POST /__emulator/oauth/tokens` | | a fresh OAuth token pair of the OAuth app |
//! | `POST /__emulator/access_token` | `{"ttl_secs": N}` | a pasted access token expiring in N s |
//! | `POST /__emulator/web_token` | | a web session JWT, as a logged-in browser holds |

use std::sync::atomic::Ordering;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::config::Switches;
use crate::emulator::{lock, Shared};
use crate::faults::Fault;
use crate::hosts::Host;
use crate::http::{json, not_found, read_body, Resp};

fn bad(msg: &str) -> Resp {
    json(StatusCode::BAD_REQUEST, &json!({"error": msg}))
}

fn done() -> Resp {
    json(StatusCode::OK, &json!({"ok": true}))
}

/// Handle one control request.
pub(crate) async fn handle(sh: &Shared, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let body = match read_body(req.into_body(), 1 << 20).await {
        Ok(b) => b,
        Err(e) => return bad(&e.to_string()),
    };
    let parsed = || serde_json::from_slice::<Value>(&body);
    match (method, path.as_str()) {
        (Method::GET, "/__emulator/info") => json(
            StatusCode::OK,
            &json!({
                "base_url": sh.url(Host::Open),
                "hosts": sh.hosts.map(),
                "client_id": sh.client_id,
                "client_secret": sh.client_secret,
                "uid": sh.uid,
                "oauth_client_id": sh.oauth_client_id,
                "oauth_client_secret": sh.oauth_client_secret,
            }),
        ),
        (Method::GET, "/__emulator/hosts") => json(StatusCode::OK, &json!(sh.hosts.map())),
        (Method::GET, "/__emulator/stats") => match serde_json::to_value(sh.stats()) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => bad(&e.to_string()),
        },
        (Method::DELETE, "/__emulator/stats") => {
            sh.reset_stats();
            done()
        }
        (Method::GET, "/__emulator/faults") => {
            let list = lock(&sh.faults).list();
            json(StatusCode::OK, &json!(list))
        }
        (Method::POST, "/__emulator/faults") => {
            let faults: Result<Vec<Fault>, _> = match parsed() {
                Ok(Value::Array(a)) => a.into_iter().map(serde_json::from_value).collect(),
                Ok(v) => serde_json::from_value(v).map(|f| vec![f]),
                Err(e) => Err(e),
            };
            match faults {
                Ok(fs) => {
                    for f in fs {
                        sh.inject(f);
                    }
                    done()
                }
                Err(e) => bad(&e.to_string()),
            }
        }
        (Method::DELETE, "/__emulator/faults") => {
            lock(&sh.faults).clear();
            done()
        }
        (Method::GET, "/__emulator/switches") => match serde_json::to_value(sh.switches()) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => bad(&e.to_string()),
        },
        (Method::POST, "/__emulator/switches") => {
            let Ok(Value::Object(patch)) = parsed() else {
                return bad("expected a JSON object of switches");
            };
            let mut sw = lock(&sh.switches);
            let Ok(Value::Object(mut cur)) = serde_json::to_value(&*sw) else {
                return bad("internal: switches did not serialise");
            };
            for (k, v) in patch {
                cur.insert(k, v);
            }
            match serde_json::from_value::<Switches>(Value::Object(cur)) {
                Ok(new) => {
                    *sw = new;
                    match serde_json::to_value(&*sw) {
                        Ok(v) => json(StatusCode::OK, &v),
                        Err(e) => bad(&e.to_string()),
                    }
                }
                Err(e) => bad(&e.to_string()),
            }
        }
        (Method::POST, "/__emulator/expire_tokens") => {
            lock(&sh.tokens).expire_all();
            done()
        }
        (Method::GET, "/__emulator/clock") => json(
            StatusCode::OK,
            &json!({"now": sh.now(), "offset_secs": sh.clock.offset()}),
        ),
        (Method::POST, "/__emulator/clock") => {
            match parsed().ok().and_then(|v| v["offset_secs"].as_i64()) {
                Some(o) => {
                    sh.clock.set_offset(o);
                    json(StatusCode::OK, &json!({"now": sh.now(), "offset_secs": o}))
                }
                None => bad("expected {\"offset_secs\": N}"),
            }
        }
        (Method::POST, "/__emulator/qps") => {
            match parsed().ok().and_then(|v| v["enabled"].as_bool()) {
                Some(on) => {
                    sh.qps.store(on, Ordering::Relaxed);
                    done()
                }
                None => bad("expected {\"enabled\": bool}"),
            }
        }
        (Method::POST, "/__emulator/oauth/code") => {
            match parsed()
                .ok()
                .and_then(|v| v["redirect_uri"].as_str().map(str::to_string))
            {
                Some(uri) => {
                    let code = crate::oauth::issue_code(sh, &sh.oauth_client_id, &uri);
                    json(StatusCode::OK, &json!({ "code": code }))
                }
                None => bad("expected {\"redirect_uri\": URL}"),
            }
        }
        (Method::POST, "/__emulator/oauth/tokens") => {
            let g = crate::oauth::issue_pair(sh);
            json(
                StatusCode::OK,
                &json!({"access_token": g.access_token, "refresh_token": g.refresh_token, "expires_in": g.expires_in}),
            )
        }
        (Method::POST, "/__emulator/access_token") => {
            match parsed().ok().and_then(|v| v["ttl_secs"].as_i64()) {
                Some(ttl) => {
                    let (token, expires) = crate::oauth::issue_pasted(sh, ttl);
                    json(
                        StatusCode::OK,
                        &json!({"access_token": token, "expires_at": expires}),
                    )
                }
                None => bad("expected {\"ttl_secs\": N}"),
            }
        }
        (Method::POST, "/__emulator/web_token") => {
            let (token, expires) = crate::personal::issue_web_token(sh);
            json(
                StatusCode::OK,
                &json!({"token": token, "expires_at": expires}),
            )
        }
        _ => not_found(),
    }
}
