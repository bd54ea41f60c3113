//! The one-pass PROPFIND writer (`dav::multistatus`) says what dav-server says for the same
//! request, for every request shape real clients send (no body, `allprop` with and without
//! `include`, `propname`, rclone's, Finder's and Windows Explorer's `prop` lists), Depth 0 and
//! 1, files and folders, read-only and writable mounts, and with dead properties, locks and
//! client junk present. dav-server's answer is the reference, asked for with
//! `X-Propfind-Writer: dav-server`; both are compared parsed. Where dav-server strays from RFC
//! 4918 the writer follows the RFC and the comparison says how (see [`compare`]). Which writer
//! answered each request is read from `pan123_propfind_answers_total` and asserted, so a
//! writer that silently stopped answering fails here.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use pan123_emulator::EmulatorConfig;
use pan123_webdav::dav::propfind_body;

/// The request bodies: (label, body). `None` is no body at all.
const BODIES: &[(&str, Option<&str>)] = &[
    ("none", None),
    ("allprop", Some(propfind_body::ALLPROP)),
    (
        "allprop+include",
        Some("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/><D:include><D:quota-used-bytes/><D:quota-available-bytes/><D:nonesuch/></D:include></D:propfind>"),
    ),
    (
        "propname",
        Some("<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><propname/></propfind>"),
    ),
    ("rclone", Some(propfind_body::RCLONE)),
    ("finder", Some(propfind_body::FINDER)),
    ("windows", Some(propfind_body::WINDOWS)),
    (
        "unknown only",
        Some("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><x:a xmlns:x=\"urn:x\"/><b xmlns=\"\"/></D:prop></D:propfind>"),
    ),
];

/// Names that exercise the href encoding, the MIME table and the hidden bit.
const NAMES: &[&str] = &[
    "plain.txt",
    "film.mkv",
    "Photo.JPG",
    "no-extension",
    "trailing.",
    ".hidden",
    "with space & amp.mp4",
    "percent%20sign.txt",
    "hash#and?query.txt",
    "plus+comma,semi;colon.txt",
    "quote'double\".txt",
    "angle<br>.html",
    "ünïcødé 日本語.txt",
    "emoji 🎬.mp4",
    "tilde~under_score-dash.txt",
];

async fn env() -> TestEnv {
    TestEnv::start(EmulatorConfig::default(), |emu| {
        for (i, n) in NAMES.iter().enumerate() {
            emu.put_file(&format!("/d/{n}"), vec![b'x'; i]);
        }
        emu.put_file("/d/empty.bin", Vec::new());
        emu.mkdir_p("/d/sub folder");
        emu.mkdir_p("/d/.dotdir");
        emu.put_file("/d/sub folder/inner.txt", "inner");
        emu.put_file("/top.txt", "top");
        let mut m = open_mount("/rw", "proxy", "");
        m.push_str(&open_mount("/ro", "proxy", "read_only = true"));
        m
    })
    .await
}

/// A parsed element: namespace, local name, text, children (prefixes and declarations are
/// spelling, not meaning).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Node {
    ns: Option<String>,
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn is(&self, name: &str) -> bool {
        self.ns.as_deref() == Some("DAV:") && self.name == name
    }
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(name))
    }
    /// The property's name only.
    fn name_only(&self) -> Node {
        Node {
            text: String::new(),
            children: Vec::new(),
            ..self.clone()
        }
    }
    /// A lock's remaining time changes between two requests: left out.
    fn without_timeouts(&self) -> Node {
        Node {
            text: if self.is("timeout") {
                String::new()
            } else {
                self.text.clone()
            },
            children: self.children.iter().map(Node::without_timeouts).collect(),
            ..self.clone()
        }
    }
}

fn node(e: &xmltree::Element) -> Node {
    let mut text = String::new();
    let mut children = Vec::new();
    for c in &e.children {
        match c {
            xmltree::XMLNode::Element(c) => children.push(node(c)),
            xmltree::XMLNode::Text(t) | xmltree::XMLNode::CData(t) => text.push_str(t),
            _ => {}
        }
    }
    Node {
        ns: e.namespace.clone(),
        name: e.name.clone(),
        text: text.trim().to_string(),
        children,
    }
}

fn parse(xml: &str) -> Node {
    let root =
        xmltree::Element::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("not XML ({e}):\n{xml}"));
    node(&root)
}

