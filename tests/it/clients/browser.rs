//! The browser page in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, with `fantoccini`). Opens the root, navigates by clicking, sorts, filters, plays a
//! video and sees it advance after a seek (on a proxy and a redirect mount), uploads by the
//! file input and checks the bytes over WebDAV, renames and deletes, makes a share link and
//! opens it in a fresh session without credentials, switches the language. Screenshots of the
//! main views go to `target/client-screenshots/`.
//!
//! Plus plain HTTP checks of the page: versioned assets with ETags and a year's cache, a
//! 1,000-entry folder under 200 KB, no more 123 calls than WebDAV for a browse, a play and an
//! upload, share links refused after expiry and to users who may not read, and anonymous
//! mounts browsed without a prompt.

use std::time::Duration;

use crate::common::tools::{ok, require, run};
use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use pan123_emulator::EmulatorConfig;
use serde_json::{json, Value};

/// chromedriver on an ephemeral loopback port; killed on drop.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(res) = http.get(format!("{}/status", driver.url)).send().await {
                if res.status().is_success() {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not answer");
    }

    /// A fresh browser (its own profile: no cookies, no credentials).
    async fn session(&self) -> Client {
        let binary = which("chromium").unwrap_or_else(|| "/usr/bin/chromium".into());
        let caps = json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1100,800", "--hide-scrollbars", "--autoplay-policy=no-user-gesture-required",
                    "--lang=en-US"
                ],
                "prefs": { "intl.accept_languages": "en-US,en" }
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// Whether chromedriver and chromium are here (a visible skip, a failure under CI=true).
fn browser_available() -> bool {
    require("chromedriver", "chromium-driver") && require("chromium", "chromium")
}

