//! The request sequences of Windows Explorer (mini-redirector) and macOS Finder, replayed with
//! the `curl` binary under their User-Agents: connect (OPTIONS, PROPFIND Depth 0 and 1 of `/`
//! and of a mount), open a file, copy a file in, rename, delete, and the junk each one probes.
//! The answers are checked against what those clients need (README, "Clients").

use std::time::Duration;

use crate::common::tools::{require, run};
use crate::common::*;
use pan123_emulator::EmulatorConfig;

const MINIREDIR: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";
const FINDER: &str = "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0";
const CREATE: &str = "/upload/v2/file/create";

const PROPFIND_ALL: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;
const LOCK_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>user</D:href></D:owner></D:lockinfo>"#;

/// One answer as curl saw it.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client: curl with a User-Agent, with or without credentials.
struct Client<'a> {
    env: &'a TestEnv,
    ua: &'static str,
}

impl Client<'_> {
    /// `curl -i` of one request; `auth` adds Basic credentials; `extra` are more curl arguments.
    async fn send(&self, method: &str, path: &str, auth: bool, extra: &[&str]) -> Answer {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "-i".into(),
            "--http1.1".into(),
            "-X".into(),
            method.into(),
            "-A".into(),
            self.ua.into(),
            "-H".into(),
            "Expect:".into(),
        ];
        if auth {
            args.push("-u".into());
            args.push(format!("{USER}:{PASSWORD}"));
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(self.env.url(path));
        let out = run("curl", &args, &[]).await;
        assert!(
            out.status.success(),
            "curl {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&out.stdout)
    }

    async fn propfind(&self, path: &str, depth: &str) -> Answer {
        self.send(
            "PROPFIND",
            path,
            true,
            &[
                "-H",
                &format!("Depth: {depth}"),
                "-H",
                "Content-Type: text/xml",
                "--data-binary",
                PROPFIND_ALL,
            ],
        )
        .await
    }
}

/// Splits `curl -i` output into the final status, headers and body (1xx blocks skipped).
fn parse(raw: &[u8]) -> Answer {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let body = &rest[end + 4..];
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Answer {
            status,
            headers,
            body: body.to_vec(),
        };
    }
}

/// Every `<D:creationdate>` is whole seconds (`…T10:00:00Z`, no fraction).
fn assert_whole_second_dates(xml: &str) {
    let mut seen = 0;
    for part in xml.split("<D:creationdate>").skip(1) {
        let value = part.split('<').next().unwrap_or_default();
        assert!(
            !value.contains('.') && value.ends_with('Z') && value.len() == 20,
            "creationdate {value:?} is not whole seconds"
        );
        seen += 1;
    }
    assert!(seen > 0, "no creationdate in {xml}");
}

async fn env() -> TestEnv {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    TestEnv::start(cfg, |emu| {
        emu.mkdir_p("/lib/docs");
        emu.put_file("/lib/docs/report.txt", bytes_of(5000, 3));
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        let root = format!("root_id = {id}");
        format!(
            "{}{}",
            open_mount("/m", "redirect", &root),
            open_mount("/ro", "redirect", &format!("{root}\nread_only = true"))
        )
    })
    .await
}

