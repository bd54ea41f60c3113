//! The direct-link host (stats word `direct`): files inside the direct-link space folder at
//! `/<uid>/<space folder name>/<path inside>` (docs/123.md, open §5), with optional `auth_key`
//! checking (§5.3) over the decoded or the encoded path (switch `auth_key_path`). Links do not
//! expire and are not bound to the requester.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use crate::config::AuthKeyPath;
use crate::emulator::{lock, Shared};
use crate::hosts::Host;
use crate::http::{encode_path, query, query_pairs, text, Resp};
use crate::server::Ctx;
use crate::state::ROOT;

/// The direct link of a live file, or `None` when it is not inside the direct-link space.
pub fn url_for(sh: &Shared, id: u64) -> Option<String> {
    let space = sh.direct_space?;
    let fs = lock(&sh.fs);
    if !fs.tree.is_live(space) || !fs.tree.is_live(id) {
        return None;
    }
    let mut names = Vec::new();
    let mut cur = id;
    while cur != space {
        if cur == ROOT {
            return None;
        }
        let e = fs.tree.get(cur)?;
        names.push(e.name.clone());
        cur = e.parent;
    }
    names.push(fs.tree.get(space)?.name.clone());
    let uid = sh.uid.to_string();
    names.push(uid);
    names.reverse();
    Some(format!(
        "{}{}",
        sh.url(Host::Direct),
        encode_path(names.iter().map(String::as_str))
    ))
}

/// `GET|HEAD /<uid>/<space>/<path>`.
pub fn handle(ctx: &Ctx, req: Request<Incoming>) -> Resp {
    let sh = &ctx.shared;
    let Ok(decoded) = percent_decode_str(req.uri().path()).decode_utf8() else {
        return text(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let decoded = decoded.into_owned();
    if let Some(key) = &sh.direct_link_key {
        let pairs = query_pairs(req.uri());
        // docs/123.md, web §6: which form is hashed is the `auth_key_path` switch.
        let signed_path = match sh.switches().auth_key_path {
            AuthKeyPath::Decoded => decoded.as_str(),
            AuthKeyPath::Encoded => req.uri().path(),
        };
        if let Err(e) = crate::auth_key::verify(
            signed_path,
            query(&pairs, "auth_key"),
            sh.uid,
            key,
            sh.now(),
        ) {
            return text(StatusCode::FORBIDDEN, &format!("403 Forbidden: {e}"));
        }
    }
    let segs: Vec<&str> = decoded.split('/').skip(1).collect();
    let (Some(uid), Some(space_name)) = (segs.first(), segs.get(1)) else {
        return text(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let found = (|| {
        if *uid != sh.uid.to_string() {
            return None;
        }
        let space = sh.direct_space?;
        let fs = lock(&sh.fs);
        let space_entry = fs.tree.get(space)?;
        if !fs.tree.is_live(space) || space_entry.name != *space_name {
            return None;
        }
        let mut cur = space;
        for seg in &segs[2..] {
            cur = fs.tree.live_child(cur, seg)?;
        }
        let e = fs.tree.get(cur)?;
        (!e.is_dir).then(|| (e.md5.clone(), e.size, e.name.clone()))
    })();
    match found {
        Some((md5, size, name)) => {
            crate::cdn::serve_content(ctx, &req, "direct", &md5, size, Some(name))
        }
        None => text(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}