/// Polls a script until `check` accepts its value (bounded); returns that value.
async fn until(c: &Client, what: &str, script: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        match c.execute(script, vec![]).await {
            Ok(v) if check(&v) => return v,
            Ok(v) => last = v,
            Err(e) => last = Value::String(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}; last value {last}");
}

/// The names of the listing's rows, in their shown order, once the script has rendered them.
async fn names(c: &Client) -> Vec<String> {
    let v = until(
        c,
        "the rendered listing",
        "var t = document.getElementById('list'); if (!t || !t.dataset.rendered) return null; \
         return Array.from(t.tBodies[0].querySelectorAll('tr[data-name]')).map(r => r.dataset.name);",
        |v| v.is_array(),
    )
    .await;
    serde_json::from_value(v).expect("names")
}

/// Clicks the row link of `name` and waits for the address to end with `path`.
async fn click_into(c: &Client, name: &str, path: &str) {
    c.find(Locator::XPath(&format!(
        "//table[@id='list']//tr[@data-name='{name}']/td[1]/a"
    )))
    .await
    .expect("row link")
    .click()
    .await
    .expect("click");
    let want = path.to_string();
    until(c, "the navigation", "return location.pathname", move |v| {
        v.as_str() == Some(want.as_str())
    })
    .await;
}

/// A button of a row (`share`, `rename`, `delete`).
async fn row_button(c: &Client, name: &str, act: &str) {
    c.find(Locator::Css(&format!(
        "#list tr[data-name=\"{name}\"] button[data-act=\"{act}\"]"
    )))
    .await
    .unwrap_or_else(|e| panic!("{act} button of {name}: {e}"))
    .click()
    .await
    .expect("click");
}

/// Where screenshots go: `target/client-screenshots/`.
fn shots_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("client-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
    std::fs::write(shots_dir().join(name), png).expect("write screenshot");
}

/// A 4-second 160x120 VP8 WebM clip (Chromium plays WebM everywhere), a key frame a second.
async fn make_webm(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("clip.webm").display().to_string();
    let args: Vec<String> = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=4:size=160x120:rate=10",
        "-c:v",
        "libvpx",
        "-b:v",
        "200k",
        "-g",
        "10",
        "-f",
        "webm",
        "-y",
        &path,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    ok(&run("ffmpeg", &args, &[]).await, "ffmpeg (generate webm)");
    std::fs::read(&path).expect("generated clip")
}

const NOTES: &str = "Notes from 123 — 你好\n";

/// The browser's tour of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_browses_plays_uploads_and_shares() {
    if !browser_available() || !require("ffmpeg", "ffmpeg") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let clip = make_webm(tmp.path()).await;
    let env = TestEnv::start(EmulatorConfig::default(), move |emu| {
        emu.mkdir_p("/lib/Season 1");
        emu.put_file("/lib/Season 1/ep1.txt", b"episode one".to_vec());
        emu.put_file("/lib/notes.txt", NOTES.as_bytes().to_vec());
        emu.put_file("/lib/big.bin", bytes_of(50_000, 1));
        emu.put_file("/lib/small.bin", bytes_of(10, 2));
        emu.put_file("/lib/clip.webm", clip);
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            open_mount("/m", "proxy", &format!("root_id = {id}")),
            open_mount("/r", "redirect", &format!("root_id = {id}"))
        )
    })
    .await;
    let driver = Driver::start().await;
    let c = driver.session().await;
    // Credentials once in the URL (Chromium keeps them for the origin), then plain URLs, as a
    // person who answered the password prompt has.
    let password = PASSWORD.replace(' ', "%20");
    let authed = env
        .url("/")
        .replacen("http://", &format!("http://{USER}:{password}@"), 1);
    c.goto(&authed).await.expect("login");
    c.goto(&env.url("/")).await.expect("root");

    // The root lists the mounts; a click opens one.
    assert_eq!(names(&c).await, ["m", "r"]);
    click_into(&c, "m", "/m/").await;
    assert_eq!(
        names(&c).await,
        ["Season 1", "big.bin", "clip.webm", "notes.txt", "small.bin"],
        "folders first, then by name"
    );
    screenshot(&c, "page-listing-en.png").await;

    // Sort by size (folders stay first), then the other way.
    let size = Locator::Css("#list th[data-k='s'] button");
    c.find(size)
        .await
        .expect("size header")
        .click()
        .await
        .expect("sort");
    assert_eq!(
        names(&c).await,
        ["Season 1", "small.bin", "notes.txt", "clip.webm", "big.bin"]
    );
    c.find(size)
        .await
        .expect("size header")
        .click()
        .await
        .expect("sort");
    assert_eq!(
        names(&c).await,
        ["Season 1", "big.bin", "clip.webm", "notes.txt", "small.bin"]
    );
    let sorted = c
        .find(Locator::Css("#list th[data-k='s']"))
        .await
        .expect("th")
        .attr("aria-sort")
        .await
        .expect("attr");
    assert_eq!(sorted.as_deref(), Some("descending"));
    c.find(Locator::Css("#list th[data-k='n'] button"))
        .await
        .expect("name header")
        .click()
        .await
        .expect("sort by name");

    // Filter by name.
    let filter = c.find(Locator::Id("filter")).await.expect("filter box");
    filter.send_keys("NOTES").await.expect("type");
    assert_eq!(names(&c).await, ["notes.txt"]);
    filter.clear().await.expect("clear");
    c.execute(
        "document.getElementById('filter').dispatchEvent(new Event('input'))",
        vec![],
    )
    .await
    .expect("input event");
    assert_eq!(names(&c).await.len(), 5);

    // Into a folder and back by the breadcrumbs.
    click_into(&c, "Season 1", "/m/Season%201/").await;
    assert_eq!(names(&c).await, ["ep1.txt"]);
    c.find(Locator::Css("#crumbs a[href='/m/']"))
        .await
        .expect("crumb")
        .click()
        .await
        .expect("click crumb");
    until(&c, "back in /m/", "return location.pathname", |v| {
        v.as_str() == Some("/m/")
    })
    .await;
    assert_eq!(names(&c).await.len(), 5);

    // A text file is previewed in the page.
    click_row_link(&c, "notes.txt").await;
    until(
        &c,
        "the text preview",
        "var p = document.getElementById('text'); return p && p.textContent;",
        |v| v.as_str().is_some_and(|s| s.contains("你好")),
    )
    .await;
    close_dialog(&c).await;

    // The video plays and seeks, through the proxy mount and from 123's link (redirect).
    play_and_seek(&c, "proxy").await;
    screenshot(&c, "page-video.png").await;
    close_dialog(&c).await;
    c.goto(&env.url("/r/")).await.expect("redirect mount");
    assert_eq!(names(&c).await.len(), 5);
    play_and_seek(&c, "redirect").await;
    close_dialog(&c).await;
    c.goto(&env.url("/m/")).await.expect("back to /m/");

    // Upload by the file input, then the bytes through WebDAV.
    let upload = bytes_of(100_000, 9);
    let local = tmp.path().join("upload.bin");
    std::fs::write(&local, &upload).expect("local file");
    c.find(Locator::Id("pick"))
        .await
        .expect("file input")
        .send_keys(&local.display().to_string())
        .await
        .expect("choose the file");
    until(
        &c,
        "the upload to be done",
        "var li = document.querySelector('#queue li[data-name=\"upload.bin\"]'); return li && li.dataset.state;",
        |v| v.as_str() == Some("done"),
    )
    .await;
    until(
        &c,
        "upload.bin listed",
        "return !!document.querySelector('#list tr[data-name=\"upload.bin\"]')",
        |v| v == &Value::Bool(true),
    )
    .await;
    let got = env.req("GET", "/m/upload.bin").send().await.expect("get");
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.expect("body").to_vec(), upload);

    // Rename it.
    row_button(&c, "upload.bin", "rename").await;
    let input = c.find(Locator::Id("ask-input")).await.expect("name field");
    input.clear().await.expect("clear");
    input.send_keys("renamed.bin").await.expect("type");
    c.find(Locator::Id("ask-ok"))
        .await
        .expect("ok")
        .click()
        .await
        .expect("click ok");
    until(
        &c,
        "renamed.bin listed",
        "return !!document.querySelector('#list tr[data-name=\"renamed.bin\"]') && !document.querySelector('#list tr[data-name=\"upload.bin\"]')",
        |v| v == &Value::Bool(true),
    )
    .await;
    let got = env.req("GET", "/m/renamed.bin").send().await.expect("get");
    assert_eq!(got.bytes().await.expect("body").to_vec(), upload);

    // A share link, opened in a fresh browser without credentials.
    row_button(&c, "notes.txt", "share").await;
    c.find(Locator::Id("ask-ok"))
        .await
        .expect("make link")
        .click()
        .await
        .expect("click");
    let link = until(
        &c,
        "the share link",
        "var i = document.getElementById('share-url'); return i && i.value;",
        |v| {
            v.as_str()
                .is_some_and(|s| s.contains("/-/d/m/notes.txt?sign="))
        },
    )
    .await;
    let link = link.as_str().expect("link").to_string();
    close_dialog(&c).await;
    let stranger = driver.session().await;
    stranger.goto(&link).await.expect("open the link");
    let text = stranger
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    assert!(text.contains("你好"), "{text}");
    stranger.close().await.expect("close");
    let res = reqwest::get(&link).await.expect("share get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), NOTES);

    // Delete the renamed file, after the confirmation.
    row_button(&c, "renamed.bin", "delete").await;
    c.find(Locator::Id("ask-ok"))
        .await
        .expect("confirm")
        .click()
        .await
        .expect("click");
    until(
        &c,
        "renamed.bin gone",
        "return !document.querySelector('#list tr[data-name=\"renamed.bin\"]')",
        |v| v == &Value::Bool(true),
    )
    .await;
    let gone = env.req("GET", "/m/renamed.bin").send().await.expect("get");
    assert_eq!(gone.status().as_u16(), 404);

    // The connect page, with this server's address in the rclone line.
    c.find(Locator::Css("a.connect"))
        .await
        .expect("connect link")
        .click()
        .await
        .expect("click");
    let rclone = c
        .wait()
        .for_element(Locator::Id("rclone"))
        .await
        .expect("rclone line")
        .text()
        .await
        .expect("text");
    assert_eq!(
        rclone,
        format!(
            "rclone config create m webdav url={} vendor=owncloud user={USER}",
            env.url("/m/")
        )
    );
    screenshot(&c, "page-connect.png").await;

    // Chinese, by the switcher; the choice sticks (a cookie).
    c.goto(&env.url("/m/")).await.expect("back");
    c.find(Locator::Css(".lang a[hreflang='zh']"))
        .await
        .expect("switcher")
        .click()
        .await
        .expect("click");
    until(&c, "Chinese", "return document.documentElement.lang", |v| {
        v.as_str() == Some("zh")
    })
    .await;
    assert_eq!(names(&c).await.len(), 5);
    let head = c
        .find(Locator::Css("#list thead"))
        .await
        .expect("thead")
        .text()
        .await
        .expect("text");
    assert!(head.contains("名称") && head.contains("大小"), "{head}");
    screenshot(&c, "page-listing-zh.png").await;
    c.goto(&env.url("/m/Season%201/"))
        .await
        .expect("another folder");
    let lang = c
        .execute("return document.documentElement.lang", vec![])
        .await
        .expect("lang");
    assert_eq!(lang, json!("zh"));
    c.close().await.expect("close");
}

