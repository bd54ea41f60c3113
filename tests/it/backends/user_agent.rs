//! Which `User-Agent` 123 sees (docs/123.md, web §7: 123 tracks clients by it). The gateway's own
//! API calls (Open API, web API, login, the share download hop) carry `server.user_agent` — our own
//! name, never another project's — and a proxied download carries the player's, on the CDN and on
//! the direct-link host. Asserted from the emulator's per-endpoint record over HTTP (`GET
//! /__emulator/stats`, `user_agents`).

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Stats};

const PLAYER: &str = "VLC/3.0.20 LibVLC/3.0.20";
const OURS: &str = "my-gateway/1.0 (+https://example.org)";

/// The emulator's stats, read over its control API as any tool would.
async fn stats_over_http(env: &TestEnv) -> Stats {
    env.client
        .get(format!("{}/__emulator/stats", env.emu.base_url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON")
}

async fn play(env: &TestEnv, path: &str, want: &[u8]) {
    let res = env
        .req("GET", path)
        .header("User-Agent", PLAYER)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200, "{path}");
    assert_eq!(res.bytes().await.expect("body").as_ref(), want, "{path}");
}

/// Open, share, web and link mounts, all proxying, with `user_agent` set in `[server]` (or
/// left at its default).
async fn env(server_extra: &str) -> TestEnv {
    let cfg = EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        ..Default::default()
    };
    TestEnv::builder(cfg)
        .mounts(|emu| {
            emu.put_file("/lib/f.bin", bytes_of(10_000, 1));
            emu.put_file("/direct/d.bin", bytes_of(10_000, 2));
            emu.add_share("ua-Key", None, "/lib");
            let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            let urls = format!("10000:{}\n", direct_url(emu, "/direct/d.bin"));
            format!(
                "{}{}{}{}",
                open_mount("/o", "proxy", &format!("root_id = {lib}\n")),
                share_mount("/s", "proxy", "ua-Key", None, ""),
                web_mount("/w", "proxy", &format!("root_id = {lib}\n")),
                link_mount("/l", "proxy", &urls, ""),
            )
        })
        .server(server_extra)
        .start()
        .await
}

#[tokio::test]
async fn api_calls_carry_ours_and_downloads_the_players() {
    let env = env(&format!("user_agent = \"{OURS}\"\n")).await;
    let file = env.emu.read("/lib/f.bin").expect("file");
    for mount in ["/o", "/s", "/w"] {
        play(&env, &format!("{mount}/f.bin"), &file).await;
    }
    play(
        &env,
        "/l/d.bin",
        &env.emu.read("/direct/d.bin").expect("file"),
    )
    .await;

    let stats = stats_over_http(&env).await;
    let api = [
        "/api/v1/access_token",
        "/api/v2/file/list",
        "/api/v1/file/download_info",
        "/api/user/sign_in",
        "/b/api/file/list/new",
        "/b/api/file/download_info",
        "/b/api/share/get",
        "/b/api/share/download/info",
        "web-pro",
    ];
    for endpoint in api {
        assert_eq!(stats.user_agents(endpoint), [OURS], "{endpoint}");
    }
    for endpoint in ["cdn", "direct"] {
        assert_eq!(stats.user_agents(endpoint), [PLAYER], "{endpoint}");
    }
}

#[tokio::test]
async fn the_default_is_our_own_name_and_version() {
    let env = env("").await;
    let file = env.emu.read("/lib/f.bin").expect("file");
    for mount in ["/o", "/w"] {
        play(&env, &format!("{mount}/f.bin"), &file).await;
    }
    let ours = format!("pan123-webdav/{}", env!("CARGO_PKG_VERSION"));
    let stats = stats_over_http(&env).await;
    for endpoint in [
        "/api/v2/file/list",
        "/api/user/sign_in",
        "/b/api/file/list/new",
    ] {
        assert_eq!(stats.user_agents(endpoint), [ours.as_str()], "{endpoint}");
    }
    // No User-Agent of another project anywhere.
    for agents in stats.user_agents.values() {
        for agent in agents {
            assert!(!agent.to_lowercase().contains("openlist"), "{agent}");
        }
    }
}
