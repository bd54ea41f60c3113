//! The `urls` text of a link mount, parsed with the grammar of OpenList's `123PanLink`
//! (docs/123.md, web §3.2):
//!
//! ```text
//! text   := line ("\n" line)*
//! line   := SP{2k} ( folder | file ) | blank
//! folder := NAME ":"                       (the trimmed line ends with ':')
//! file   := [ SIZE ":" [ MTIME ":" [ IGNORED ":" ]* ] ] URL
//! URL    := ("http://" | "https://") ANY*
//! ```
//!
//! Indentation is counted in spaces (a tab counts as none) and must be even; a line two levels
//! deeper than its folder attaches to the nearest open folder. A file's name is the last path
//! element of its whole URL (query included), percent-decoded.
//!
//! Deliberate differences from OpenList: a file without an mtime has none (OpenList uses the
//! parse time, which would change every file's date and ETag at each restart); a negative size
//! is an error; names that WebDAV cannot address (empty, `.`, `..`, or containing `/`, `\` or
//! NUL) are errors rather than unreachable entries.

use std::fmt;

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

/// The id of the root folder; every other node's id is its index in [`LinkTree::nodes`].
pub const ROOT: u64 = 0;

/// One folder or file of the tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub parent: u64,
    /// `Some` for files: the URL exactly as written.
    pub url: Option<String>,
    /// Bytes, when the line gave them.
    pub size: Option<u64>,
    /// Unix seconds, when the line gave them.
    pub mtime: Option<i64>,
    /// Children in the order of the text (folders only).
    pub children: Vec<u64>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.url.is_none()
    }
}

/// A parsed `urls` text. Its `Debug` shows counts only: URLs may carry secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTree {
    pub nodes: Vec<Node>,
}

impl fmt::Debug for LinkTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.nodes.iter().filter(|n| !n.is_dir()).count();
        write!(
            f,
            "LinkTree {{ {} folders, {files} files }}",
            self.nodes.len() - files
        )
    }
}

impl LinkTree {
    pub fn get(&self, id: u64) -> Option<&Node> {
        usize::try_from(id).ok().and_then(|i| self.nodes.get(i))
    }

    /// Ids of every file, in text order.
    pub fn files(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.is_dir())
            .map(|(i, _)| i as u64)
    }
}

/// Why a line was refused: its number (from 1), its text and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line_no: usize,
    pub line: String,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} ({:?}): {}",
            self.line_no,
            self.line.trim_end_matches('\r'),
            self.reason
        )
    }
}

/// Parses the whole text; the first bad line ends it.
pub fn parse(text: &str) -> Result<LinkTree, ParseError> {
    let mut nodes = vec![Node {
        name: String::new(),
        parent: ROOT,
        url: None,
        size: None,
        mtime: None,
        children: Vec::new(),
    }];
    // Open folders: (level, id); the root is level -1.
    let mut stack: Vec<(i64, u64)> = vec![(-1, ROOT)];
    for (i, raw) in text.split('\n').enumerate() {
        let fail = |reason: String| ParseError {
            line_no: i + 1,
            line: raw.to_string(),
            reason,
        };
        let indent = raw.bytes().take_while(|b| *b == b' ').count();
        // Checked before the blank-line test, as OpenList does: three spaces alone are wrong.
        if indent % 2 != 0 {
            return Err(fail(format!(
                "indented by {indent} spaces, which is not a multiple of 2"
            )));
        }
        let text = raw.trim();
        if text.is_empty() {
            continue;
        }
        let level = (indent / 2) as i64;
        while stack.len() > 1 && stack.last().is_some_and(|(l, _)| level <= *l) {
            stack.pop();
        }
        let parent = stack.last().map_or(ROOT, |(_, id)| *id);
        let id = nodes.len() as u64;
        let node = if let Some(name) = text.strip_suffix(':') {
            let name = checked_name(name.to_string(), "folder").map_err(fail)?;
            stack.push((level, id));
            Node {
                name,
                parent,
                url: None,
                size: None,
                mtime: None,
                children: Vec::new(),
            }
        } else {
            file_line(text, parent).map_err(fail)?
        };
        nodes[parent as usize].children.push(id);
        nodes.push(node);
    }
    Ok(LinkTree { nodes })
}