async fn click_row_link(c: &Client, name: &str) {
    c.find(Locator::XPath(&format!(
        "//table[@id='list']//tr[@data-name='{name}']/td[1]/a"
    )))
    .await
    .expect("row link")
    .click()
    .await
    .expect("click");
}

async fn close_dialog(c: &Client) {
    c.find(Locator::Id("close"))
        .await
        .expect("close button")
        .click()
        .await
        .expect("close");
    until(
        c,
        "the dialog closed",
        "return document.getElementById('viewer').open",
        |v| v == &Value::Bool(false),
    )
    .await;
}

/// Opens clip.webm in the page's player, seeks to 2 s and waits for `currentTime` to pass it.
async fn play_and_seek(c: &Client, mount: &str) {
    click_row_link(c, "clip.webm").await;
    until(
        c,
        &format!("the video's metadata ({mount})"),
        "var p = document.getElementById('player'); if (p && p.error) return 'error ' + p.error.code; return p && p.readyState;",
        |v| v.as_u64().is_some_and(|n| n >= 1),
    )
    .await;
    c.execute(
        "var p = document.getElementById('player'); p.muted = true; p.currentTime = 2; p.play();",
        vec![],
    )
    .await
    .expect("seek and play");
    until(
        c,
        &format!("playback past the seek ({mount})"),
        "var p = document.getElementById('player'); if (p.error) return 'error ' + p.error.code; return p.currentTime;",
        |v| v.as_f64().is_some_and(|t| t > 2.2),
    )
    .await;
}

