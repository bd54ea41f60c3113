//! The personal account on the web API (docs/123.md, web §1): login on the login host
//! (`POST /api/user/sign_in`, unsigned, success is code 200), then signed `/b/api/...` calls with
//! the session token: `user/info`, `file/list/new` (`Page`-based, 100 per page, trashed hidden,
//! `file_id desc`) and `file/download_info` (the same "web-pro" hop as share links, and the
//! same `daily_traffic_cap` as the Open API). Tree changes are in `personal_write.rs`, uploads
//! in `personal_upload.rs`.
//!
//! The web client's headers (`platform`, `app-version`, `Referer`/`Origin`) are checked for
//! every web call in `web.rs`; personal calls also need `authorization: Bearer <token>` (an
//! unknown or expired token is code 401, which the client answers by logging in again).

use http::{HeaderMap, Request};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::emulator::{lock, Shared};
use crate::http::{query, HandlerResult, Resp};
use crate::open_api::{over_traffic_cap, read_args, CODE_TRAFFIC};
use crate::server::Ctx;
use crate::web::{echoes_item, header, web_err, web_item, web_ok, MSG_STALE_ITEM};

/// The login refusal for risk control (docs/123.md, web §1.3; OpenList docs); its code is unknown.
pub const MSG_RISK: &str = "当前账号存在安全风险，请使用短信验证码或者微信进行登录。";
/// Risk control for a login from abroad (spec web §8 quotes `境外登录风险`; the full text is
/// the emulator's).
pub const MSG_ABROAD: &str = "检测到境外登录风险，请使用短信验证码或者微信进行登录";
/// The verification step the API cannot pass (spec web §1.3).
pub const MSG_VERIFY: &str = "请进行验证";
/// A locked account (the real text is unpublished).
pub const MSG_LOCKED: &str = "账号已被锁定，请稍后再试";
/// Wrong name or password (the real text is unpublished).
pub const MSG_BAD_LOGIN: &str = "账号或密码错误";
/// Code 401 on the web API (the real text is unconfirmed, docs/123.md, web §6).
pub const MSG_WEB_401: &str = "token is expired";
/// Missing file or folder.
const MSG_NOT_FOUND: &str = "文件不存在";
/// Code for a missing file or folder (as on the Open API).
const CODE_NOT_FOUND: i64 = 5066;
/// Items per page.
const PAGE: usize = 100;
/// Web sessions are kept apart from Open API tokens by their owner name.
const LOGIN_OWNER_PREFIX: &str = "web:";

/// Issues a web session token for the personal account, as a successful login does: the token
/// and its expiry.
pub fn issue_web_token(sh: &Shared) -> (String, i64) {
    let now = sh.now();
    let ttl = i64::try_from(sh.switches().token_ttl.as_secs()).unwrap_or(i64::MAX);
    lock(&sh.web_tokens).issue(&format!("{LOGIN_OWNER_PREFIX}{}", sh.web_user), now, ttl)
}

/// `POST /api/user/sign_in` on the login host (unsigned; headers checked in `web.rs`).
pub async fn sign_in(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = ctx.shared.clone();
    // Phone (or other passport) logins send `passport`; e-mail logins `mail` with type 2.
    let name = match (args.str("passport"), args.str("mail")) {
        (Some(p), _) => p,
        (None, Some(m)) if args.int("type") == Ok(Some(2)) => m,
        _ => return Ok(web_err(1, "请输入账号")),
    };
    let password = args.str("password").unwrap_or_default();
    if name != sh.web_user || password != sh.web_password {
        return Ok(web_err(1, MSG_BAD_LOGIN));
    }
    let sw = sh.switches();
    if sw.web_risk_control {
        return Ok(web_err(1, MSG_RISK));
    }
    use crate::config::WebLoginRefusal as R;
    match sw.web_login_refusal {
        R::None => {}
        R::RiskControl => return Ok(web_err(1, MSG_RISK)),
        R::Abroad => return Ok(web_err(1, MSG_ABROAD)),
        R::Verify => return Ok(web_err(1, MSG_VERIFY)),
        R::Locked => return Ok(web_err(1, MSG_LOCKED)),
    }
    let (token, expires) = issue_web_token(&sh);
    Ok(crate::http::json(
        http::StatusCode::OK,
        &json!({
            "code": 200,
            "message": "success",
            "data": {
                "token": token,
                "expire": crate::clock::rfc3339_cst(expires),
                "refresh_token_expire_time": expires,
            }
        }),
    ))
}