/// Connect: OPTIONS without credentials, the challenge, then PROPFIND of `/` and of a mount.
async fn connect(c: &Client<'_>, writable_dav: &str) {
    let opt = c.send("OPTIONS", "/", false, &[]).await;
    assert_eq!(opt.status, 200, "OPTIONS / needs no auth");
    assert!(opt.header("DAV").starts_with('1'), "{:?}", opt.headers);
    assert_eq!(opt.header("MS-Author-Via"), "DAV");
    let opt = c.send("OPTIONS", "/m/", false, &[]).await;
    assert_eq!(opt.status, 200);
    assert_eq!(opt.header("DAV"), writable_dav, "writable mount");
    assert!(opt.header("Allow").contains("LOCK"), "{:?}", opt.headers);
    let opt = c.send("OPTIONS", "/ro/", false, &[]).await;
    assert_eq!(opt.header("DAV"), "1", "read-only mount");
    assert!(!opt.header("Allow").contains("PUT"), "{:?}", opt.headers);

    let first = c.send("PROPFIND", "/", false, &["-H", "Depth: 0"]).await;
    assert_eq!(first.status, 401, "the first PROPFIND is challenged");
    assert!(
        first.header("WWW-Authenticate").starts_with("Basic realm="),
        "{:?}",
        first.headers
    );
    for (path, depth) in [("/", "0"), ("/", "1"), ("/m/", "0"), ("/m/", "1")] {
        let res = c.propfind(path, depth).await;
        assert_eq!(res.status, 207, "PROPFIND {path} Depth {depth}");
        assert_whole_second_dates(&res.text());
    }
    let listing = c.propfind("/m/docs/", "1").await;
    assert!(listing.text().contains("report.txt"), "{}", listing.text());
    assert_whole_second_dates(&listing.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_explorer_sequence() {
    if !require("curl", "curl") {
        return;
    }
    let env = env().await;
    let c = Client {
        env: &env,
        ua: MINIREDIR,
    };
    connect(&c, "1, 2").await;

    // Probes of desktop.ini and Thumbs.db: 404 without a call to 123, and not cached.
    env.emu.reset_stats();
    for name in ["desktop.ini", "Thumbs.db"] {
        let res = c.propfind(&format!("/m/docs/{name}"), "0").await;
        assert_eq!(res.status, 404, "{name}");
        assert!(
            res.header("Cache-Control").contains("no-cache"),
            "{name}: a 404 for Windows must not be cached: {:?}",
            res.headers
        );
    }
    assert!(env.emu.stats().calls.is_empty(), "{:?}", env.emu.stats());

    // Open a file on a redirect mount: the bytes themselves, never a 302.
    let open = c.send("GET", "/m/docs/report.txt", true, &[]).await;
    assert_eq!(open.status, 200, "{:?}", open.headers);
    assert_eq!(open.body, bytes_of(5000, 3));

    // Copy a file in: empty PUT, LOCK, PUT of the data, PROPPATCH of Win32 times, UNLOCK.
    let data = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(data.path(), bytes_of(100_000, 7)).expect("write");
    let data_path = data.path().display().to_string();
    let put = c
        .send("PUT", "/m/docs/new.bin", true, &["--data-binary", ""])
        .await;
    assert!(matches!(put.status, 201 | 204), "empty PUT: {}", put.status);
    let lock = c
        .send(
            "LOCK",
            "/m/docs/new.bin",
            true,
            &[
                "-H",
                "Timeout: Second-3600",
                "-H",
                "Content-Type: text/xml",
                "--data-binary",
                LOCK_BODY,
            ],
        )
        .await;
    assert_eq!(lock.status, 200, "LOCK: {}", lock.text());
    let token = lock.header("Lock-Token");
    assert!(token.starts_with('<'), "{:?}", lock.headers);
    let if_header = format!("If: ({token})");
    let put = c
        .send(
            "PUT",
            "/m/docs/new.bin",
            true,
            &["-H", &if_header, "--data-binary", &format!("@{data_path}")],
        )
        .await;
    assert!(matches!(put.status, 201 | 204), "PUT: {}", put.status);
    let patch = r#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32CreationTime>Mon, 23 Nov 2026 10:00:00 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Mon, 23 Nov 2026 10:00:00 GMT</Z:Win32LastAccessTime><Z:Win32LastModifiedTime>Mon, 23 Nov 2026 10:00:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#;
    let res = c
        .send(
            "PROPPATCH",
            "/m/docs/new.bin",
            true,
            &[
                "-H",
                &if_header,
                "-H",
                "Content-Type: text/xml",
                "--data-binary",
                patch,
            ],
        )
        .await;
    assert_eq!(res.status, 207, "PROPPATCH: {}", res.text());
    assert!(
        res.text().contains("200 OK") && !res.text().contains("403"),
        "{}",
        res.text()
    );
    let res = c
        .send(
            "UNLOCK",
            "/m/docs/new.bin",
            true,
            &["-H", &format!("Lock-Token: {token}")],
        )
        .await;
    assert_eq!(res.status, 204, "UNLOCK");
    let emu = &env.emu;
    eventually("new.bin reaches 123", || {
        emu.read("/lib/docs/new.bin") == Some(bytes_of(100_000, 7))
    })
    .await;

    // Rename, then delete.
    let dest = format!("Destination: {}", env.url("/m/docs/renamed.bin"));
    let res = c
        .send(
            "MOVE",
            "/m/docs/new.bin",
            true,
            &["-H", &dest, "-H", "Overwrite: F"],
        )
        .await;
    assert_eq!(res.status, 201, "MOVE: {}", res.text());
    // The upload's job may still be finishing: then the move is applied as it lands.
    eventually("the rename reaches 123", || {
        env.emu.lookup("/lib/docs/renamed.bin").is_some()
            && env.emu.lookup("/lib/docs/new.bin").is_none()
    })
    .await;
    let res = c.send("DELETE", "/m/docs/renamed.bin", true, &[]).await;
    assert_eq!(res.status, 204, "DELETE");
    eventually("the delete reaches 123", || {
        env.emu.lookup("/lib/docs/renamed.bin").is_none()
    })
    .await;
    let gone = c.propfind("/m/docs/renamed.bin", "0").await;
    assert_eq!(gone.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_sequence() {
    if !require("curl", "curl") {
        return;
    }
    let env = env().await;
    let c = Client {
        env: &env,
        ua: FINDER,
    };
    connect(&c, "1, 2").await;

    // Finder's junk: ._* and .DS_Store are stored here, listed back, never sent to 123.
    env.emu.reset_stats();
    let ds = c.propfind("/m/docs/.DS_Store", "0").await;
    assert_eq!(ds.status, 404);
    for name in [".DS_Store", "._report.txt"] {
        let put = c
            .send(
                "PUT",
                &format!("/m/docs/{name}"),
                true,
                &["--data-binary", "apple double"],
            )
            .await;
        assert!(matches!(put.status, 201 | 204), "{name}: {}", put.status);
    }
    let listing = c.propfind("/m/docs/", "1").await;
    assert!(
        listing.text().contains("._report.txt"),
        "{}",
        listing.text()
    );
    assert!(listing.text().contains(".DS_Store"), "{}", listing.text());
    let back = c.send("GET", "/m/docs/._report.txt", true, &[]).await;
    assert_eq!(back.body, b"apple double");
    assert_eq!(env.emu.stats().calls(CREATE), 0, "junk reached 123");
    assert!(env.emu.lookup("/lib/docs/.DS_Store").is_none());

    // Copy a file in: a chunked PUT with X-Expected-Entity-Length, inside a LOCK.
    let lock = c
        .send(
            "LOCK",
            "/m/docs/film.mov",
            true,
            &[
                "-H",
                "Timeout: Second-600",
                "-H",
                "Content-Type: text/xml",
                "--data-binary",
                LOCK_BODY,
            ],
        )
        .await;
    // 201: the lock created an empty resource (RFC 4918 §9.10.4).
    assert_eq!(lock.status, 201, "LOCK: {}", lock.text());
    let token = lock.header("Lock-Token");
    let data = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(data.path(), bytes_of(150_000, 5)).expect("write");
    let put = c
        .send(
            "PUT",
            "/m/docs/film.mov",
            true,
            &[
                "-H",
                &format!("If: ({token})"),
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "X-Expected-Entity-Length: 150000",
                "-T",
                &data.path().display().to_string(),
            ],
        )
        .await;
    assert!(
        matches!(put.status, 201 | 204),
        "chunked PUT: {}",
        put.status
    );
    let res = c
        .send(
            "UNLOCK",
            "/m/docs/film.mov",
            true,
            &["-H", &format!("Lock-Token: {token}")],
        )
        .await;
    assert_eq!(res.status, 204);
    let emu = &env.emu;
    eventually("film.mov reaches 123", || {
        emu.read("/lib/docs/film.mov") == Some(bytes_of(150_000, 5))
    })
    .await;

    // Rename (with its AppleDouble companion), then delete both.
    let dest = format!("Destination: {}", env.url("/m/docs/clip.mov"));
    let res = c
        .send("MOVE", "/m/docs/film.mov", true, &["-H", &dest])
        .await;
    assert_eq!(res.status, 201, "MOVE: {}", res.text());
    // The upload's job may still be settling: then the MOVE retargets it and the queue moves it.
    eventually("clip.mov on 123", || {
        emu.lookup("/lib/docs/clip.mov").is_some()
    })
    .await;
    let dest = format!("Destination: {}", env.url("/m/docs/._clip.mov"));
    let res = c
        .send("MOVE", "/m/docs/._report.txt", true, &["-H", &dest])
        .await;
    assert_eq!(res.status, 201, "MOVE junk: {}", res.text());
    for name in ["clip.mov", "._clip.mov"] {
        let res = c
            .send("DELETE", &format!("/m/docs/{name}"), true, &[])
            .await;
        assert_eq!(res.status, 204, "DELETE {name}");
    }
    assert!(env.emu.lookup("/lib/docs/clip.mov").is_none());
    let listing = c.propfind("/m/docs/", "1").await;
    assert!(!listing.text().contains("clip.mov"), "{}", listing.text());

    // Read-only mounts are class 1 and refuse writes.
    let res = c
        .send("PUT", "/ro/docs/x.txt", true, &["--data-binary", "x"])
        .await;
    assert_eq!(res.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_row_sends_junk_to_123() {
    if !require("curl", "curl") {
        return;
    }
    let mut cfg = EmulatorConfig::default();
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let env = TestEnv::start(cfg, |emu| {
        emu.mkdir_p("/lib");
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        format!(
            "{}\n[[clients]]\nuser_agent = \"WebDAVFS\"\njunk_local = false\n",
            open_mount(
                "/m",
                "redirect",
                &format!("root_id = {id}\nupload = \"sync\"")
            )
        )
    })
    .await;
    let finder = Client {
        env: &env,
        ua: FINDER,
    };
    let put = finder
        .send("PUT", "/m/.DS_Store", true, &["--data-binary", "finder"])
        .await;
    assert!(matches!(put.status, 201 | 204), "{}", put.status);
    assert_eq!(env.emu.read("/lib/.DS_Store"), Some(b"finder".to_vec()));
    // Other clients keep their junk local.
    let other = Client {
        env: &env,
        ua: "curl/7.88",
    };
    let put = other
        .send("PUT", "/m/._x", true, &["--data-binary", "other"])
        .await;
    assert!(matches!(put.status, 201 | 204), "{}", put.status);
    assert!(env.emu.lookup("/lib/._x").is_none());
}