/// One response's properties by status ("HTTP/1.1 200 OK" → set of properties).
type Props = BTreeMap<String, BTreeSet<Node>>;

/// A multistatus as href → properties by status; asserts each href answers once.
fn by_href(ms: &Node) -> BTreeMap<String, Props> {
    assert!(ms.is("multistatus"), "{ms:?}");
    let mut out = BTreeMap::new();
    for r in ms.children.iter().filter(|c| c.is("response")) {
        let href = r.child("href").expect("href").text.clone();
        let mut props = Props::new();
        for ps in r.children.iter().filter(|c| c.is("propstat")) {
            let status = ps.child("status").expect("status").text.clone();
            let set = props.entry(status).or_default();
            for p in &ps.child("prop").expect("prop").children {
                set.insert(p.without_timeouts());
            }
        }
        assert!(out.insert(href.clone(), props).is_none(), "{href} twice");
    }
    out
}

/// The names a body asks for by name: `prop`'s list, or `include`'s.
fn named(body: Option<&str>) -> Option<BTreeSet<Node>> {
    let root = parse(body?);
    let list = root.child("prop").or_else(|| root.child("include"))?;
    Some(list.children.iter().map(Node::name_only).collect())
}

const OK: &str = "HTTP/1.1 200 OK";
const NOT_FOUND: &str = "HTTP/1.1 404 Not Found";

/// Compares the writer's answer with dav-server's, where they differ by design:
/// - RFC 4918 §9.1: a property asked for by name that does not exist is listed under 404;
///   dav-server leaves it out. So the writer's 404s must be exactly the names asked for
///   (`prop` or `include`) that it did not answer 200, and none otherwise.
/// - A `prop` request gets only the properties it names; dav-server adds every dead property
///   (and the checksum) to each response, sometimes twice.
/// - `propname` lists names; dav-server adds values to some (dead ones, locks).
/// - `include` (RFC 4918's spelling) is read; dav-server reads only `includes`, so the names
///   included are compared as 404 above and left out of the rest.
fn compare(what: &str, label: &str, body: Option<&str>, ours: &str, reference: &str) {
    let (mine, theirs) = (by_href(&parse(ours)), by_href(&parse(reference)));
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what} {label}: hrefs\n--- direct:\n{ours}\n--- dav-server:\n{reference}"
    );
    let asked = named(body);
    let is_prop = body.is_some_and(|b| parse(b).child("prop").is_some());
    let names_only = label == "propname";
    for (href, mut props) in mine {
        let mut reference_props = theirs[&href].clone();
        let missing = props.remove(NOT_FOUND).unwrap_or_default();
        let mut ok = props.remove(OK).unwrap_or_default();
        assert!(
            props.is_empty(),
            "{what} {label} {href}: other statuses {props:?}"
        );
        let ok_names: BTreeSet<Node> = ok.iter().map(Node::name_only).collect();
        match &asked {
            Some(asked) => {
                let expect: BTreeSet<Node> = asked.difference(&ok_names).cloned().collect();
                assert_eq!(missing, expect, "{what} {label} {href}: the 404 propstat");
            }
            None => assert!(
                missing.is_empty(),
                "{what} {label} {href}: 404s {missing:?}"
            ),
        }
        let mut reference_ok = reference_props.remove(OK).unwrap_or_default();
        assert!(
            reference_props.is_empty(),
            "{what} {label} {href}: dav-server's other statuses {reference_props:?}"
        );
        if let Some(asked) = asked.as_ref().filter(|_| is_prop) {
            reference_ok.retain(|p| asked.contains(&p.name_only()));
        } else if let Some(included) = &asked {
            ok.retain(|p| !included.contains(&p.name_only()) || reference_ok.contains(p));
        }
        if names_only {
            ok = ok.iter().map(Node::name_only).collect();
            reference_ok = reference_ok.iter().map(Node::name_only).collect();
        }
        assert_eq!(
            ok, reference_ok,
            "{what} {label} {href}: the 200 propstat\n--- direct:\n{ours}\n--- dav-server:\n{reference}"
        );
    }
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    content_location: Option<String>,
    body: String,
}

