//! The HTML of the page: a folder's listing rendered on the server (so it works without the
//! script and a 1,000-entry folder stays small), and the connect page of a mount.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::i18n::Lang;
use crate::backend::Entry;
use crate::server::index::escape;
use crate::server::paths::encode_segment;

/// What a folder's page shows besides its entries.
pub struct Folder<'a> {
    pub lang: Lang,
    /// `server.base_path` ("" at the root).
    pub base: &'a str,
    /// The folder's segments below the base (empty for the virtual root).
    pub segments: &'a [String],
    /// The folder's WebDAV address, shown for pasting into a client.
    pub address: Option<&'a str>,
    /// The user may write here (upload, new folder, rename, delete).
    pub can_write: bool,
    /// The user may make share links (signed URLs are enabled and the user has an account).
    pub can_share: bool,
    /// The mount's name, for its connect page (none at the virtual root).
    pub mount: Option<&'a str>,
}

/// `YYYY-MM-DD HH:MM` (UTC) of a time; the script shows it in the browser's own zone.
fn date(t: SystemTime) -> (u64, String) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let shown = chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    (secs, shown)
}

/// A size as people read it (KiB steps shown as KB, MB…), one decimal below 10.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// The `<head>` and the top bar shared by every view.
fn head(out: &mut String, lang: Lang, title: &str, ui: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"{ui}/app.css\">\
<script src=\"{ui}/app.js\" defer></script></head><body>\n",
        code = lang.code(),
        title = escape(title),
    );
}

/// The language switcher: links that set the `lang` cookie.
fn switcher(out: &mut String, lang: Lang) {
    let _ = write!(
        out,
        "<nav class=\"lang\" aria-label=\"{label}\"><a href=\"?lang=en\" hreflang=\"en\" lang=\"en\"{en}>English</a> \
<a href=\"?lang=zh\" hreflang=\"zh\" lang=\"zh\"{zh}>中文</a></nav>",
        label = lang.t("language"),
        en = if lang == Lang::En { " aria-current=\"true\"" } else { "" },
        zh = if lang == Lang::Zh { " aria-current=\"true\"" } else { "" },
    );
}