/// `[size:][mtime:]URL`.
fn file_line(text: &str, parent: u64) -> Result<Node, String> {
    let at = text
        .find("http://")
        .or_else(|| text.find("https://"))
        .ok_or_else(|| {
            "a file line needs an http:// or https:// URL (and a folder line ends with ':')"
                .to_string()
        })?;
    let (info, url) = text.split_at(at);
    let name = checked_name(name_of(url), "file")?;
    let (size, mtime) = if info.is_empty() {
        (None, None)
    } else {
        let Some(info) = info.strip_suffix(':') else {
            return Err(format!(
                "the text before the URL ({info:?}) must end with ':' right before it \
                 (write SIZE:URL or SIZE:MTIME:URL, with no space)"
            ));
        };
        if info.is_empty() {
            return Err("nothing before the ':' (write SIZE:URL or SIZE:MTIME:URL)".to_string());
        }
        let mut parts = info.split(':');
        let size_text = parts.next().unwrap_or_default();
        let size = size_text
            .parse::<i64>()
            .map_err(|_| format!("the file size {size_text:?} must be an integer (bytes)"))?;
        let size = u64::try_from(size)
            .map_err(|_| format!("the file size {size} must not be negative"))?;
        let mtime = match parts.next() {
            None => None,
            Some(m) => Some(m.parse::<i64>().map_err(|_| {
                format!("the modification time {m:?} must be a Unix timestamp (seconds)")
            })?),
        };
        (Some(size), mtime)
    };
    Ok(Node {
        name,
        parent,
        url: Some(url.to_string()),
        size,
        mtime,
        children: Vec::new(),
    })
}

/// The last path element of the whole URL string (query included; a trailing `/` ignored),
/// percent-decoded when that gives UTF-8, in NFC.
fn name_of(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or_default();
    match percent_decode_str(last).decode_utf8() {
        Ok(decoded) => decoded.nfc().collect(),
        Err(_) => last.nfc().collect(),
    }
}