async fn propfind(
    env: &TestEnv,
    path: &str,
    depth: &str,
    ua: &str,
    body: Option<&str>,
    reference: bool,
) -> Answer {
    let mut rb = env
        .req("PROPFIND", path)
        .header("Depth", depth)
        .header("User-Agent", ua);
    if reference {
        rb = rb.header("X-Propfind-Writer", "dav-server");
    }
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/xml")
            .body(b.to_string());
    }
    let res = rb.send().await.expect("propfind");
    let header = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Answer {
        status: res.status().as_u16(),
        content_type: header("content-type"),
        content_location: header("content-location"),
        body: res.text().await.expect("body"),
    }
}

/// Which writer answered a PROPFIND (from the gateway's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Direct,
    DavServer,
}

/// PROPFIND answers so far, by writer: (direct, dav-server).
async fn writer_counts(env: &TestEnv) -> (u64, u64) {
    let text = metrics_text(env).await;
    let count = |writer: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "pan123_propfind_answers_total{{writer=\"{writer}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (count("direct"), count("dav-server"))
}

/// The writer of the one PROPFIND sent between the two counts.
fn writer_between(before: (u64, u64), after: (u64, u64)) -> Writer {
    match (after.0 - before.0, after.1 - before.1) {
        (1, 0) => Writer::Direct,
        (0, 1) => Writer::DavServer,
        other => panic!("one PROPFIND was counted as {other:?}"),
    }
}

/// Sends every body at `path` with `depth` and `ua`, once to the one-pass writer (which must
/// answer) and once to dav-server, and compares. Returns the body-less answer.
async fn same(env: &TestEnv, path: &str, depth: &str, ua: &str) -> String {
    let mut first = String::new();
    for (label, body) in BODIES {
        let what = format!("{path} Depth {depth} {ua:?}");
        let before = writer_counts(env).await;
        let fast = propfind(env, path, depth, ua, *body, false).await;
        let middle = writer_counts(env).await;
        let slow = propfind(env, path, depth, ua, *body, true).await;
        let after = writer_counts(env).await;
        assert_eq!(
            writer_between(before, middle),
            Writer::Direct,
            "{what} {label}"
        );
        assert_eq!(
            writer_between(middle, after),
            Writer::DavServer,
            "{what} {label}: reference"
        );
        assert_eq!(fast.status, 207, "{what} {label}: {}", fast.body);
        assert_eq!(slow.status, 207, "{what} {label}: {}", slow.body);
        assert_eq!(fast.content_type, slow.content_type, "{what} {label}");
        assert_eq!(
            fast.content_location, slow.content_location,
            "{what} {label}"
        );
        compare(&what, label, *body, &fast.body, &slow.body);
        if body.is_none() {
            first = fast.body;
        }
    }
    first
}

const AGENTS: &[&str] = &[
    "rclone/v1.60",
    "Microsoft-WebDAV-MiniRedir/10.0.19045",
    "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)",
    "Kodi/20.2",
    "",
];

#[tokio::test]
async fn every_shape_equals_dav_servers_answer() {
    let env = env().await;
    for ua in AGENTS {
        for path in ["/rw/d/", "/rw/d", "/rw/", "/ro/d/", "/rw/d/sub%20folder/"] {
            for depth in ["0", "1"] {
                let body = same(&env, path, depth, ua).await;
                assert!(body.contains("<D:response>"), "{path}: {body}");
            }
        }
    }
    for path in [
        "/rw",
        "/rw/d/plain.txt",
        "/ro/d/film.mkv",
        "/rw/d/emoji%20%F0%9F%8E%AC.mp4",
    ] {
        for depth in ["0", "1"] {
            same(&env, path, depth, "x").await;
        }
    }
    // Every name made it, with its checksum.
    let body = same(&env, "/rw/d/", "1", "x").await;
    assert_eq!(responses(&body), 1 + NAMES.len() + 3, "{body}");
    assert!(body.contains("MD5:"), "{body}");
}

