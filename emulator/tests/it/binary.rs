//! The binary: first stdout line is the base URL, and it serves until killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prints_base_url_then_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_pan123-emulator"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-qps",
                "--generate",
                "3:1KiB",
            ])
            .args([
                "--share",
                "k:pw=/generated",
                "--complete-poll-interval",
                "0",
            ])
            .arg("--temp-dir")
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base = line.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base:?}");
    let c = reqwest::Client::new();
    let info: Value = c
        .get(format!("{base}/__emulator/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["base_url"], base.as_str());
    let sw: Value = c
        .get(format!("{base}/__emulator/switches"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sw["complete_poll_interval_ms"], 0);
    let tok: Value = c
        .post(format!("{base}/api/v1/access_token"))
        .header("Platform", "open_platform")
        .json(&serde_json::json!({"clientID": "demo-client", "clientSecret": "demo-secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = tok["data"]["accessToken"].as_str().unwrap();
    let root: Value = c
        .get(format!("{base}/api/v2/file/list?parentFileId=0&limit=100"))
        .header("Platform", "open_platform")
        .header("Authorization", format!("Bearer {tok}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gen = &root["data"]["fileList"][0];
    assert_eq!(gen["filename"], "generated");
    let list: Value = c
        .get(format!(
            "{base}/api/v2/file/list?parentFileId={}&limit=100",
            gen["fileId"]
        ))
        .header("Platform", "open_platform")
        .header("Authorization", format!("Bearer {tok}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"]["fileList"].as_array().unwrap().len(), 3);
    assert_eq!(list["data"]["fileList"][0]["size"], 1024);
}
