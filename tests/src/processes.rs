//! Real servers the tests start and stop: `redis-server` and PostgreSQL on free ports, `nginx`,
//! long-running Node scripts from `tests/js`, any other program.

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

/// A fresh directory with a CA of its own (`ca.crt`, `ca.key`) and a certificate for
/// 127.0.0.1 it signed (`server.crt`, `server.key`), made with `openssl`.
pub async fn test_certificates() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "belfry-tls-{}-{}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=belfry-test-ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext",
    ] {
        let status = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("openssl runs (the README test command installs it)");
        assert!(status.success(), "openssl {args}");
    }
    dir
}

/// A `redis-server` (Debian's, installed by the README test command) on a free port, without
/// persistence; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// More configuration directives (`--user ...`).
    extra: Vec<String>,
    /// TLS only: the directory of its certificates (`ca.crt`, `server.crt`, `server.key`).
    tls: Option<PathBuf>,
}

impl RedisServer {
    /// Starts one and waits until it answers. A port taken meanwhile (free ports are found by
    /// binding and releasing one; a parallel test may bind it first) means another port.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[], None).await
    }

    /// Starts one with more configuration directives, a word each (`["--user", "app", "on",
    /// ">pw", "~*", "&*", "+@all"]`).
    pub async fn start_with_args(args: &[&str]) -> RedisServer {
        RedisServer::start_with(args, None).await
    }

    /// Starts one that speaks TLS only, with a certificate for 127.0.0.1 signed by a CA of its
    /// own (made with `openssl`; [`RedisServer::ca_pem`]).
    pub async fn start_tls() -> RedisServer {
        RedisServer::start_with(&[], Some(test_certificates().await)).await
    }

    async fn start_with(args: &[&str], tls: Option<PathBuf>) -> RedisServer {
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
                extra: args.iter().map(|arg| (*arg).to_owned()).collect(),
                tls: tls.clone(),
            };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start on 5 free ports");
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` when it speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The certificate of the CA that signed its own (TLS only), PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.tls.as_ref().expect("a TLS server").join("ca.crt")).unwrap()
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
        let mut command = Command::new(&program);
        match &self.tls {
            Some(dir) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(dir.join("ca.crt"))
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
        }
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(&self.extra)
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
                if self.tls.is_some() {
                    // Listening is all that can be checked without speaking TLS.
                    return true;
                }
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    // `-NOAUTH`: up, with the default user off.
                    && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer on {} in 5 s", self.port);
    }
}

/// A Redis Cluster of `redis-server`s (masters only, no replica) on free ports, its slots
/// spread by `redis-cli --cluster create`; killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts `masters` nodes (3 at least, as Redis requires) and waits until the cluster is
    /// up on every one of them.
    pub async fn start(masters: usize) -> RedisCluster {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "belfry-redis-cluster-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..masters {
            let port = free_port();
            let child = Command::new(&program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server starts");
            cluster.nodes.push(child);
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            cluster.until(*port, "PING", "PONG").await;
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let output = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli runs (from redis-tools, with redis-server)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        for port in &cluster.ports {
            cluster
                .until(*port, "CLUSTER INFO", "cluster_state:ok")
                .await;
        }
        cluster
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// `redis-cli -p <port> <command>` until its output contains `expected` (10 s at most).
    async fn until(&self, port: u16, command: &str, expected: &str) {
        for _ in 0..400 {
            let output = Command::new(redis_cli())
                .args(["-p", &port.to_string()])
                .args(command.split(' '))
                .output()
                .await
                .expect("redis-cli runs");
            if String::from_utf8_lossy(&output.stdout).contains(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis node {port}: no {expected:?} to {command} in 10 s");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli` (`$REDIS_CLI` for another).