#[tokio::test]
async fn unknown_properties_get_a_404_propstat() {
    let env = env().await;
    let body = BODIES
        .iter()
        .find(|b| b.0 == "unknown only")
        .and_then(|b| b.1);
    let res = propfind(&env, "/rw/d/plain.txt", "0", "x", body, false).await;
    assert_eq!(res.status, 207);
    let ms = by_href(&parse(&res.body));
    let props = &ms["/rw/d/plain.txt"];
    assert_eq!(
        props.keys().collect::<Vec<_>>(),
        vec![NOT_FOUND],
        "{}",
        res.body
    );
    let mut names: Vec<&str> = props[NOT_FOUND].iter().map(|n| n.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["a", "b"], "{}", res.body);
    // And the included quota comes with allprop.
    let body = BODIES
        .iter()
        .find(|b| b.0 == "allprop+include")
        .and_then(|b| b.1);
    let res = propfind(&env, "/rw/", "0", "x", body, false).await;
    let ms = by_href(&parse(&res.body));
    let ok = &ms["/rw/"][OK];
    assert!(ok.iter().any(|p| p.is("quota-used-bytes")), "{}", res.body);
    assert!(ok.iter().any(|p| p.is("getlastmodified")), "{}", res.body);
    let missing = &ms["/rw/"][NOT_FOUND];
    assert_eq!(missing.len(), 1, "{}", res.body);
}

#[tokio::test]
async fn dead_properties_locks_and_junk_are_written_directly() {
    let env = env().await;
    // A client modification time (kept locally) shows in both.
    let res = env
        .req("PUT", "/rw/d/stamped.txt")
        .header("X-OC-Mtime", "1500000000")
        .body("stamped")
        .send()
        .await
        .expect("put");
    assert!(res.status().is_success(), "{}", res.status());
    let body = same(&env, "/rw/d/", "1", "x").await;
    assert!(body.contains("2017"), "{body}");

    // Client junk kept locally (Explorer's Thumbs.db): listed for its user, whatever the
    // client.
    let res = env
        .req("PUT", "/rw/d/Thumbs.db")
        .header("User-Agent", AGENTS[1])
        .body("junk")
        .send()
        .await
        .expect("put junk");
    assert!(res.status().is_success(), "{}", res.status());
    for ua in AGENTS {
        let body = same(&env, "/rw/d/", "1", ua).await;
        assert!(body.contains("Thumbs.db"), "{ua}: {body}");
        same(&env, "/rw/d/Thumbs.db", "0", ua).await;
    }

    // Dead properties on a child and on the folder, one of them displayname.
    for (path, prop) in [
        ("/rw/d/plain.txt", "<Z:color>red</Z:color>"),
        ("/rw/d/plain.txt", "<D:displayname>Plain</D:displayname>"),
        (
            "/rw/d/",
            "<Z:nested><Z:a x=\"1\">one</Z:a><b xmlns=\"urn:b\">two</b></Z:nested>",
        ),
    ] {
        let proppatch = format!("<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:x\"><D:set><D:prop>{prop}</D:prop></D:set></D:propertyupdate>");
        let res = env
            .req("PROPPATCH", path)
            .body(proppatch)
            .send()
            .await
            .expect("proppatch");
        assert_eq!(res.status().as_u16(), 207);
    }
    let asks_color = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><Z:color xmlns:Z=\"urn:x\"/><D:displayname/></D:prop></D:propfind>";
    for ua in AGENTS {
        let body = same(&env, "/rw/d/", "1", ua).await;
        assert!(body.contains("red"), "{body}");
        assert!(body.contains("Plain"), "{body}");
        same(&env, "/rw/d/plain.txt", "0", ua).await;
        let res = propfind(&env, "/rw/d/plain.txt", "0", ua, Some(asks_color), false).await;
        let ms = by_href(&parse(&res.body));
        let ok: Vec<&str> = ms["/rw/d/plain.txt"][OK]
            .iter()
            .map(|n| n.text.as_str())
            .collect();
        assert_eq!(ok, vec!["Plain", "red"], "{}", res.body);
    }

    // A lock on a child, then one on the folder (deep; both shared, so they can coexist):
    // lockdiscovery lists them, in both.
    let lock = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>";
    for path in ["/rw/d/sub%20folder/inner.txt", "/rw/d/"] {
        let res = env
            .req("LOCK", path)
            .header("Timeout", "Second-600")
            .body(lock)
            .send()
            .await
            .expect("lock");
        assert_eq!(res.status().as_u16(), 200);
        for ua in AGENTS {
            let body = same(&env, "/rw/d/sub%20folder/", "1", ua).await;
            assert!(body.contains("activelock"), "{body}");
            same(&env, "/rw/d/", "1", ua).await;
        }
    }
}
