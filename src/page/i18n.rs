//! The page's words in English and Chinese, and which language a request gets: `?lang=`, then
//! the `lang` cookie the switcher sets, then `Accept-Language` in the browser's order.

use http::HeaderMap;

/// A language of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    fn parse(s: &str) -> Option<Lang> {
        let primary = s.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The word for `key` (the key itself when unknown, so a missing word shows, never panics).
    pub fn t(self, key: &str) -> &'static str {
        WORDS
            .iter()
            .find(|w| w.0 == key)
            .map_or("?", |w| if self == Lang::Zh { w.2 } else { w.1 })
    }

    /// The words the script needs, as a JSON object.
    pub fn script_words(self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = WORDS
            .iter()
            .filter(|w| w.0.starts_with("js."))
            .map(|w| (w.0[3..].to_string(), self.t(w.0).into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

/// Which language a request gets, and whether it asked for it by `?lang=` (then the answer
/// sets the cookie).
pub fn choose(query: Option<&str>, headers: &HeaderMap) -> (Lang, bool) {
    if let Some(lang) = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    }) {
        return (lang, true);
    }
    let cookie = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("lang="))
        .find_map(Lang::parse);
    if let Some(lang) = cookie {
        return (lang, false);
    }
    (from_accept_language(headers), false)
}

/// The first of en/zh in `Accept-Language`, highest quality first; English otherwise.
fn from_accept_language(headers: &HeaderMap) -> Lang {
    let Some(value) = headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Lang::En;
    };
    let mut best: Option<(f32, usize, Lang)> = None;
    for (i, item) in value.split(',').take(32).enumerate() {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(bq, _, _)| q > bq) {
            best = Some((q, i, lang));
        }
    }
    best.map_or(Lang::En, |b| b.2)
}

/// (key, English, Chinese). Keys starting `js.` are handed to the script too.
const WORDS: &[(&str, &str, &str)] = &[
    ("home", "Home", "首页"),
    ("name", "Name", "名称"),
    ("size", "Size", "大小"),
    ("modified", "Modified", "修改时间"),
    ("actions", "Actions", "操作"),
    ("filter", "Filter by name", "按名称筛选"),
    ("upload", "Upload files", "上传文件"),
    ("newfolder", "New folder", "新建文件夹"),
    ("connect", "Connect", "连接"),
    ("language", "Language", "语言"),
    ("breadcrumb", "Folder path", "文件夹路径"),
    ("empty", "This folder is empty.", "此文件夹为空。"),
    ("parent", "Parent folder", "上级文件夹"),
    ("dropzone", "Drop files here to upload", "拖放文件到此处上传"),
    ("address", "WebDAV address", "WebDAV 地址"),
    ("mounts", "Mounts", "挂载点"),
    ("connect.title", "Connect to", "连接到"),
    (
        "connect.intro",
        "Use this address in any WebDAV client. Sign in with your gateway user name and password.",
        "在任何 WebDAV 客户端中使用此地址，并以网关的用户名和密码登录。",
    ),
    (
        "connect.windows",
        "Windows Explorer: This PC → Map network drive → “Connect to a Web site…”, or paste the address into the address bar. Over plain http, Windows sends passwords only after BasicAuthLevel is set to 2 (see the README); https needs nothing.",
        "Windows 资源管理器：此电脑 → 映射网络驱动器 → “连接到可用于存储文档和图片的网站”，或把地址粘贴到地址栏。使用 http 时，需先把 BasicAuthLevel 设为 2（见 README）；https 无需设置。",
    ),
    (
        "connect.finder",
        "macOS Finder: Go → Connect to Server… (⌘K), paste the address, Connect.",
        "macOS 访达：前往 → 连接服务器…（⌘K），粘贴地址，连接。",
    ),
    (
        "connect.rclone",
        "rclone: create a remote with this line, then set its password with rclone config.",
        "rclone：用这一行创建远程，再用 rclone config 设置密码。",
    ),
    (
        "connect.players",
        "Media players (Infuse, Kodi, VLC, nPlayer): add a WebDAV share with this address, your user name and password. Kodi: Add videos → Browse → Add network location → WebDAV server. VLC: Open Network → paste a file's address.",
        "媒体播放器（Infuse、Kodi、VLC、nPlayer）：用此地址、用户名和密码添加 WebDAV 共享。Kodi：添加视频 → 浏览 → 添加网络位置 → WebDAV 服务器。VLC：打开网络串流 → 粘贴文件地址。",
    ),
    ("connect.back", "Back to the files", "返回文件列表"),
    ("js.open", "Open", "打开"),
    ("js.download", "Download", "下载"),
    ("js.share", "Copy link", "复制链接"),
    ("js.rename", "Rename / move", "重命名/移动"),
    ("js.delete", "Delete", "删除"),
    ("js.close", "Close", "关闭"),
    ("js.confirmDelete", "Delete “{0}”? This cannot be undone here.", "删除“{0}”？此操作无法在此撤销。"),
    ("js.newName", "New name or path for “{0}”:", "“{0}”的新名称或路径："),
    ("js.folderName", "Name of the new folder:", "新文件夹名称："),
    ("js.lifetime", "Link lifetime", "链接有效期"),
    ("js.h1", "1 hour", "1 小时"),
    ("js.d1", "1 day", "1 天"),
    ("js.d7", "7 days", "7 天"),
    ("js.makeLink", "Make link", "生成链接"),
    ("js.copied", "Link copied", "链接已复制"),
    ("js.linkReady", "Share link (opens without an account):", "分享链接（无需账号即可打开）："),
    ("js.queued", "queued", "排队中"),
    ("js.uploading", "uploading", "上传中"),
    ("js.done", "done", "完成"),
    ("js.failed", "failed", "失败"),
    ("js.sent", "sent", "已发送"),
    ("js.error", "Error", "错误"),
    ("js.ok", "OK", "确定"),
    ("js.cancel", "Cancel", "取消"),
    ("js.shown", "{0} of {1} shown", "显示 {0} / {1}"),
    ("js.items", "{0} items", "{0} 项"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn query_then_cookie_then_accept_language() {
        let zh_browser = headers(&[("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")]);
        assert_eq!(choose(None, &zh_browser), (Lang::Zh, false));
        assert_eq!(choose(Some("lang=en"), &zh_browser), (Lang::En, true));
        let cookie = headers(&[("accept-language", "zh-CN"), ("cookie", "a=b; lang=en")]);
        assert_eq!(choose(None, &cookie), (Lang::En, false));
        assert_eq!(choose(Some("lang=fr"), &headers(&[])), (Lang::En, false));
        let weighted = headers(&[("accept-language", "fr, en;q=0.5, zh;q=0.7")]);
        assert_eq!(choose(None, &weighted), (Lang::Zh, false));
    }

    #[test]
    fn every_word_has_both_languages() {
        for (key, en, zh) in WORDS {
            assert!(!en.is_empty() && !zh.is_empty(), "{key}");
        }
        assert!(Lang::Zh.script_words().contains("复制链接"));
    }
}
