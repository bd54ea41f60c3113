//! `pan123-webdav demo` starts, prints its URL and credentials, answers PROPFIND and takes a
//! file through the personal-account mount.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo when the test ends, even on a failed assertion.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_starts_and_answers_propfind() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
            .args(["demo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut user, mut password) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (url.is_none() || user.is_none() || password.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let value = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_string())
        };
        url = url.or(value("WebDAV URL:"));
        user = user.or(value("user:"));
        password = password.or(value("password:"));
    }
    let (url, user, password) = (
        url.expect("URL printed"),
        user.expect("user printed"),
        password.expect("password printed"),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{}open/", url),
        )
        .basic_auth(&user, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(body.contains("Movies"), "{body}");
    // The personal-account mount shows the same account through the web API.
    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{}me/", url),
        )
        .basic_auth(&user, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(body.contains("Movies"), "{body}");
    // And takes a file, readable at once.
    let res = client
        .put(format!("{}me/hello-from-demo.txt", url))
        .basic_auth(&user, Some(&password))
        .body("hello")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let mut seen = String::new();
    for _ in 0..200 {
        let res = client
            .get(format!("{}me/hello-from-demo.txt", url))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .expect("get");
        if res.status().is_success() {
            seen = res.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "hello");
}
