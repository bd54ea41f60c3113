//! A browser (headless Chromium, its command line only) on a folder's page: the page renders
//! with a link per entry (relative to the folder, folders first), a screenshot is kept under
//! `target/client-screenshots/`, and following a file's link from the rendered page downloads
//! the file's bytes. `browser.rs` drives the page through WebDriver.

use crate::common::tools::{ok, require, run};
use crate::common::*;
use pan123_emulator::EmulatorConfig;

/// Headless Chromium with a throw-away profile; `--no-sandbox` because CI runs as root.
async fn chromium(profile: &std::path::Path, args: &[String]) -> Vec<u8> {
    let mut all: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    all.push(format!("--user-data-dir={}", profile.display()));
    all.extend(args.iter().cloned());
    ok(&run("chromium", &all, &[]).await, "chromium")
}

/// `http://alice:…@host<path>`: Chromium answers the Basic challenge with these.
fn authed(env: &TestEnv, path: &str) -> String {
    let password = PASSWORD.replace(' ', "%20");
    env.url(path)
        .replacen("http://", &format!("http://{USER}:{password}@"), 1)
}

/// The `href`s of the links of the listing's rows in a DOM dump.
fn hrefs(dom: &str) -> Vec<String> {
    dom.split("<td><a href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_an_index_and_follows_a_link_to_download() {
    if !require("chromium", "chromium") {
        return;
    }
    let text = "Hello from 123 — 你好\n".repeat(50);
    let body = text.clone();
    let env = TestEnv::start(EmulatorConfig::default(), move |emu| {
        emu.mkdir_p("/lib/Season 1");
        emu.put_file("/lib/notes & more.txt", body.into_bytes());
        emu.put_file("/lib/电影.bin", bytes_of(2048, 1));
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "proxy", &format!("root_id = {id}"))
    })
    .await;
    let profile = tempfile::tempdir().expect("tempdir");

    // The index renders: a link per entry, folders first.
    let dom = chromium(profile.path(), &["--dump-dom".into(), authed(&env, "/m/")]).await;
    let dom = String::from_utf8_lossy(&dom).into_owned();
    let links = hrefs(&dom);
    assert_eq!(
        links,
        [
            "../",
            "Season%201/",
            "notes%20%26%20more.txt",
            "%E7%94%B5%E5%BD%B1.bin"
        ],
        "{dom}"
    );
    assert!(dom.contains("notes &amp; more.txt"), "{dom}");
    assert!(dom.contains("电影.bin"), "{dom}");

    // A screenshot of it, kept for people to look at.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("client-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let shot = dir.join("folder-index.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=800,600".into(),
            authed(&env, "/m/"),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    // Follow the text file's link from the rendered page: the browser shows its bytes.
    let link = format!("/m/{}", links[2]);
    let page = chromium(profile.path(), &["--dump-dom".into(), authed(&env, &link)]).await;
    let page = String::from_utf8_lossy(&page).into_owned();
    assert!(page.contains(text.trim_end()), "{page}");
}
