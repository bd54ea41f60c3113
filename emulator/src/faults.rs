//! Injected faults: failures a test arms for the next N calls of one endpoint.
//!
//! Endpoints are named as in `Stats`: the URL path for API calls (`/api/v2/file/list`,
//! `/b/api/share/get`, `/upload/v2/file/slice`) and a short word for download and upload hosts
//! (`cdn`, `direct`, `web-pro`, `s3`); `*` matches every endpoint (an outage of all of 123).
//! The same JSON is accepted by `POST /__emulator/faults`.

use serde::{Deserialize, Serialize};

/// One armed fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Endpoint key (see module doc), or `*` for every endpoint. Ignored by `ExpireTokens`.
    #[serde(default)]
    pub endpoint: String,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What an armed fault does. JSON: `{"endpoint": "...", "kind": "code429", "count": 3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Envelope code 429 for the next `count` calls (download hosts: HTTP 429).
    Code429 {
        /// Calls affected.
        count: u32,
    },
    /// Invalidate every token now (every later call with an old token gets code 401).
    ExpireTokens,
    /// Answer HTTP `status` (e.g. 500, 502, 503) for the next `count` calls.
    Http {
        /// HTTP status to send.
        status: u16,
        /// Calls affected.
        count: u32,
    },
    /// HTTP 200 with a JSON body that has no `code` (`{"message": "ok", "data": null}`), for the
    /// next `count` calls; the call is not performed (docs/123.md, open §11, "the envelope").
    NoCode {
        /// Calls affected.
        count: u32,
    },
    /// HTTP `status` with a JSON envelope carrying `code` (e.g. 429 or 502 from a gateway in
    /// front of 123, even with `code: 0`), for the next `count` calls; the call is not
    /// performed.
    HttpJson {
        /// HTTP status to send.
        status: u16,
        /// Envelope `code`.
        code: i64,
        /// Calls affected.
        count: u32,
    },
    /// Delay the next `count` calls by `ms` milliseconds before handling them.
    Latency {
        /// Added delay.
        ms: u64,
        /// Calls affected.
        count: u32,
    },
    /// Fail page `page` (1-based) of a listing walk, `count` times (envelope code 1).
    /// v2 file/list: page = 1 + (children with fileId <= lastFileId) / limit, so the K-th call of
    /// a walk with a fixed limit is page K. Share listing: page = the `Page` parameter.
    FailPage {
        /// Page index that fails.
        page: u32,
        /// Times it fails.
        count: u32,
    },
    /// Personal web listing (`/b/api/file/list/new`): page `page` (the `Page` parameter)
    /// invalidates every web token and answers code 401, `count` times, so a test can expire a
    /// session in the middle of a listing walk.
    ExpireAtPage {
        /// Page index that expires the session.
        page: u32,
        /// Times it happens.
        count: u32,
    },
    /// Accept the next `count` calls and never answer them: the connection stays open, silent,
    /// until the client gives up or the emulator stops (a 123 that hangs).
    Hang {
        /// Calls affected.
        count: u32,
    },
    /// API calls (Open and web): handle the next `count` calls as usual (they act: a folder is
    /// made, an upload completes), then answer envelope `code` / `message` instead of their
    /// own answer, as when 123 acted but its answer says otherwise.
    ErrorAfter {
        /// Envelope code sent.
        code: i64,
        /// Envelope message sent.
        message: String,
        /// Calls affected.
        count: u32,
    },
    /// Downloads (`cdn`, `direct`): send the headers and `bytes` body bytes, then drop the
    /// connection. Uploads (`/upload/v2/file/slice`, `s3`): read `bytes` of the request body, then
    /// drop it (nothing is stored).
    CutAfter {
        /// Bytes let through before the cut.
        bytes: u64,
        /// Responses affected.
        count: u32,
    },
}

impl FaultKind {
    fn count_mut(&mut self) -> Option<&mut u32> {
        match self {
            FaultKind::Code429 { count }
            | FaultKind::Http { count, .. }
            | FaultKind::NoCode { count }
            | FaultKind::HttpJson { count, .. }
            | FaultKind::Latency { count, .. }
            | FaultKind::FailPage { count, .. }
            | FaultKind::ExpireAtPage { count, .. }
            | FaultKind::Hang { count }
            | FaultKind::ErrorAfter { count, .. }
            | FaultKind::CutAfter { count, .. } => Some(count),
            FaultKind::ExpireTokens => None,
        }
    }
}

/// What the request pipeline must do before handling a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Code 429 (or HTTP 429 on download hosts).
    Code429,
    /// This HTTP status.
    Http(u16),
    /// HTTP 200 JSON without `code`.
    NoCode,
    /// This HTTP status with an envelope of this code.
    HttpJson {
        /// HTTP status.
        status: u16,
        /// Envelope code.
        code: i64,
    },
}

/// The armed faults, in arming order.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Vec<Fault>,
}

impl Faults {
    /// Arm a fault (`ExpireTokens` is applied by the caller and never stored).
    pub fn add(&mut self, f: Fault) {
        if f.kind.clone().count_mut().is_some_and(|c| *c > 0) {
            self.armed.push(f);
        }
    }

    /// Disarm everything.
    pub fn clear(&mut self) {
        self.armed.clear();
    }

    /// What is armed now.
    pub fn list(&self) -> Vec<Fault> {
        self.armed.clone()
    }

    /// Use up one call of the first armed fault on `endpoint` that `pick` accepts.
    fn take<T>(&mut self, endpoint: &str, pick: impl Fn(&FaultKind) -> Option<T>) -> Option<T> {
        let idx = self.armed.iter().position(|f| {
            (f.endpoint == endpoint || f.endpoint == "*") && pick(&f.kind).is_some()
        })?;
        let out = pick(&self.armed[idx].kind);
        let exhausted = match self.armed[idx].kind.count_mut() {
            Some(c) => {
                *c = c.saturating_sub(1);
                *c == 0
            }
            None => true,
        };
        if exhausted {
            self.armed.remove(idx);
        }
        out
    }

    /// Whether this call must hang (never be answered).
    pub fn take_hang(&mut self, endpoint: &str) -> bool {
        self.take(endpoint, |k| match k {
            FaultKind::Hang { .. } => Some(()),
            _ => None,
        })
        .is_some()
    }

    /// Added latency for this call, if armed.
    pub fn take_latency(&mut self, endpoint: &str) -> Option<u64> {
        self.take(endpoint, |k| match k {
            FaultKind::Latency { ms, .. } => Some(*ms),
            _ => None,
        })
    }

    /// A 429 or HTTP-status refusal for this call, if armed.
    pub fn take_refusal(&mut self, endpoint: &str) -> Option<Refusal> {
        self.take(endpoint, |k| match k {
            FaultKind::Code429 { .. } => Some(Refusal::Code429),
            FaultKind::Http { status, .. } => Some(Refusal::Http(*status)),
            FaultKind::NoCode { .. } => Some(Refusal::NoCode),
            FaultKind::HttpJson { status, code, .. } => Some(Refusal::HttpJson {
                status: *status,
                code: *code,
            }),
            _ => None,
        })
    }

    /// Whether page `page` of a listing must fail now.
    pub fn take_fail_page(&mut self, endpoint: &str, page: u64) -> bool {
        self.take(endpoint, |k| match k {
            FaultKind::FailPage { page: p, .. } if u64::from(*p) == page => Some(()),
            _ => None,
        })
        .is_some()
    }

    /// Whether page `page` of a personal listing must expire the session now.
    pub fn take_expire_page(&mut self, endpoint: &str, page: u64) -> bool {
        self.take(endpoint, |k| match k {
            FaultKind::ExpireAtPage { page: p, .. } if u64::from(*p) == page => Some(()),
            _ => None,
        })
        .is_some()
    }

    /// The envelope to answer after handling this call, if armed.
    pub fn take_error_after(&mut self, endpoint: &str) -> Option<(i64, String)> {
        self.take(endpoint, |k| match k {
            FaultKind::ErrorAfter { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
    }

    /// Bytes to let through before cutting this transfer, if armed.
    pub fn take_cut(&mut self, endpoint: &str) -> Option<u64> {
        self.take(endpoint, |k| match k {
            FaultKind::CutAfter { bytes, .. } => Some(*bytes),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let f = Fault {
            endpoint: "/api/v2/file/list".into(),
            kind: FaultKind::Http {
                status: 503,
                count: 2,
            },
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"endpoint": "/api/v2/file/list", "kind": "http", "status": 503, "count": 2})
        );
        let back: Fault = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        let e: Fault = serde_json::from_str(r#"{"kind":"expire_tokens"}"#).unwrap();
        assert_eq!(e.kind, FaultKind::ExpireTokens);
        let c: Fault =
            serde_json::from_str(r#"{"endpoint":"cdn","kind":"code429","count":1}"#).unwrap();
        assert_eq!(c.kind, FaultKind::Code429 { count: 1 });
        let n: Fault =
            serde_json::from_str(r#"{"endpoint":"e","kind":"no_code","count":2}"#).unwrap();
        assert_eq!(n.kind, FaultKind::NoCode { count: 2 });
        let j: Fault = serde_json::from_str(
            r#"{"endpoint":"e","kind":"http_json","status":502,"code":0,"count":1}"#,
        )
        .unwrap();
        assert_eq!(
            j.kind,
            FaultKind::HttpJson {
                status: 502,
                code: 0,
                count: 1
            }
        );
    }

    #[test]
    fn counts_run_out() {
        let mut fs = Faults::default();
        fs.add(Fault {
            endpoint: "e".into(),
            kind: FaultKind::Code429 { count: 2 },
        });
        fs.add(Fault {
            endpoint: "e".into(),
            kind: FaultKind::FailPage { page: 3, count: 1 },
        });
        assert_eq!(fs.take_refusal("x"), None);
        assert_eq!(fs.take_refusal("e"), Some(Refusal::Code429));
        assert_eq!(fs.take_refusal("e"), Some(Refusal::Code429));
        assert_eq!(fs.take_refusal("e"), None);
        assert!(!fs.take_fail_page("e", 2));
        assert!(fs.take_fail_page("e", 3));
        assert!(!fs.take_fail_page("e", 3));
        assert!(fs.list().is_empty());
    }

    #[test]
    fn a_star_matches_every_endpoint() {
        let mut fs = Faults::default();
        fs.add(Fault {
            endpoint: "*".into(),
            kind: FaultKind::Hang { count: 2 },
        });
        assert!(!fs.take_fail_page("cdn", 1));
        assert!(fs.take_hang("cdn"));
        assert!(fs.take_hang("/api/v2/file/list"));
        assert!(!fs.take_hang("cdn"));
        let h: Fault = serde_json::from_str(r#"{"endpoint":"*","kind":"hang","count":1}"#).unwrap();
        assert_eq!(h.kind, FaultKind::Hang { count: 1 });
    }
}
