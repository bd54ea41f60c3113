//! Open mounts through a token-renewal service (issue 21; docs/123.md, open §2.3): the protocol of
//! OpenList's online API (`api.oplist.org/123cloud/renewapi`) and of its self-hostable pages.
//! The service holds an OAuth app's secret and refreshes on the user's behalf:
//! `GET <renew_url>?refresh_ui=<refresh token>&server_use=true&driver_txt=123cloud_oa`, no auth
//! headers, answering 200 `{refresh_token, access_token, expires_in}` or 500 `{"text": …}`. The
//! refresh token still rotates, so it is kept exactly as in `oauth.rs`.

use super::oauth::{exchange, RefreshStore};
use super::token::Token;
use crate::backend::{Error, Upstream};

/// `driver_txt` naming 123's OAuth app in the protocol.
const DRIVER: &str = "123cloud_oa";
const WHO: &str = "the token-renewal service";

/// One renewal: the new access token, having kept the new refresh token.
pub async fn refresh(upstream: &Upstream, url: &str, store: &RefreshStore) -> Result<Token, Error> {
    let refresh_token = store.current();
    let request = upstream.http.get(url).query(&[
        ("refresh_ui", refresh_token.as_str()),
        ("server_use", "true"),
        ("driver_txt", DRIVER),
    ]);
    let answer = exchange(request, upstream.timeouts.first_byte, WHO).await;
    // The service falls back to the token it was sent when 123 gave none (APIPages'
    // `genToken`); that is the same token, still valid.
    let result = answer.and_then(|mut a| {
        if a.refresh_token.is_empty() && !a.access_token.is_empty() {
            a.refresh_token = refresh_token.clone();
        }
        a.into_token(store, WHO)
    });
    upstream.metrics.token_refresh(result.is_ok());
    result
}
