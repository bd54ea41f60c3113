//! A real `redis-server` for the cluster tests, on a free loopback port, without persistence;
//! killed (SIGKILL) and reaped on drop. `.ci/run` installs it; locally a missing one is a
//! visible skip (`skips`), under CI=true a failure.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits (bounded) until it answers PING; `None`
    /// (a recorded skip) when redis-server is not installed.
    #[track_caller]
    pub fn start() -> Option<RedisServer> {
        if !super::tools::require("redis-server", "redis-server") {
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: super::free_port(),
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `[cluster]` section naming this server.
    pub fn cluster_section(&self) -> String {
        format!(
            "\n[cluster]\nredis_url = \"{}\"\ninstances = 2\n",
            self.url()
        )
    }

    /// A client of this Redis of its own, as a further instance of the cluster would have (it
    /// reads the same internal secret, the same shared state).
    pub async fn client(&self) -> std::sync::Arc<pan123_webdav::cluster::Cluster> {
        let config = pan123_webdav::config::ClusterConfig {
            redis_url: self.url().as_str().into(),
            instances: None,
            advertise_url: None,
        };
        pan123_webdav::cluster::Cluster::start(&config)
            .await
            .expect("cluster")
    }

    /// Kills the server (its data is gone: nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }

    /// Whether the server answers PING (a raw RESP exchange, so tests need no client).
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl RedisServer {
    /// Watches every command sent to the server (Redis's `MONITOR`) until `Monitor::stop`: the
    /// Redis round trips a request costs.
    pub fn monitor(&self) -> Monitor {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        s.write_all(b"MONITOR\r\n").expect("write MONITOR");
        let mut reader = BufReader::new(s.try_clone().expect("clone socket"));
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR answer");
        assert!(ok.starts_with("+OK"), "MONITOR: {ok}");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        // Ends when `stop` shuts the socket down (or after 100,000 lines).
        let reader = std::thread::spawn(move || {
            for line in reader.lines().take(100_000) {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Monitor {
            socket: s,
            lines,
            reader: Some(reader),
        }
    }
}

/// The commands seen by `RedisServer::monitor`.
pub struct Monitor {
    socket: std::net::TcpStream,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    /// The commands clients sent so far, leaving out those run inside Lua scripts (their
    /// `EVALSHA` is the round trip).
    pub fn client_commands(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| !l.contains(" lua]"))
            .cloned()
            .collect()
    }

    /// Stops watching.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.client_commands()
    }
}

/// A loopback proxy in front of a `RedisServer` that holds back pub/sub messages (the
/// `message` pushes on a connection that subscribed) for `delay`, as a slow network or a busy
/// subscriber would; every other answer passes at once. Shows what an instance serves before
/// another instance's invalidation reaches it. Ends with the test's runtime.
pub struct SlowMessages {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlowMessages {
    /// At most this many proxied connections at once.
    const MAX_CONNECTIONS: usize = 64;

    pub async fn start(redis: &RedisServer, delay: Duration) -> SlowMessages {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let upstream = redis.port;
        let slots = Arc::new(tokio::sync::Semaphore::new(Self::MAX_CONNECTIONS));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let subscribed = Arc::new(AtomicBool::new(false));
                    let saw = subscribed.clone();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = client_rx.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if contains_ignoring_case(&buf[..n], b"subscribe") {
                                saw.store(true, Ordering::SeqCst);
                            }
                            if server_tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_tx.shutdown().await;
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = server_rx.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if subscribed.load(Ordering::SeqCst)
                                && contains_ignoring_case(&buf[..n], b"message")
                            {
                                tokio::time::sleep(delay).await;
                            }
                            if client_tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = client_tx.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        SlowMessages { port, task }
    }

    /// The `[cluster]` section naming the proxy instead of the server.
    pub fn cluster_section(&self) -> String {
        format!(
            "\n[cluster]\nredis_url = \"redis://127.0.0.1:{}\"\ninstances = 2\n",
            self.port
        )
    }
}

impl Drop for SlowMessages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