/// The session check of every personal `/b/api` call: the token's owner (for the QPS gate), or
/// the answer to send instead.
pub fn check(ctx: &Ctx, headers: &HeaderMap) -> Result<String, Resp> {
    let token = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let now = ctx.shared.now();
    let owner = (!token.is_empty())
        .then(|| lock(&ctx.shared.web_tokens).check(token, now))
        .flatten();
    owner.ok_or_else(|| web_err(401, MSG_WEB_401))
}

/// `GET /b/api/user/info`.
pub fn user_info(ctx: &Ctx) -> Resp {
    let sh = &ctx.shared;
    let (used, count) = {
        let fs = lock(&sh.fs);
        let count = fs.tree.all().filter(|e| !e.trashed).count();
        (fs.tree.space_used(), count)
    };
    web_ok(json!({
        "UID": sh.uid,
        "Nickname": "emulated",
        "SpaceUsed": used,
        "SpacePermanent": 2_u64 << 40,
        "SpaceTemp": 0,
        "FileCount": count,
    }))
}

/// `GET /b/api/file/list/new`.
pub fn list(ctx: &Ctx, q: &[(String, String)]) -> Resp {
    let sh = &ctx.shared;
    let num = |name: &str| query(q, name).and_then(|v| v.trim().parse::<i64>().ok());
    let parent = u64::try_from(num("parentFileId").unwrap_or(0)).unwrap_or(u64::MAX);
    let page = num("Page").unwrap_or(1).max(1);
    let limit = num("limit")
        .filter(|l| (1..=PAGE as i64).contains(l))
        .map_or(PAGE, |l| l as usize);
    let asc = query(q, "orderDirection").is_some_and(|d| d.eq_ignore_ascii_case("asc"));
    let trashed = query(q, "trashed").is_some_and(|t| t == "true");

    let mut items: Vec<Value> = {
        let fs = lock(&sh.fs);
        let live_dir = parent == 0
            || (fs.tree.is_live(parent) && fs.tree.get(parent).is_some_and(|e| e.is_dir));
        if !live_dir {
            return web_err(CODE_NOT_FOUND, MSG_NOT_FOUND);
        }
        fs.tree
            .children(parent)
            .filter(|e| e.trashed == trashed)
            .map(|e| web_item(e, sh.uid))
            .collect()
    };
    if !asc {
        items.reverse();
    }
    let page_u = u64::try_from(page).unwrap_or(u64::MAX);
    if lock(&sh.faults).take_expire_page(ctx.ep.key(), page_u) {
        lock(&sh.web_tokens).expire_all();
        return web_err(401, MSG_WEB_401);
    }
    if lock(&sh.faults).take_fail_page(ctx.ep.key(), page_u) {
        return web_err(1, "服务器繁忙,请稍后重试");
    }
    let total = items.len();
    let start = usize::try_from(page - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(limit);
    let page_items: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let more = start.saturating_add(limit) < total;
    let next = match page_items.last() {
        Some(last) if more => last["FileId"].to_string(),
        _ => "-1".to_string(),
    };
    web_ok(json!({
        "InfoList": page_items,
        "Next": next,
        "Total": total,
        "Len": page_items.len(),
        "IsFirst": page == 1,
    }))
}

/// `POST /b/api/file/download_info` → `data.DownloadUrl` (lower-case `rl`, unlike shares). The
/// body's `etag`, `s3keyFlag` and `size` must be the file's (code 1 `MSG_STALE_ITEM`).
pub async fn download_info(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = ctx.shared.clone();
    let Ok(Some(id)) = args.int("fileId") else {
        return Ok(web_err(1, "fileId参数错误"));
    };
    let file = {
        let fs = lock(&sh.fs);
        let id = u64::try_from(id).unwrap_or(u64::MAX);
        match fs.tree.get(id) {
            Some(e) if !e.is_dir && fs.tree.is_live(id) => e.clone(),
            _ => return Ok(web_err(CODE_NOT_FOUND, MSG_NOT_FOUND)),
        }
    };
    // docs/123.md, web §7: the file object must be the one listed, `etag` and `s3keyFlag` included.
    if !echoes_item(&args, &file, sh.uid) {
        return Ok(web_err(1, MSG_STALE_ITEM));
    }
    // The personal CDN bytes count toward the same daily cap as the Open API's.
    if over_traffic_cap(&sh) {
        return Ok(web_err(CODE_TRAFFIC, sh.switches().traffic_message.text()));
    }
    let url = crate::webpro::download_url(&sh, file, ctx.peer.ip());
    Ok(web_ok(json!({"DownloadUrl": url})))
}