/// An environment for the plain HTTP checks: a proxy mount with a small tree, an anonymous
/// mount, and `bob`, who sees only `/pub`.
async fn http_env(server: &str) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .server(server)
        .users("[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nmounts = [\"pub\"]\n")
        .mounts(|emu| {
            emu.put_file("/lib/a/x.txt", b"x".to_vec());
            emu.put_file("/lib/b/x.txt", b"x".to_vec());
            emu.put_file("/lib/clip1.bin", bytes_of(300_000, 3));
            emu.put_file("/lib/clip2.bin", bytes_of(300_000, 4));
            emu.put_file("/lib/notes.txt", NOTES.as_bytes().to_vec());
            emu.put_file("/public/hello.txt", b"hello".to_vec());
            let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            let public = emu.lookup("/public").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}",
                open_mount("/m", "proxy", &format!("root_id = {lib}")),
                open_mount(
                    "/pub",
                    "proxy",
                    &format!("root_id = {public}\nanonymous = true")
                )
            )
        })
        .start()
        .await
}

/// A browser's GET of a folder.
async fn page(env: &TestEnv, path: &str) -> reqwest::Response {
    env.req("GET", path)
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("page")
}

/// Every call 123 got, all endpoints together.
fn calls(env: &TestEnv) -> u64 {
    env.emu.stats().calls.values().sum()
}

#[tokio::test]
async fn assets_are_versioned_cached_for_a_year_and_revalidate() {
    let env = http_env("").await;
    let html = page(&env, "/m/").await.text().await.expect("html");
    let start = html.find("/-/ui/").expect("asset path");
    let prefix: String = html[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect::<String>()
        .rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .expect("prefix");
    for name in ["app.js", "app.css"] {
        let url = env.url(&format!("{prefix}/{name}"));
        let res = env.client.get(&url).send().await.expect("asset");
        assert_eq!(res.status().as_u16(), 200, "{url}");
        assert_eq!(
            header(&res, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let etag = header(&res, "etag");
        assert!(!etag.is_empty());
        let again = env
            .client
            .get(&url)
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("revalidate");
        assert_eq!(again.status().as_u16(), 304);
    }
    let stale = env
        .client
        .get(env.url("/-/ui/0000/app.js"))
        .send()
        .await
        .expect("old version");
    assert_eq!(stale.status().as_u16(), 404);
}

#[tokio::test]
async fn a_thousand_entries_fit_in_200_kb_and_other_clients_keep_the_plain_index() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        for i in 0..1000 {
            emu.put_file(
                &format!("/big/Some Film Title {i:04} (2024) 1080p.mkv"),
                bytes_of(16, 1),
            );
        }
        let id = emu.lookup("/big").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "proxy", &format!("root_id = {id}"))
    })
    .await;
    let res = page(&env, "/m/").await;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.expect("html");
    assert_eq!(html.matches("<tr data-s=").count(), 1000);
    eprintln!("page of 1,000 entries: {} bytes", html.len());
    assert!(html.len() < 200 * 1024, "{} bytes", html.len());
    // A client that does not ask for HTML keeps the minimal index.
    let plain = env.req("GET", "/m/").send().await.expect("get");
    let plain = plain.text().await.expect("text");
    assert!(!plain.contains("/-/ui/"), "{plain}");
}

