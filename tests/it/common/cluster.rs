//! Helpers for tests of several gateway instances (`[cluster]`): one more instance of a
//! `TestEnv`'s config on its own port and `state_dir`, and a TCP round-robin balancer in front
//! of two instances, as a load balancer without stickiness would be.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pan123_webdav::server::RunningServer;
use tokio::net::{TcpListener, TcpStream};

use super::{TestEnv, PASSWORD, USER};

/// One more gateway instance with the environment's config (its `[cluster]` included).
pub struct Instance {
    pub gw: Option<RunningServer>,
    pub base: String,
    pub addr: SocketAddr,
    pub state_dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Instance {
    pub async fn start(env: &TestEnv) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state_dir = tempfile::tempdir().expect("tempdir");
        let (gw, base) = env.gateway_on(listener, state_dir.path()).await;
        Instance {
            gw: Some(gw),
            base,
            addr,
            state_dir,
            client: env.client.clone(),
        }
    }

    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", self.base),
            )
            .basic_auth(USER, Some(PASSWORD))
    }
}

/// Alternates accepted connections between `backends` (loopback only), copying bytes both ways.
/// At most `MAX_CONNECTIONS` at once; ends with the test's runtime.
pub struct Balancer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

const MAX_CONNECTIONS: usize = 256;

impl Balancer {
    pub async fn start(backends: Vec<SocketAddr>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let n = count.fetch_add(1, Ordering::Relaxed);
                let backend = backends[n % backends.len()];
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Balancer {
            addr,
            accepted,
            task,
        }
    }

    /// `http://<balancer><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The MD5 of `bytes` in lower-case hex, as 123 (and the emulator) lists it.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
