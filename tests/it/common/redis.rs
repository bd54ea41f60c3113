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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