/// A folder's page. `ui` is the versioned asset prefix (`/-/ui/<version>`).
pub fn folder(f: &Folder<'_>, ui: &str, entries: &[Entry]) -> String {
    let lang = f.lang;
    let mut href = format!("{}/", f.base);
    for s in f.segments {
        href.push_str(&encode_segment(s));
        href.push('/');
    }
    let title = f.segments.last().map_or("/", String::as_str);
    let mut out = String::with_capacity(2048 + entries.len() * 120);
    head(&mut out, lang, title, ui);
    // Relative row links resolve against the folder whatever the request's own URL was.
    let _ = write!(out, "<base href=\"{}\">", escape(&href));
    out.push_str("<header>");
    let _ = write!(
        out,
        "<nav id=\"crumbs\" aria-label=\"{}\"><a href=\"{}/\">{}</a>",
        lang.t("breadcrumb"),
        escape(f.base),
        lang.t("home")
    );
    let mut so_far = format!("{}/", f.base);
    for (i, s) in f.segments.iter().enumerate() {
        so_far.push_str(&encode_segment(s));
        so_far.push('/');
        let current = if i + 1 == f.segments.len() {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            out,
            " <span aria-hidden=\"true\">/</span> <a href=\"{}\"{current}>{}</a>",
            escape(&so_far),
            escape(s)
        );
    }
    out.push_str("</nav>");
    if let Some(mount) = f.mount {
        let _ = write!(
            out,
            "<a class=\"connect\" href=\"{}/-/connect/{}\">{}</a>",
            escape(f.base),
            encode_segment(mount),
            lang.t("connect")
        );
    }
    switcher(&mut out, lang);
    out.push_str("</header>\n<main>");
    if let Some(a) = f.address {
        let _ = write!(
            out,
            "<p class=\"address\">{}: <code>{}</code></p>",
            lang.t("address"),
            escape(a)
        );
    }
    let _ = write!(
        out,
        "<div class=\"bar\"><label for=\"filter\">{}</label> <input id=\"filter\" type=\"search\" autocomplete=\"off\">",
        lang.t("filter")
    );
    if f.can_write {
        let _ = write!(
            out,
            "<label class=\"button\" for=\"pick\">{}</label><input id=\"pick\" type=\"file\" multiple>\
<button type=\"button\" id=\"mkdir\">{}</button>",
            lang.t("upload"),
            lang.t("newfolder")
        );
    }
    out.push_str("<span id=\"count\" role=\"status\"></span></div>\n");
    if f.can_write {
        let _ = writeln!(
            out,
            "<div id=\"drop\" hidden>{}</div><ul id=\"queue\" aria-live=\"polite\"></ul>",
            lang.t("dropzone")
        );
    }
    let _ = writeln!(
        out,
        "<table id=\"list\" data-write=\"{}\" data-share=\"{}\" data-base=\"{base}\" data-path=\"{path}\" data-api=\"{base}/-/\"><thead><tr>\
<th scope=\"col\" data-k=\"n\" aria-sort=\"ascending\"><button type=\"button\">{}</button></th>\
<th scope=\"col\" data-k=\"s\"><button type=\"button\">{}</button></th>\
<th scope=\"col\" data-k=\"m\"><button type=\"button\">{}</button></th>\
<th scope=\"col\" class=\"act\">{}</th></tr></thead><tbody>",
        u8::from(f.can_write),
        u8::from(f.can_share),
        lang.t("name"),
        lang.t("size"),
        lang.t("modified"),
        lang.t("actions"),
        base = escape(f.base),
        path = escape(&href[f.base.len()..]),
    );
    if !f.segments.is_empty() {
        let _ = writeln!(
            out,
            "<tr class=\"up\"><td><a href=\"../\" aria-label=\"{}\">../</a><td><td><td>",
            lang.t("parent")
        );
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    for e in sorted {
        let (secs, shown) = date(e.modified);
        let name = escape(&e.name);
        let link = encode_segment(&e.name);
        if e.is_dir {
            let _ = writeln!(
                out,
                "<tr class=\"d\" data-m=\"{secs}\"><td><a href=\"{link}/\">{name}/</a><td><td>{shown}<td>"
            );
        } else {
            let _ = writeln!(
                out,
                "<tr data-s=\"{}\" data-m=\"{secs}\"><td><a href=\"{link}\">{name}</a><td>{}<td>{shown}<td>",
                e.size,
                human_size(e.size)
            );
        }
    }
    out.push_str("</tbody></table>");
    if entries.is_empty() {
        let _ = write!(out, "<p class=\"empty\">{}</p>", lang.t("empty"));
    }
    out.push_str("</main>\n<dialog id=\"viewer\"></dialog>\n");
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"words\">{}</script>",
        lang.script_words().replace("</", "<\\/")
    );
    out.push_str("</body></html>\n");
    out
}

/// What the connect page of a mount shows.
pub struct Connect<'a> {
    pub lang: Lang,
    pub base: &'a str,
    pub mount: &'a str,
    /// The mount's WebDAV URL as clients reach it.
    pub url: &'a str,
    pub user: &'a str,
}

