//! ffprobe and ffmpeg as a media player uses the gateway: probe a video over HTTP and decode
//! a frame from its middle (a seek is a Range request), through proxy, redirect and proxy-url
//! mounts. The video is generated at test time (`ffmpeg -f lavfi`), never stored in the repo.

use crate::common::tools::{ok, require, run};
use crate::common::*;
use pan123_emulator::EmulatorConfig;

/// A 4-second 160x120 clip, 10 frames a second, MP4 with its index at the end (so even a probe
/// seeks).
async fn make_clip(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("clip.mp4").display().to_string();
    let args: Vec<String> = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=4:size=160x120:rate=10",
        "-c:v",
        "mpeg4",
        "-g",
        "10",
        "-f",
        "mp4",
        "-y",
        &path,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    ok(&run("ffmpeg", &args, &[]).await, "ffmpeg (generate)");
    std::fs::read(&path).expect("generated clip")
}

/// One frame 2 s in, as raw grey pixels.
async fn frame_at_2s(input: &str) -> Vec<u8> {
    let args: Vec<String> = [
        "-v",
        "error",
        "-ss",
        "2",
        "-i",
        input,
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "pipe:1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    ok(
        &run("ffmpeg", &args, &[]).await,
        &format!("ffmpeg -i {input}"),
    )
}

/// `http://alice:…@host/<path>`: ffmpeg answers the Basic challenge with these.
fn authed_url(env: &TestEnv, path: &str) -> String {
    let password: String =
        url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect::<String>();
    let password = password.replace('+', "%20");
    env.url(path)
        .replacen("http://", &format!("http://{USER}:{password}@"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_and_decode_a_middle_frame_through_every_policy() {
    if !require("ffmpeg", "ffmpeg") || !require("ffprobe", "ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = make_clip(dir.path()).await;
    let local = frame_at_2s(&dir.path().join("clip.mp4").display().to_string()).await;
    assert_eq!(local.len(), 160 * 120, "one grey frame");

    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.mkdir_p("/lib");
        emu.put_file("/lib/films/clip.mp4", clip.clone());
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        let root = format!("root_id = {id}");
        format!(
            "{}{}{}",
            open_mount("/p", "proxy", &root),
            open_mount("/r", "redirect", &root),
            open_mount("/u", "proxy-url", &root)
        )
    })
    .await;

    // The redirect mounts do redirect other clients; ffmpeg (User-Agent Lavf/…) is proxied by
    // the built-in [[clients]] row, because its seeks after a 302 lose the credentials.
    for mount in ["r", "u"] {
        let res = env
            .req("GET", &format!("/{mount}/films/clip.mp4"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 302, "/{mount}");
    }

    for mount in ["p", "r", "u"] {
        let before = get_counts(&env, mount).await;
        let url = authed_url(&env, &format!("/{mount}/films/clip.mp4"));
        let args: Vec<String> = [
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,width,height",
            "-of",
            "json",
            &url,
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let out = ok(
            &run("ffprobe", &args, &[]).await,
            &format!("ffprobe /{mount}"),
        );
        let probe: serde_json::Value = serde_json::from_slice(&out).expect("ffprobe json");
        let stream = &probe["streams"][0];
        assert_eq!(stream["codec_name"], "mpeg4", "/{mount}: {probe}");
        assert_eq!(stream["width"], 160, "/{mount}: {probe}");
        assert_eq!(stream["height"], 120, "/{mount}: {probe}");
        let duration: f64 = probe["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        assert!(
            (duration - 4.0).abs() < 0.2,
            "/{mount}: duration {duration}"
        );

        let frame = frame_at_2s(&url).await;
        assert!(
            frame == local,
            "/{mount}: the frame at 2 s differs from the local decode"
        );
        // ffmpeg itself was streamed through the gateway, never redirected.
        let after = get_counts(&env, mount).await;
        assert_eq!(
            after.redirected, before.redirected,
            "/{mount}: Lavf was redirected"
        );
        assert!(
            after.streamed > before.streamed,
            "/{mount}: no GET answered with bytes ({before:?} then {after:?})"
        );
    }
}

/// GETs of one mount answered so far, from the gateway's metrics.
#[derive(Debug, Clone, Copy, Default)]
struct GetCounts {
    /// 302s.
    redirected: u64,
    /// 200s and 206s.
    streamed: u64,
}

async fn get_counts(env: &TestEnv, mount: &str) -> GetCounts {
    let text = metrics_text(env).await;
    let mut counts = GetCounts::default();
    let mount_label = format!("mount=\"/{mount}\"");
    for line in text.lines() {
        if !line.starts_with("pan123_http_requests_total{")
            || !line.contains("method=\"GET\"")
            || !line.contains(&mount_label)
        {
            continue;
        }
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if line.contains("status=\"302\"") {
            counts.redirected += n;
        } else if line.contains("status=\"200\"") || line.contains("status=\"206\"") {
            counts.streamed += n;
        }
    }
    counts
}
