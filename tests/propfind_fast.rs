//! The directly written Depth 1 listing (`dav::multistatus`, used for a PROPFIND without a
//! body) says exactly what dav-server says for the same request (an explicit `<allprop/>`
//! body, which always goes to dav-server): same responses, hrefs, properties, values and
//! statuses, compared parsed, for the client profiles and mount kinds that change the answer,
//! and for the cases where the fast path must decline (dead properties, locks). Which writer
//! answered each request is read from `pan123_propfind_answers_total` and asserted, so a fast
//! path that silently stopped answering fails here.

mod common;

use common::*;
use pan123_emulator::EmulatorConfig;

const ALLPROP: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";

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
#[derive(Debug, PartialEq)]
struct Node {
    ns: Option<String>,
    name: String,
    text: String,
    children: Vec<Node>,
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

struct Answer {
    status: u16,
    content_type: Option<String>,
    content_location: Option<String>,
    body: String,
}

async fn propfind(env: &TestEnv, path: &str, ua: &str, body: Option<&str>) -> Answer {
    let mut rb = env
        .req("PROPFIND", path)
        .header("Depth", "1")
        .header("User-Agent", ua);
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

/// The tests of this file one at a time: the writer counts are process-wide.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// The body-less PROPFIND and the `<allprop/>` one agree; `fast_writer` answered the first
/// (dav-server always answers the second). Returns the body-less body.
async fn same(env: &TestEnv, path: &str, ua: &str, fast_writer: Writer) -> String {
    let before = writer_counts(env).await;
    let fast = propfind(env, path, ua, None).await;
    let middle = writer_counts(env).await;
    let slow = propfind(env, path, ua, Some(ALLPROP)).await;
    let after = writer_counts(env).await;
    assert_eq!(
        writer_between(before, middle),
        fast_writer,
        "{path} {ua}: without a body"
    );
    assert_eq!(
        writer_between(middle, after),
        Writer::DavServer,
        "{path} {ua}: <allprop/>"
    );
    assert_eq!(fast.status, 207, "{path} {ua}: {}", fast.body);
    assert_eq!(slow.status, 207, "{path} {ua}: {}", slow.body);
    assert_eq!(fast.content_type, slow.content_type, "{path} {ua}");
    assert_eq!(fast.content_location, slow.content_location, "{path} {ua}");
    let (a, b) = (parse(&fast.body), parse(&slow.body));
    if a != b {
        panic!(
            "{path} with {ua:?}: the listings differ\n--- without a body:\n{}\n--- with <allprop/>:\n{}",
            fast.body, slow.body
        );
    }
    fast.body
}

const AGENTS: &[&str] = &[
    "rclone/v1.60",
    "Microsoft-WebDAV-MiniRedir/10.0.19045",
    "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)",
    "Kodi/20.2",
    "",
];

#[tokio::test]
async fn the_direct_listing_equals_dav_servers() {
    let _turn = TURN.lock().await;
    let env = env().await;
    for ua in AGENTS {
        for path in [
            "/rw/d/",
            "/rw/d",
            "/rw/",
            "/rw",
            "/ro/d/",
            "/ro/",
            "/rw/d/sub%20folder/",
        ] {
            let body = same(&env, path, ua, Writer::Direct).await;
            assert!(body.contains("<D:response>"), "{path}: {body}");
        }
    }
    // Every name made it, with its checksum.
    let body = same(&env, "/rw/d/", "x", Writer::Direct).await;
    assert_eq!(responses(&body), 1 + NAMES.len() + 3, "{body}");
    assert!(body.contains("MD5:"), "{body}");
}

#[tokio::test]
async fn client_times_and_declined_cases_agree_too() {
    let _turn = TURN.lock().await;
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
    let body = same(&env, "/rw/d/", "x", Writer::Direct).await;
    assert!(body.contains("2017"), "{body}");

    // Client junk kept locally (Explorer's Thumbs.db): listed for its user, whatever the
    // client; the fast path declines for the clients whose junk is local (the name is junk to
    // them) and answers for the others.
    let res = env
        .req("PUT", "/rw/d/Thumbs.db")
        .header("User-Agent", AGENTS[1])
        .body("junk")
        .send()
        .await
        .expect("put junk");
    assert!(res.status().is_success(), "{}", res.status());
    for ua in AGENTS {
        let body = same(&env, "/rw/d/", ua, Writer::DavServer).await;
        assert!(body.contains("Thumbs.db"), "{ua}: {body}");
    }

    // A dead property on a child: the fast path declines, dav-server answers both.
    let proppatch = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:x\"><D:set><D:prop><Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>";
    let res = env
        .req("PROPPATCH", "/rw/d/plain.txt")
        .body(proppatch)
        .send()
        .await
        .expect("proppatch");
    assert_eq!(res.status().as_u16(), 207);
    let body = same(&env, "/rw/d/", "x", Writer::DavServer).await;
    assert!(body.contains("red"), "{body}");

    // A lock on a child: its lockdiscovery is not empty, in both.
    let lock = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>";
    let res = env
        .req("LOCK", "/rw/d/sub%20folder/inner.txt")
        .header("Timeout", "Second-600")
        .body(lock)
        .send()
        .await
        .expect("lock");
    assert_eq!(res.status().as_u16(), 200);
    for ua in AGENTS {
        let body = same(&env, "/rw/d/sub%20folder/", ua, Writer::DavServer).await;
        assert!(body.contains("activelock"), "{body}");
        same(&env, "/rw/d/", ua, Writer::DavServer).await;
    }
}