/// The connect page: how to mount this mount in the usual clients, with its URL filled in.
pub fn connect(c: &Connect<'_>, ui: &str) -> String {
    let lang = c.lang;
    let mut out = String::with_capacity(4096);
    let title = format!("{} {}", lang.t("connect.title"), c.mount);
    head(&mut out, lang, &title, ui);
    out.push_str("<header>");
    let _ = write!(
        out,
        "<nav id=\"crumbs\" aria-label=\"{}\"><a href=\"{}/\">{}</a> <span aria-hidden=\"true\">/</span> <a href=\"{}/{}/\">{}</a></nav>",
        lang.t("breadcrumb"),
        escape(c.base),
        lang.t("home"),
        escape(c.base),
        encode_segment(c.mount),
        escape(c.mount)
    );
    switcher(&mut out, lang);
    out.push_str("</header>\n<main class=\"connect-page\">");
    let url = escape(c.url);
    let rclone = format!(
        "rclone config create {} webdav url={} vendor=owncloud user={}",
        rclone_name(c.mount),
        c.url,
        c.user
    );
    // Windows Explorer takes the URL as is; for HTTPS the UNC form needs @SSL.
    let unc = unc_path(c.url);
    let _ = writeln!(
        out,
        "<h1>{title}</h1><p>{intro}</p>\
<p><label for=\"url\">{address}</label> <input id=\"url\" readonly value=\"{url}\" size=\"60\"></p>\
<section><h2>Windows</h2><p>{win}</p><pre><code>{url}</code></pre>{unc}</section>\
<section><h2>macOS Finder</h2><p>{finder}</p><pre><code>{url}</code></pre></section>\
<section><h2>rclone</h2><p>{rc}</p><pre><code id=\"rclone\">{rclone}</code></pre></section>\
<section><h2>Infuse · Kodi · VLC · nPlayer</h2><p>{players}</p><pre><code>{url}</code></pre></section>\
<p><a href=\"{base}/{mount}/\">{back}</a></p></main></body></html>",
        title = escape(&title),
        intro = lang.t("connect.intro"),
        address = lang.t("address"),
        win = lang.t("connect.windows"),
        unc = unc.map_or_else(String::new, |u| format!("<pre><code>{}</code></pre>", escape(&u))),
        finder = lang.t("connect.finder"),
        rc = lang.t("connect.rclone"),
        rclone = escape(&rclone),
        players = lang.t("connect.players"),
        base = escape(c.base),
        mount = encode_segment(c.mount),
        back = lang.t("connect.back"),
    );
    out
}

/// A remote name rclone accepts: the mount's name with anything unusual made `_`.
fn rclone_name(mount: &str) -> String {
    let name: String = mount
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "pan123".into()
    } else {
        name
    }
}

/// `\\host@SSL@port\DavWWWRoot\path` for Windows' "Map network drive".
fn unc_path(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let ssl = if parsed.scheme() == "https" {
        "@SSL"
    } else {
        ""
    };
    let port = parsed.port().map_or_else(String::new, |p| format!("@{p}"));
    let path = parsed.path().trim_matches('/').replace('/', "\\");
    Some(format!("\\\\{host}{ssl}{port}\\DavWWWRoot\\{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(50 * 1024 * 1024), "50 MB");
    }

    #[test]
    fn connect_fills_in_the_url() {
        let page = connect(
            &Connect {
                lang: Lang::En,
                base: "",
                mount: "my films",
                url: "https://dav.example/my%20films/",
                user: "alice",
            },
            "/-/ui/x",
        );
        assert!(page.contains(
            "rclone config create my_films webdav url=https://dav.example/my%20films/ vendor=owncloud user=alice"
        ));
        assert!(page.contains("\\\\dav.example@SSL\\DavWWWRoot\\my%20films"));
    }

    #[test]
    fn rows_escape_names_and_stay_small() {
        let e = |i: usize| Entry {
            id: i as u64,
            name: format!("file-{i:04}-<b>.bin"),
            is_dir: i.is_multiple_of(10),
            size: 1_000_000 + i as u64,
            md5: None,
            version: None,
            modified: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            created: UNIX_EPOCH,
        };
        let entries: Vec<Entry> = (0..1000).map(e).collect();
        let f = Folder {
            lang: Lang::Zh,
            base: "",
            segments: &["m".into()],
            address: None,
            can_write: true,
            can_share: true,
            mount: Some("m"),
        };
        let page = folder(&f, "/-/ui/x", &entries);
        assert!(!page.contains("<b>"));
        assert!(page.contains("file-0001-&lt;b&gt;.bin"));
        assert!(page.len() < 200 * 1024, "{}", page.len());
    }
}