#[tokio::test]
async fn the_page_costs_123_no_more_calls_than_webdav() {
    let env = http_env("").await;
    // A browse: a cold folder by PROPFIND, its twin by the page (the mount's root listed and
    // the token fetched before, for both).
    let (status, _) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    env.emu.reset_stats();
    let (status, _) = env.propfind("/m/a/", "1").await;
    assert_eq!(status, 207);
    let dav = calls(&env);
    env.emu.reset_stats();
    assert_eq!(page(&env, "/m/b/").await.status().as_u16(), 200);
    let browse = calls(&env);
    eprintln!("browse: WebDAV {dav} calls, page {browse}");
    assert!(browse <= dav, "page {browse} > WebDAV {dav}");

    // A play: a ranged GET by a player, and the page's <video> (same URL, a browser's headers).
    env.emu.reset_stats();
    let res = env
        .req("GET", "/m/clip1.bin")
        .header("Range", "bytes=100000-")
        .send()
        .await
        .expect("player");
    assert_eq!(res.status().as_u16(), 206);
    let _ = res.bytes().await;
    let dav = calls(&env);
    env.emu.reset_stats();
    let res = env
        .req("GET", "/m/clip2.bin")
        .header("Range", "bytes=100000-")
        .header("Accept", "*/*")
        .header("Accept-Encoding", "identity;q=1, *;q=0")
        .send()
        .await
        .expect("video element");
    assert_eq!(res.status().as_u16(), 206);
    let _ = res.bytes().await;
    let play = calls(&env);
    eprintln!("play: WebDAV {dav} calls, page {play}");
    assert!(play <= dav, "page {play} > WebDAV {dav}");

    // An upload: PUT then a listing (PROPFIND), against the page's PUT, its queue view and its
    // refreshed listing.
    let settle = |env: &TestEnv| {
        let stats = env.gw.as_ref().expect("gateway").state.uploads.stats();
        stats.queued == 0 && stats.running == 0
    };
    env.emu.reset_stats();
    let put = env
        .req("PUT", "/m/a/up1.bin")
        .body(bytes_of(70_000, 5))
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success());
    eventually("the WebDAV upload", || settle(&env)).await;
    let _ = env.propfind("/m/a/", "1").await;
    let dav = calls(&env);
    env.emu.reset_stats();
    let put = env
        .req("PUT", "/m/b/up2.bin")
        .body(bytes_of(70_000, 6))
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success());
    eventually("the page's upload", || settle(&env)).await;
    let queue = env
        .req("GET", "/-/queue?path=%2Fm%2Fb%2F")
        .send()
        .await
        .expect("queue");
    assert_eq!(queue.status().as_u16(), 200);
    let queue: Value = queue.json().await.expect("json");
    assert_eq!(queue["uploads"][0]["name"], "up2.bin");
    assert_eq!(queue["uploads"][0]["state"], "done");
    let _ = page(&env, "/m/b/").await.text().await;
    let upload = calls(&env);
    eprintln!("upload: WebDAV {dav} calls, page {upload}");
    assert!(upload <= dav, "page {upload} > WebDAV {dav}");
}

