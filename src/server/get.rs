//! GET and HEAD on a mount path: client junk from its side store, a folder's HTML index, and
//! a file through the download path (`download::serve_file`).

use std::sync::Arc;

use http::{Request, Response, StatusCode};

use super::errors::{error_response, failed_response};
use super::index;
use super::paths;
use super::profile::ClientProfile;
use super::root::html;
use super::AppState;
use crate::backend::Entry;
use crate::dav::store_key;
use crate::download;
use crate::mount::Mount;
use crate::response;
use crate::response::ResponseBody;
use response::status_text;

/// GET/HEAD on a mount path: a folder gets the browser page (a browser's GET) or a minimal
/// HTML index (other clients, HEAD 200); a file goes by policy.
#[allow(clippy::too_many_arguments)]
pub(super) async fn get_or_head<B>(
    state: &AppState,
    mount: &Arc<Mount>,
    rest: &[String],
    full: &[String],
    req: &Request<B>,
    profile: ClientProfile,
    full_path: &str,
    user: &super::auth::User,
) -> Response<ResponseBody> {
    // Client junk is answered locally: from the side store, or a fast 404 that never asks 123.
    if let Some(name) = rest
        .last()
        .filter(|n| profile.junk_local && crate::dav::junk::is_junk(n))
    {
        let Some(file) = mount.junk.get(&user.name, &store_key(rest)) else {
            return status_text(StatusCode::NOT_FOUND, "Not found", None);
        };
        let entry = Entry {
            id: 0,
            name: name.clone(),
            is_dir: false,
            size: file.bytes.len() as u64,
            md5: None,
            version: None,
            modified: file.modified,
            created: file.modified,
        };
        return download::serve_memory(req.method(), req.headers(), &entry, file.bytes.clone())
            .await;
    }
    let entry = match mount.vfs.resolve(rest).await {
        Ok(e) => e,
        Err(e) => return error_response(&e, full_path),
    };
    if entry.is_dir && req.method() == http::Method::GET && crate::page::wants_html(req.headers()) {
        // The same cached listing as PROPFIND, with pending uploads shown.
        let entries = match mount.vfs.list_view(&entry).await {
            Ok(l) => l,
            Err(e) => return error_response(&e, full_path),
        };
        return super::ui::folder_page(state, req, user, Some(mount), full, &entries);
    }
    if entry.is_dir {
        let listing = match mount.vfs.list(&entry).await {
            Ok(l) => l,
            Err(e) => return error_response(&e, full_path),
        };
        let mut below = paths::encode(full);
        if !below.ends_with('/') {
            below.push('/');
        }
        let href = format!("{}{below}", state.base_path);
        let address = state.address_of(&below);
        let page = index::render(&href, &href, address.as_deref(), &listing.entries);
        return html(req, page);
    }
    let file = download::FileRequest {
        method: req.method(),
        headers: req.headers(),
        never_redirect: profile.never_redirect,
        path: full,
        full_path,
    };
    download::serve_file(&state.downloads(), mount, &entry, &file)
        .await
        .unwrap_or_else(|failed| failed_response(&failed))
}
