//! The one place backend errors become HTTP statuses (and the one place they are logged).

use std::time::Duration;

use http::{Response, StatusCode};

use crate::backend::Error;
use crate::download::{Failed, Failure};
use crate::response::{status_text, ResponseBody};

/// How long clients are asked to wait when 123 is briefly unavailable.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);
/// How long clients are asked to wait when the gateway cannot authenticate with 123.
const AUTH_RETRY: Duration = Duration::from_secs(30);

/// The response for a backend error while serving `path` (the mount and path, for the log).
/// Exhaustive on purpose: a new error kind must decide its status here.
pub fn error_response(e: &Error, path: &str) -> Response<ResponseBody> {
    let (status, text, retry): (StatusCode, String, Option<Duration>) = match e {
        Error::NotFound => (StatusCode::NOT_FOUND, "Not found".into(), None),
        Error::NotADirectory => (StatusCode::CONFLICT, "A parent of this path is a file".into(), None),
        Error::AlreadyExists => (StatusCode::CONFLICT, "Already exists".into(), None),
        Error::RateLimited { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "123 is rate limiting this account; try again shortly".into(),
            Some(retry_after.unwrap_or(UNAVAILABLE_RETRY)),
        ),
        Error::Auth(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "The gateway cannot authenticate with 123 right now".into(), Some(AUTH_RETRY))
        }
        Error::TrafficExceeded { message, resets_at } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "123's download traffic quota for this account is used up until {}; listings still work. 123 said: {message}",
                crate::traffic::calendar::rfc3339(*resets_at)
            ),
            Some(crate::traffic::calendar::until(*resets_at, std::time::SystemTime::now())),
        ),
        Error::Upstream { code, message, .. } => {
            (StatusCode::BAD_GATEWAY, format!("123 answered code {code}: {message}"), None)
        }
        Error::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "123 is temporarily unavailable".into(), Some(UNAVAILABLE_RETRY))
        }
        Error::Transport(_) => (StatusCode::BAD_GATEWAY, "Could not reach 123".into(), None),
        Error::Unsupported => (StatusCode::NOT_IMPLEMENTED, "Not supported by this mount".into(), None),
        Error::InvalidName(why) => (StatusCode::BAD_REQUEST, format!("This name cannot be stored on 123: {why}"), None),
        Error::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "123 does not accept files over 10 GiB".into(), None),
    };
    if status.is_server_error() {
        let trace_id = match e {
            Error::Upstream { trace_id, .. } => trace_id.as_str(),
            _ => "",
        };
        tracing::warn!(path = %super::access::capped(path), status = status.as_u16(), error = %e, trace_id, "upstream trouble");
    }
    status_text(status, &text, retry)
}

/// The response for a file the download path could not send: a backend error as above, an
/// upstream failure as 502/503/504 (logged here, once).
pub fn failed_response(failed: &Failed) -> Response<ResponseBody> {
    match &failed.failure {
        Failure::Backend(e) => error_response(e, &failed.full_path),
        Failure::Upstream(e) => {
            tracing::warn!(full_path = %super::access::capped(&failed.full_path), error = %e, "proxy failed");
            status_text(e.status(), "The upstream download failed", e.retry_after())
        }
    }
}
