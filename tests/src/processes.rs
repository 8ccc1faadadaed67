//! Real servers the tests start and stop: `redis-server` on a free port, `nginx`, long-running
//! Node scripts from `tests/js`, any other program.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` (Debian's, installed by the README test command) on a free port, without
/// persistence; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers. A port taken meanwhile (free ports are found by
    /// binding and releasing one; a parallel test may bind it first) means another port.
    pub async fn start() -> RedisServer {
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
            };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start on 5 free ports");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to its clients).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Unfreezes it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Publishes `payload` on `channel` with a hand-written RESP command, as any Redis client
    /// (or an attacker with access to Redis) could.
    pub async fn publish(&self, channel: &str, payload: &[u8]) {
        self.publish_with("PUBLISH", channel, payload).await;
    }

    /// The same with `command` (`PUBLISH`, or `SPUBLISH` for a shard channel).
    pub async fn publish_with(&self, command: &str, channel: &str, payload: &[u8]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut command = format!(
            "*3\r\n${}\r\n{command}\r\n${}\r\n{channel}\r\n${}\r\n",
            command.len(),
            channel.len(),
            payload.len()
        )
        .into_bytes();
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        stream.write_all(&command).await.unwrap();
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).await.unwrap();
        assert!(reply[..n].starts_with(b":"), "{:?}", &reply[..n]);
    }

    /// How many clients subscribe shard channel `channel` (`PUBSUB SHARDNUMSUB`).
    pub async fn shard_subscribers(&self, channel: &str) -> i64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let command = format!(
            "*3\r\n$6\r\nPUBSUB\r\n$11\r\nSHARDNUMSUB\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        stream.write_all(command.as_bytes()).await.unwrap();
        // `*2 $<n> <channel> :<count>`: the count is the last line.
        let mut reply = Vec::new();
        let mut chunk = [0u8; 256];
        while !reply.ends_with(b"\r\n") || !reply.contains(&b':') {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8(reply).unwrap();
        let count = text.rsplit(':').next().unwrap().trim();
        count.parse().unwrap_or_else(|_| panic!("{text:?}"))
    }

    /// How many connections the server accepted since it started (`INFO stats`:
    /// `total_connections_received`), this query's own included.
    pub async fn connections_received(&self) -> u64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        stream
            .write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        // `$<len>\r\n<text>\r\n`: read until the whole bulk string is there.
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n")
                && let Ok(len) = head.trim_start_matches('$').parse::<usize>()
                && body.len() >= len
            {
                break;
            }
        }
        let text = String::from_utf8(reply).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{text:?}"))
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) {
        assert!(
            self.spawn().await,
            "redis-server did not restart on {}",
            self.port
        );
    }

    /// Starts the process on this port; true once it answers `PING`, false if it exited (the
    /// port was taken).
    async fn spawn(&mut self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.kill().await;
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} does not start ({e}): run the README test command, it installs redis-server")
            });
        self.child = Some(child);
        for _ in 0..200 {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer on {} in 5 s", self.port);
    }
}

/// A long-running `node tests/js/<script>`: its first JSON line, and the process (killed when
/// dropped).
#[derive(Debug)]
pub struct NodeProcess {
    /// The first line it printed, as JSON.
    pub hello: serde_json::Value,
    _child: Child,
}

impl NodeProcess {
    /// Starts `script` with `args` and waits (10 s at most) for its first line of output.
    pub async fn start(script: &str, args: &[&str]) -> NodeProcess {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
        let mut command = Command::new("node");
        command.arg(dir.join(script)).args(args).current_dir(&dir);
        let process = Spawned::start(command, script).await;
        NodeProcess {
            hello: serde_json::from_str(&process.first_line).unwrap(),
            _child: process.child,
        }
    }
}

/// Any program, started with its output piped; killed when dropped.
#[derive(Debug)]
pub struct Spawned {
    /// The first line it printed.
    pub first_line: String,
    child: Child,
}

impl Spawned {
    /// Starts `command` and waits (10 s at most) for its first line of output; `what` names it
    /// in the panics.
    pub async fn start(mut command: Command, what: &str) -> Spawned {
        let mut child = command
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{what} does not start: {error}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first_line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} printed nothing in 10 s"))
            .unwrap()
            .unwrap_or_else(|| panic!("{what} exited without output"));
        // Keep reading, so the program never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Spawned { first_line, child }
    }
}

/// Debian's `nginx` (installed by the README test command; `$NGINX` to use another) running
/// `config` in the foreground from a fresh prefix directory; killed when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    /// Writes `config` to a fresh prefix directory, starts nginx on it, and waits until
    /// `port` (where the config listens) accepts connections.
    pub async fn start(config: &str, port: u16) -> Nginx {
        let nginx = std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".to_owned());
        assert!(
            std::path::Path::new(&nginx).exists(),
            "{nginx} is missing: run the README test command (it installs Debian's nginx)"
        );
        let prefix = std::env::temp_dir().join(format!("belfry-nginx-{port}"));
        std::fs::create_dir_all(&prefix).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            // One process: killing it leaves no workers behind.
            .args(["-g", "daemon off; master_process off;"])
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Nginx { child, prefix };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx does not listen on {port} after 5 s");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}