#[tokio::test]
async fn share_links_are_capped_expire_and_need_read() {
    let env = http_env("sign_ttl = \"30m\"").await;
    let share = |who: Option<&str>, path: &str, ttl: &str| {
        let url = env.url(&format!(
            "/-/share?path={}&ttl={ttl}",
            percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC)
        ));
        let rb = env.client.post(url);
        match who {
            Some(user) => rb.basic_auth(user, Some(PASSWORD)),
            None => rb,
        }
        .send()
    };
    let res = share(Some(USER), "/m/notes.txt", "86400")
        .await
        .expect("share");
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["ttl"], 1800, "capped by sign_ttl");
    let link = body["url"].as_str().expect("url").to_string();
    assert!(
        link.starts_with(&env.url("/-/d/m/notes.txt?sign=")),
        "{link}"
    );
    let res = env.client.get(&link).send().await.expect("open");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), NOTES);

    // After its lifetime, refused.
    env.clock().advance(Duration::from_secs(1801));
    let res = env.client.get(&link).send().await.expect("open late");
    assert_eq!(res.status().as_u16(), 403);

    // Bob may not read /m; nobody anonymous makes links; only the listed lifetimes.
    let res = share(Some("bob"), "/m/notes.txt", "3600")
        .await
        .expect("bob");
    assert_eq!(res.status().as_u16(), 403);
    let res = share(None, "/pub/hello.txt", "3600")
        .await
        .expect("anonymous");
    assert_eq!(res.status().as_u16(), 401);
    let res = share(Some(USER), "/m/notes.txt", "5")
        .await
        .expect("odd ttl");
    assert_eq!(res.status().as_u16(), 400);
    let res = share(Some(USER), "/m/nothing.txt", "3600")
        .await
        .expect("missing");
    assert_eq!(res.status().as_u16(), 404);
    // Bob's queue and connect views of /m are refused too.
    let res = env
        .client
        .get(env.url("/-/queue?path=%2Fm%2F"))
        .basic_auth("bob", Some(PASSWORD))
        .send()
        .await
        .expect("queue");
    assert_eq!(res.status().as_u16(), 403);
    let res = env
        .client
        .get(env.url("/-/connect/m"))
        .basic_auth("bob", Some(PASSWORD))
        .send()
        .await
        .expect("connect");
    assert_eq!(res.status().as_u16(), 403);
}

#[tokio::test]
async fn links_behind_a_tls_proxy_say_https_only_when_the_proxy_is_trusted() {
    let share = |env: &TestEnv, proto: &'static str| {
        env.client
            .post(env.url("/-/share?path=%2Fm%2Fnotes.txt&ttl=3600"))
            .basic_auth(USER, Some(PASSWORD))
            .header("x-forwarded-proto", proto)
            .send()
    };
    let link = |res: reqwest::Response| async move {
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.expect("json");
        body["url"].as_str().expect("url").to_string()
    };
    // The loopback peer is the trusted proxy that ends TLS.
    let env = http_env("trusted_proxies = [\"127.0.0.1\"]").await;
    let url = link(share(&env, "https").await.expect("share")).await;
    let plain = env.url("/-/d/m/notes.txt?sign=");
    assert!(
        url.starts_with(&plain.replacen("http://", "https://", 1)),
        "{url}"
    );
    let url = link(share(&env, "http").await.expect("share")).await;
    assert!(url.starts_with(&plain), "{url}");
    // Anyone else's header is ignored.
    let env = http_env("").await;
    let url = link(share(&env, "https").await.expect("share")).await;
    assert!(url.starts_with(&env.url("/-/d/m/notes.txt?sign=")), "{url}");
}

#[tokio::test]
async fn an_anonymous_mount_browses_without_a_prompt() {
    let env = http_env("").await;
    let res = env
        .client
        .get(env.url("/pub/"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("hello.txt"), "{html}");
    assert!(html.contains("data-write=\"0\" data-share=\"0\""), "{html}");
    let res = env
        .client
        .get(env.url("/-/connect/pub"))
        .send()
        .await
        .expect("connect");
    assert_eq!(res.status().as_u16(), 200);
    // A mount that is not anonymous still asks.
    let res = env
        .client
        .get(env.url("/m/"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status().as_u16(), 401);
    // Chinese for a browser that reads it first.
    let res = env
        .client
        .get(env.url("/pub/"))
        .header("Accept", "text/html")
        .header("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
        .send()
        .await
        .expect("page");
    let html = res.text().await.expect("html");
    assert!(
        html.contains("<html lang=\"zh\">") && html.contains("名称"),
        "{html}"
    );
}
