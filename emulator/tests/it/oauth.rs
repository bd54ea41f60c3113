//! Logins without developer keys: the approval page and its code, the OAuth token endpoint
//! (query string and form body, rotating single-use refresh tokens, the per-uid limit, the
//! `oauth_expires_in` and `oauth_refresh_fails` switches), the renewal service, pasted tokens
//! and the web session JWT.

use pan123_emulator::{Emulator, Host, OAuthExpiresIn};
use serde_json::{json, Value};

use crate::common::{self, at, http};

const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// `POST /api/v1/oauth2/access_token` with `params` in the query string.
async fn token_call(emu: &Emulator, params: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(at(emu, Host::Open, "/api/v1/oauth2/access_token"))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn refresh(emu: &Emulator, rt: &str) -> (u16, Value) {
    let id = emu.oauth_client_id();
    let secret = emu.oauth_client_secret();
    token_call(
        emu,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ],
    )
    .await
}

/// A user/info call with `token`: the envelope code.
async fn user_info_code(emu: &Emulator, token: &str) -> i64 {
    let v: Value = http()
        .get(at(emu, Host::Open, "/api/v1/user/info"))
        .header("Platform", "open_platform")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["code"].as_i64().unwrap()
}

#[tokio::test]
async fn approval_page_redirects_with_a_code_that_exchanges_once() {
    let emu = common::start().await;
    let r = http()
        .get(at(&emu, Host::Web, "/auth"))
        .query(&[
            ("client_id", emu.oauth_client_id().as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "user:base,file:all:read,file:all:write"),
            ("state", "xyz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(REDIRECT), "{loc}");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["code"].clone();

    let id = emu.oauth_client_id();
    let secret = emu.oauth_client_secret();
    let exchange = [
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, v) = token_call(&emu, &exchange).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["expires_in"], 7200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "user:base,file:all:read,file:all:write");
    assert!(v.get("code").is_none(), "flat, not an envelope: {v}");
    let access = v["access_token"].as_str().unwrap();
    assert!(access.starts_with("eyJ"));
    assert_eq!(user_info_code(&emu, access).await, 0);
    // a code works once
    let (status, v) = token_call(&emu, &exchange).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "invalid_grant");
    assert!(v["error_description"].is_string());
}

#[tokio::test]
async fn user_authorize_needs_a_token_and_wrong_redirect_uri_is_refused() {
    let emu = common::start().await;
    let id = emu.oauth_client_id();
    let r = http()
        .get(at(&emu, Host::Open, "/api/v1/oauth2/user/authorize"))
        .query(&[
            ("accessToken", "nope"),
            ("client_id", id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 401);
    let web = emu.web_session_token();
    let r = http()
        .get(at(&emu, Host::Open, "/api/v1/oauth2/user/authorize"))
        .query(&[
            ("accessToken", web.as_str()),
            ("client_id", id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    // a code for another redirect_uri
    let code = emu.oauth_code("http://elsewhere/cb");
    let secret = emu.oauth_client_secret();
    let (status, v) = token_call(
        &emu,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn refresh_tokens_rotate_are_single_use_and_revoke_the_old_access_token() {
    let emu = common::start().await;
    let first = emu.oauth_tokens();
    assert_eq!(user_info_code(&emu, &first.access_token).await, 0);
    let (status, v) = refresh(&emu, &first.refresh_token).await;
    assert_eq!(status, 200, "{v}");
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    let at2 = v["access_token"].as_str().unwrap().to_string();
    assert_ne!(rt2, first.refresh_token);
    // the previous access token died with the refresh; the new one works
    assert_eq!(user_info_code(&emu, &first.access_token).await, 401);
    assert_eq!(user_info_code(&emu, &at2).await, 0);
    // the spent refresh token is refused
    let (status, v) = refresh(&emu, &first.refresh_token).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(emu.oauth_rotations(), 1);
    // a refresh without the secret works (spec §2.2); a wrong secret does not
    let id = emu.oauth_client_id();
    let (status, v) = token_call(
        &emu,
        &[
            ("client_id", &id),
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let rt3 = v["refresh_token"].as_str().unwrap().to_string();
    let (status, v) = token_call(
        &emu,
        &[
            ("client_id", &id),
            ("client_secret", "wrong"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt3),
        ],
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));
    // access tokens expire after two hours, refresh tokens after 90 days
    emu.set_clock_offset(2 * 3600 + 1);
    let at3 = emu.oauth_tokens().access_token;
    assert_eq!(user_info_code(&emu, &at3).await, 0);
    emu.set_clock_offset(2 * 3600 * 2 + 2);
    assert_eq!(user_info_code(&emu, &at3).await, 401);
    emu.set_clock_offset(91 * 86400);
    let (status, _) = refresh(&emu, &rt3).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn form_body_works_like_the_query_string() {
    let emu = common::start().await;
    let rt = emu.oauth_tokens().refresh_token;
    let r = http()
        .post(at(&emu, Host::Open, "/api/v1/oauth2/access_token"))
        .form(&[
            ("client_id", emu.oauth_client_id().as_str()),
            ("client_secret", emu.oauth_client_secret().as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["refresh_token"].is_string());
}

#[tokio::test]
async fn switches_zero_expires_in_and_a_failing_refresh() {
    let emu = common::start().await;
    emu.set_switches(|s| s.oauth_expires_in = OAuthExpiresIn::Zero);
    let rt = emu.oauth_tokens().refresh_token;
    let (status, v) = refresh(&emu, &rt).await;
    assert_eq!(status, 200);
    assert_eq!(v["expires_in"], 0);
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    // the control API sets the other switch
    let r = http()
        .post(at(&emu, Host::Open, "/__emulator/switches"))
        .json(&json!({"oauth_refresh_fails": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, v) = refresh(&emu, &rt).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
    // a refused refresh does not spend the token
    emu.set_switches(|s| s.oauth_refresh_fails = false);
    let (status, _) = refresh(&emu, &rt).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn token_endpoint_allows_100_calls_a_minute_per_uid() {
    let emu = common::start_with(|c| c.qps = true).await;
    let mut refused = 0;
    for _ in 0..101 {
        let (status, v) = refresh(&emu, "rt-unknown").await;
        match status {
            400 => {}
            429 => {
                assert_eq!(v["error"], "too_many_requests");
                refused += 1;
            }
            s => panic!("unexpected {s}: {v}"),
        }
    }
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn renewal_service_rotates_through_the_token_endpoint_logic() {
    let emu = common::start().await;
    let rt = emu.oauth_tokens().refresh_token;
    let renew = |rt: String| {
        let url = at(&emu, Host::Renew, "/");
        async move {
            let r = http()
                .get(url)
                .query(&[
                    ("refresh_ui", rt.as_str()),
                    ("server_use", "true"),
                    ("driver_txt", "123cloud_oa"),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = renew(rt.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["expires_in"], 7200);
    let access = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(user_info_code(&emu, &access).await, 0);
    assert_ne!(v["refresh_token"].as_str().unwrap(), rt);
    // the spent token: 500 with `text`
    let (status, v) = renew(rt).await;
    assert_eq!(status, 500);
    assert!(v["text"].as_str().unwrap().contains("invalid_grant"), "{v}");
    assert_eq!(emu.stats().calls("renew"), 2);
    // the renewal service is its own host: the Open API host does not serve it
    let r = http()
        .get(at(&emu, Host::Open, "/"))
        .query(&[("refresh_ui", "x"), ("driver_txt", "123cloud_oa")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn pasted_tokens_expire_when_chosen_and_web_tokens_come_from_the_control_api() {
    let emu = common::start().await;
    let r: Value = http()
        .post(at(&emu, Host::Open, "/__emulator/access_token"))
        .json(&json!({"ttl_secs": 100}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pasted = r["access_token"].as_str().unwrap().to_string();
    assert_eq!(r["expires_at"].as_i64().unwrap(), emu.now() + 100);
    assert_eq!(user_info_code(&emu, &pasted).await, 0);
    emu.set_clock_offset(101);
    assert_eq!(user_info_code(&emu, &pasted).await, 401);

    let r: Value = http()
        .post(at(&emu, Host::Open, "/__emulator/web_token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["token"].as_str().unwrap().starts_with("eyJ"));
    let r: Value = http()
        .post(at(&emu, Host::Open, "/__emulator/oauth/code"))
        .json(&json!({"redirect_uri": REDIRECT}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["code"].as_str().unwrap().starts_with("code-"));
}