/// Refuses names a WebDAV path cannot reach.
fn checked_name(name: String, what: &str) -> Result<String, String> {
    if name.is_empty() || name.chars().all(char::is_whitespace) {
        return Err(format!("the {what} name is empty"));
    }
    if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "the {what} name {name:?} cannot be served over WebDAV (it is . or .., or contains \
             /, \\ or NUL)"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tree: &LinkTree, id: u64) -> Vec<&str> {
        tree.get(id)
            .map(|n| {
                n.children
                    .iter()
                    .map(|c| tree.nodes[*c as usize].name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn child<'a>(tree: &'a LinkTree, dir: u64, name: &str) -> &'a Node {
        let id = tree.nodes[dir as usize]
            .children
            .iter()
            .copied()
            .find(|c| tree.nodes[*c as usize].name == name)
            .unwrap_or_else(|| panic!("{name} in {dir}"));
        &tree.nodes[id as usize]
    }

    #[test]
    fn the_spec_example() {
        let text = "127451136:1694101621:https://vip.123pan.cn/1812000499/test/a.deb\n\
Movies:\n  2048:https://vip.123pan.cn/1812000499/movies/%E7%94%B5%E5%BD%B1.mp4\n  Season 1:\n    100:1600000000:https://vip.123pan.cn/1812000499/movies/s1e1.mkv\n  https://vip.123pan.cn/1812000499/movies/extra.mkv?x=1\nDocs:\nhttps://vip.123pan.cn/1812000499/readme.txt\n";
        let tree = parse(text).expect("parses");
        assert_eq!(
            names(&tree, ROOT),
            ["a.deb", "Movies", "Docs", "readme.txt"]
        );
        let a = child(&tree, ROOT, "a.deb");
        assert_eq!((a.size, a.mtime), (Some(127_451_136), Some(1_694_101_621)));
        let movies_id = tree.nodes[ROOT as usize].children[1];
        assert_eq!(
            names(&tree, movies_id),
            ["电影.mp4", "Season 1", "extra.mkv?x=1"]
        );
        let film = child(&tree, movies_id, "电影.mp4");
        assert_eq!((film.size, film.mtime), (Some(2048), None));
        let extra = child(&tree, movies_id, "extra.mkv?x=1");
        assert_eq!((extra.size, extra.mtime), (None, None));
        assert_eq!(
            extra.url.as_deref(),
            Some("https://vip.123pan.cn/1812000499/movies/extra.mkv?x=1")
        );
        let season = tree.nodes[movies_id as usize].children[1];
        let s1e1 = child(&tree, season, "s1e1.mkv");
        assert_eq!((s1e1.size, s1e1.mtime), (Some(100), Some(1_600_000_000)));
        let docs = tree.nodes[ROOT as usize].children[2];
        assert!(tree.nodes[docs as usize].is_dir() && names(&tree, docs).is_empty());
        assert_eq!(tree.files().count(), 5);
    }

    #[test]
    fn level_jumps_attach_to_the_nearest_folder() {
        let tree = parse("A:\n      https://h/deep.bin\n  B:\n  https://h/x\n").expect("ok");
        let a = tree.nodes[ROOT as usize].children[0];
        assert_eq!(names(&tree, a), ["deep.bin", "B", "x"]);
    }

    #[test]
    fn odd_details() {
        // CRLF, tabs (no indentation), blank lines with even spaces, extra info parts, a
        // trailing slash, a folder name with colons, an undecodable escape.
        let text = "a:b::\r\n\thttps://h/one\r\n  \r\n5:6:7:8:https://h/two/\nhttps://h/%ff%20x\n";
        let tree = parse(text).expect("ok");
        assert_eq!(names(&tree, ROOT), ["a:b:", "one", "two", "%ff%20x"]);
        let two = child(&tree, ROOT, "two");
        assert_eq!((two.size, two.mtime), (Some(5), Some(6)));
        // The split is at the first http://, even after an https:// one.
        let tree = parse("1:http://b/https://c.txt").expect("ok");
        assert_eq!(tree.nodes[1].url.as_deref(), Some("http://b/https://c.txt"));
        assert_eq!(tree.nodes[1].name, "c.txt");
    }

    /// The grammar's error cases (docs/123.md, web §3.2), and ours, each with its reason.
    #[test]
    fn errors_name_the_line_and_the_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("   https://a/b", 1, "not a multiple of 2"),
            ("ok:\n   ", 2, "not a multiple of 2"),
            ("123: https://a/b", 1, "must end with ':'"),
            (":https://a/b", 1, "nothing before the ':'"),
            ("name:https://a/b", 1, "must be an integer"),
            ("just text", 1, "needs an http:// or https:// URL"),
            ("https://a/?u=http://b", 1, "must end with ':'"),
            ("1:x:https://a/b", 1, "must be a Unix timestamp"),
            ("1::https://a/b", 1, "must be a Unix timestamp"),
            ("-1:https://a/b", 1, "must not be negative"),
            ("https://a/x\n:", 2, "folder name is empty"),
            ("https://a/%2e%2e", 1, "cannot be served over WebDAV"),
            ("https://a/b%2Fc", 1, "cannot be served over WebDAV"),
            ("a/b:", 1, "cannot be served over WebDAV"),
            // Ends with ':' so it is a folder line, whose name holds slashes.
            ("https://a/b.txt:", 1, "cannot be served over WebDAV"),
        ];
        for (text, line_no, reason) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line_no, *line_no, "{text:?}: {err}");
            assert!(err.reason.contains(reason), "{text:?}: {err}");
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("line {line_no} (")), "{shown}");
        }
    }

    #[test]
    fn debug_hides_urls() {
        let tree = parse("https://h/secret?token=abc").expect("ok");
        let shown = format!("{tree:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("1 files"), "{shown}");
    }
}
