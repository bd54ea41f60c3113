//! The binary: first stdout line is the Open API base URL, then one line per host, and it serves
//! until killed.

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
    // the Open API base URL, then `name url` for each of the 8 hosts
    let lines = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        (0..9)
            .map(|_| {
                let mut line = String::new();
                r.read_line(&mut line).map(|_| line.trim().to_string())
            })
            .collect::<std::io::Result<Vec<String>>>()
    })
    .await
    .unwrap()
    .unwrap();
    let base = lines[0].clone();
    assert!(base.starts_with("http://127.0.0.1:"), "{base:?}");
    let c = reqwest::Client::new();
    let hosts: Value = c
        .get(format!("{base}/__emulator/hosts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for line in &lines[1..] {
        let (name, url) = line.split_once(' ').unwrap();
        assert_eq!(hosts[name], url, "{line}");
    }
    assert_eq!(hosts["open"], base.as_str());
    assert_eq!(hosts.as_object().unwrap().len(), 9);
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
