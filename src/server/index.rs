//! A small HTML index of a folder for browsers (GET on a collection).

use crate::backend::Entry;
use crate::server::paths::encode_segment;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for folder `title` whose own URL path (encoded, ending in '/') is `base`;
/// `address` is its absolute URL (from `server.public_url`), shown for pasting into a WebDAV
/// client.
pub fn render(title: &str, base: &str, address: Option<&str>, entries: &[Entry]) -> String {
    let mut rows = String::new();
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    for e in sorted {
        let slash = if e.is_dir { "/" } else { "" };
        let size = if e.is_dir {
            String::new()
        } else {
            e.size.to_string()
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"{base}{href}{slash}\">{name}{slash}</a></td><td>{size}</td></tr>\n",
            href = encode_segment(&e.name),
            name = escape(&e.name),
        ));
    }
    let address = address.map_or_else(String::new, |a| {
        format!(
            "<p>WebDAV address: <a href=\"{a}\">{a}</a></p>\n",
            a = escape(a)
        )
    });
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n<h1>{t}</h1>\n{address}<table>\n<tr><td><a href=\"../\">../</a></td><td></td></tr>\n{rows}</table>\n</body></html>\n",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names() {
        let e = Entry {
            id: 1,
            name: "<script>&\"x\".txt".into(),
            is_dir: false,
            size: 3,
            md5: None,
            version: None,
            modified: std::time::SystemTime::UNIX_EPOCH,
            created: std::time::SystemTime::UNIX_EPOCH,
        };
        let html = render("/m/", "/m/", Some("https://h/<x>/"), &[e]);
        assert!(html.contains("&lt;script&gt;&amp;&quot;x&quot;.txt"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("WebDAV address: <a href=\"https://h/&lt;x&gt;/\">"));
    }
}