fn redis_cli() -> String {
    std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// A PostgreSQL server (Debian's, installed by the README test command; `$PG_BIN` names the
/// directory of another's `initdb`, `postgres` and `psql`) with a cluster of its own in a fresh
/// directory, on a free port of 127.0.0.1, trusting every connection (superuser `postgres`,
/// database `postgres`), with the table of `@socket.io/postgres-adapter`
/// (`socket_io_attachments`). Run as root, it runs as the `postgres` user of the Debian
/// package (PostgreSQL refuses root). Killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    /// The fresh directory: `data/` (the cluster), `postgres.log`, the Unix socket.
    dir: PathBuf,
    /// The uid and gid it runs as, when not this process's.
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Creates the cluster (`initdb`), starts it and waits until it accepts connections, then
    /// creates the table. A port taken meanwhile (free ports are found by binding and releasing
    /// one; a parallel test may bind it first) means another port.
    pub async fn start() -> PostgresServer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let bin = postgres_bin();
        let user = postgres_user();
        let dir = std::env::temp_dir().join(format!(
            "belfry-postgres-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb.output().await.unwrap_or_else(|e| {
            panic!(
                "initdb does not start ({e}): run the README test command, it installs PostgreSQL"
            )
        });
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = PostgresServer {
            port: 0,
            bin,
            dir,
            user,
            child: None,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn().await {
                server
                    .query(
                        "CREATE TABLE socket_io_attachments (id bigserial UNIQUE, \
                         created_at timestamptz DEFAULT NOW(), payload bytea);",
                    )
                    .await;
                return server;
            }
        }
        panic!(
            "postgres did not start on 5 free ports: {}",
            server.log_tail()
        );
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL to the postmaster and every backend at once: its clients' connections
    /// close without a word). The data stays for [`PostgresServer::restart`], which then runs
    /// crash recovery.
    pub async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pids = child.id().map(|pid| self.freeze(pid)).unwrap_or_default();
        let _ = child.kill().await;
        wait_gone(&pids).await;
    }

    /// Stops it as an administrator would (`pg_ctl stop -m fast`: SIGINT): every client is
    /// told `FATAL 57P01 terminating connection due to administrator command`, then the server
    /// shuts down cleanly. Waits until it has exited.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            signal(&[pid], "-INT");
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            self.child = Some(child);
            self.kill().await;
        }
    }

    /// Freezes it (SIGSTOP to the postmaster and every backend): connections stay open,
    /// nothing answers, no new connection is accepted.
    pub fn pause(&self) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        self.freeze(pid);
    }

    /// Unfreezes it (SIGCONT).
    pub fn resume(&self) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let mut pids = postgres_processes(pid);
        pids.push(pid);
        signal(&pids, "-CONT");
    }

    /// Starts it again on the same port with the same data (after [`PostgresServer::kill`] or
    /// [`PostgresServer::stop`]).
    pub async fn restart(&mut self) {
        assert!(
            self.spawn().await,
            "postgres did not restart on {}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// Runs `sql` with `psql` (unaligned, tuples only: one line per row, columns separated by
    /// `|`) and returns its output; panics on an error.
    pub async fn query(&self, sql: &str) -> String {
        self.psql(sql, &[]).await
    }

    /// Sends `NOTIFY` on `channel` with `payload` (`pg_notify`), as any client of the database
    /// (or an attacker with access to it) could.
    pub async fn notify(&self, channel: &str, payload: &str) {
        self.psql(
            "SELECT pg_notify(:'channel', :'payload');",
            &[("channel", channel), ("payload", payload)],
        )
        .await;
    }

    /// Closes every client connection from the server's side (`pg_terminate_backend`, as an
    /// administrator or a connection pooler might), the server staying up. Returns how many.
    pub async fn terminate_connections(&self) -> usize {
        self.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();",
        )
        .await
        .lines()
        .filter(|line| *line == "t")
        .count()
    }

    /// `psql` with `sql` on its standard input (where `:'name'` takes the value of `vars`,
    /// quoted as a literal).
    async fn psql(&self, sql: &str, vars: &[(&str, &str)]) -> String {
        use tokio::io::AsyncWriteExt;
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres"]);
        for (name, value) in vars {
            command.arg("-v").arg(format!("{name}={value}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("psql starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(sql.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// SIGSTOP to the postmaster `pid` (so that it starts no other process) then to every
    /// process it started; returns them all.
    fn freeze(&self, pid: u32) -> Vec<u32> {
        signal(&[pid], "-STOP");
        let pids = postgres_processes(pid);
        signal(&pids, "-STOP");
        pids
    }

    /// The last lines of its log, for panics.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Starts the postmaster on this port; true once it is ready for connections (its
    /// `postmaster.pid` says so), false if it exited (the port was taken).
    async fn spawn(&mut self) -> bool {
        self.kill().await;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap();
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            // No fsync: what was committed survives the kill of the server (the kernel has
            // it), not that of the machine, which tests do not need. Commits stay synchronous,
            // or a kill would lose the last ones (still in the server's WAL buffers).
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=16MB"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "postgres does not start ({e}): run the README test command, it installs PostgreSQL"
            )
        });
        let pid = child.id().expect("running").to_string();
        self.child = Some(child);
        let pid_file = self.dir.join("data/postmaster.pid");
        for _ in 0..400 {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            // Line 1: the postmaster's pid (a killed one's file stays until the next starts);
            // line 8: its status.
            let status = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = status.lines().collect();
            if lines.first() == Some(&pid.as_str())
                && lines.get(7).map(|s| s.trim()) == Some("ready")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "postgres was not ready on {} in 10 s: {}",
            self.port,
            self.log_tail()
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            signal(&[pid], "-STOP");
            let mut pids = postgres_processes(pid);
            pids.push(pid);
            signal(&pids, "-KILL");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of `initdb`, `postgres` and `psql`: `$PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return PathBuf::from(bin);
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!("no /usr/lib/postgresql/*/bin/initdb: run the README test command, it installs PostgreSQL (or set PG_BIN)")
        })
}

/// The uid and gid of the `postgres` user when this process runs as root, else `None`.
fn postgres_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let output = std::process::Command::new("id")
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "id {args:?}: no postgres user?");
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id(&["-u"]) == 0).then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

/// The processes whose parent is `pid` (a postmaster's backends and workers), from `/proc`.
fn postgres_processes(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Sends `signal` (`-STOP`, `-KILL`, …) to `pids` with `kill`; those gone meanwhile are skipped.
fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Waits (5 s at most) until every one of `pids` has exited (or is a zombie), after SIGKILL.
async fn wait_gone(pids: &[u32]) {
    signal(pids, "-KILL");
    for _ in 0..200 {
        let alive = pids.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
        });
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
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
