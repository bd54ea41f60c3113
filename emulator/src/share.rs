//! Share links on the web API (docs/123.md, web §2): `GET /b/api/share/get` (listing, `Page`-based, 100
//! per page, trashed items hidden) and `POST /b/api/share/download/info` (a "web-pro" hop URL
//! whose `params` decode to a Referer-bound CDN link, see `webpro.rs`).

use http::Request;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::emulator::{lock, Shared};
use crate::http::{query, HandlerResult, Resp};
use crate::open_api::read_args;
use crate::server::Ctx;
use crate::web::{web_err, web_item, web_ok};

/// A published share.
#[derive(Debug, Clone)]
pub struct Share {
    /// Extraction code, if any.
    pub password: Option<String>,
    /// The shared folder (or file).
    pub root: u64,
}

/// Wrong key or password (alist#6357); the numeric code is unknown, 1 is used.
pub const MSG_BAD_SHARE: &str = "分享码错误或者分享地址错误";
/// File not in this share.
const MSG_NOT_FOUND: &str = "文件不存在";
/// Items per page.
const PAGE: usize = 100;

/// The share's root id if key and password are right and the root is still live.
fn open_share(sh: &Shared, key: &str, pwd: &str) -> Result<u64, Resp> {
    let share = lock(&sh.shares).get(key).cloned();
    let Some(share) = share else {
        return Err(web_err(1, MSG_BAD_SHARE));
    };
    if let Some(p) = &share.password {
        if p != pwd {
            return Err(web_err(1, MSG_BAD_SHARE));
        }
    }
    if !lock(&sh.fs).tree.is_live(share.root) {
        return Err(web_err(1, MSG_BAD_SHARE));
    }
    Ok(share.root)
}

/// `GET /b/api/share/get`.
pub fn list(ctx: &Ctx, q: &[(String, String)]) -> Resp {
    let sh = &ctx.shared;
    let key = query(q, "shareKey").unwrap_or_default();
    let pwd = query(q, "SharePwd").unwrap_or_default();
    let root = match open_share(sh, key, pwd) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let num = |name: &str| query(q, name).and_then(|v| v.trim().parse::<i64>().ok());
    let parent = num("parentFileId")
        .or_else(|| num("ParentFileId"))
        .unwrap_or(0);
    let page = num("Page").unwrap_or(1).max(1);
    let limit = num("limit")
        .filter(|l| (1..=PAGE as i64).contains(l))
        .map_or(PAGE, |l| l as usize);
    let asc = query(q, "orderDirection").is_some_and(|d| d.eq_ignore_ascii_case("asc"));

    let fs = lock(&sh.fs);
    let Some(root_entry) = fs.tree.get(root) else {
        return web_err(1, MSG_BAD_SHARE);
    };
    let mut items: Vec<Value> = if parent == 0 && !root_entry.is_dir {
        vec![web_item(root_entry, sh.uid)]
    } else {
        let dir = if parent == 0 { root } else { parent as u64 };
        let inside = fs.tree.is_ancestor_or_self(root, dir)
            && fs.tree.is_live(dir)
            && fs.tree.get(dir).is_some_and(|e| e.is_dir);
        if !inside {
            return web_err(1, MSG_NOT_FOUND);
        }
        fs.tree
            .children(dir)
            .filter(|e| !e.trashed)
            .map(|e| web_item(e, sh.uid))
            .collect()
    };
    drop(fs);
    if !asc {
        items.reverse();
    }
    if lock(&sh.faults).take_fail_page(ctx.ep.key(), page as u64) {
        return web_err(1, "服务器繁忙,请稍后重试");
    }
    let start = usize::try_from(page - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(limit);
    let page_items: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let more = start.saturating_add(limit) < items.len();
    let next = match page_items.last() {
        Some(last) if more => last["FileId"].to_string(),
        _ => "-1".to_string(),
    };
    web_ok(json!({
        "InfoList": page_items,
        "Next": next,
        "Len": page_items.len(),
        "IsFirst": page == 1,
        "Expired": false,
    }))
}

/// 123's message when a share's download needs a logged-in account.
const MSG_NEEDS_LOGIN: &str = "您需要注册登录或付费后下载";

/// `POST /b/api/share/download/info` → `data.DownloadURL`.
pub async fn download_info(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    // Since 2025-07 anonymous share downloads fail for some users while logged-in tokens work
    // (spec: OpenList#905); 123's code for it is 5112 (qaiu/netdisk-fast-download#227).
    if lock(&ctx.shared.switches).share_download_needs_login
        && crate::personal::check(ctx, req.headers()).is_err()
    {
        return Ok(web_err(5112, MSG_NEEDS_LOGIN));
    }
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = ctx.shared.clone();
    let key = args.str("shareKey").unwrap_or_default();
    let pwd = args.str("SharePwd").unwrap_or_default();
    let root = match open_share(&sh, key, pwd) {
        Ok(r) => r,
        Err(r) => return Ok(r),
    };
    let Ok(Some(id)) = args.int("fileId") else {
        return Ok(web_err(1, "fileId参数错误"));
    };
    let file = {
        let fs = lock(&sh.fs);
        let id = u64::try_from(id).unwrap_or(u64::MAX);
        match fs.tree.get(id) {
            Some(e)
                if !e.is_dir && fs.tree.is_live(id) && fs.tree.is_ancestor_or_self(root, id) =>
            {
                e.clone()
            }
            _ => return Ok(web_err(5066, MSG_NOT_FOUND)),
        }
    };
    // A share's downloads count toward the same traffic cap (the sharer's or the visitor's
    // quota; 123 answers 5113 either way).
    if crate::open_api::over_traffic_cap(&sh) {
        let message = sh.switches().traffic_message.text();
        return Ok(web_err(crate::open_api::CODE_TRAFFIC, message));
    }
    let url = crate::webpro::download_url(&sh, file, ctx.peer.ip());
    Ok(web_ok(json!({"DownloadURL": url})))
}
