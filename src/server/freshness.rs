//! Freshness on demand: a PROPFIND, GET or HEAD sent with `Cache-Control: no-cache` (or
//! `Pragma: no-cache`) has the folder it is about listed afresh before it is answered, even
//! within `cache_ttl`, so a change made elsewhere (123's app, another gateway) shows at once.
//! The folder is the target itself when it is a folder, else the target's parent. The vfs
//! bounds the cost: one revalidation per folder at a time and per second
//! (`vfs::MIN_REVALIDATE_INTERVAL`), each one paced listing.

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};
use http::Response;

use super::errors::error_response;
use crate::backend::Error;
use crate::mount::Mount;
use crate::response::ResponseBody;

/// Whether the request asks for a fresh answer: a `no-cache` directive in `Cache-Control`, or
/// `Pragma: no-cache` (HTTP/1.0 clients).
pub(super) fn wants_fresh(headers: &HeaderMap) -> bool {
    let has_no_cache = |name| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').any(|d| {
                    let d = d.trim();
                    match (d.get(..8), d.get(8..)) {
                        (Some(name), Some(rest)) => {
                            name.eq_ignore_ascii_case("no-cache")
                                && matches!(rest.trim_start().chars().next(), None | Some('='))
                        }
                        _ => false,
                    }
                })
            })
        })
    };
    has_no_cache(CACHE_CONTROL) || has_no_cache(PRAGMA)
}

/// Revalidates the folder `rest` (below `mount`) is about; `Err` answers the request (123
/// failed the listing). A path that does not resolve even through its parent is left to the
/// method's own answer (404).
pub(super) async fn revalidate(
    mount: &Mount,
    rest: &[String],
    full_path: &str,
) -> Result<(), Response<ResponseBody>> {
    let folder = match mount.vfs.resolve(rest).await {
        Ok(target) if target.is_dir => target,
        Ok(_) | Err(Error::NotFound) => {
            let Some((_, parent)) = rest.split_last() else {
                return Ok(());
            };
            match mount.vfs.resolve(parent).await {
                Ok(p) if p.is_dir => p,
                Ok(_) | Err(Error::NotFound) | Err(Error::NotADirectory) => return Ok(()),
                Err(e) => return Err(error_response(&e, full_path)),
            }
        }
        Err(Error::NotADirectory) => return Ok(()),
        Err(e) => return Err(error_response(&e, full_path)),
    };
    mount
        .vfs
        .revalidate(&folder)
        .await
        .map_err(|e| error_response(&e, full_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn no_cache_in_either_header() {
        assert!(wants_fresh(&headers(&[("cache-control", "no-cache")])));
        assert!(wants_fresh(&headers(&[(
            "cache-control",
            "max-age=0, No-Cache"
        )])));
        assert!(wants_fresh(&headers(&[(
            "cache-control",
            "no-cache=\"set-cookie\""
        )])));
        assert!(wants_fresh(&headers(&[("pragma", "no-cache")])));
        assert!(!wants_fresh(&headers(&[("cache-control", "no-store")])));
        assert!(!wants_fresh(&headers(&[("cache-control", "no-cachex")])));
        assert!(!wants_fresh(&headers(&[])));
    }
}
