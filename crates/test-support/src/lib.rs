//! Private `redis-server` processes, for tests (`switchyard demo` has its own launcher).
//!
//! Each test binary gets its own `redis-server` on a free loopback port, started on first
//! use and shared by the binary's tests, which keep apart by using [`unique_prefix`] for
//! their keys. A small watcher process kills the server when the test binary exits, so
//! nothing is left running whatever way the tests end. [`cluster`] does the same for a
//! 3-master Redis Cluster. [`DurableRedis`] is a server a test kills and restarts on its
//! append-only file, and [`watch_child`] gives any child process the same watcher.
//!
//! Nothing here touches the machine's shared Redis on 6379.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A private Redis server (or cluster) for this test binary.
#[derive(Debug)]
pub struct TestRedis {
    /// `redis://127.0.0.1:<port>` of the (first) node.
    pub url: String,
    /// Every node's port.
    pub ports: Vec<u16>,
    /// Its scratch directory.
    pub dir: PathBuf,
    /// The watcher of each node.
    watchers: Vec<Watcher>,
}

/// The `sh` loop that watches one `redis-server`: it stops the server when this process
/// ends (or the server is shut down), removes the scratch files, then exits.
#[derive(Debug, Clone)]
struct Watcher {
    /// Its pid.
    pid: u32,
    /// Set once it has exited and been reaped.
    gone: Arc<(Mutex<bool>, Condvar)>,
}

impl Watcher {
    /// Wait until it has exited (at most `timeout`); true when it has.
    fn wait_gone(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.gone;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |gone| !*gone)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

static SINGLE: OnceLock<TestRedis> = OnceLock::new();
static CLUSTER: OnceLock<Option<TestRedis>> = OnceLock::new();
static PREFIX_SEQ: AtomicU64 = AtomicU64::new(0);

/// A free TCP port on 127.0.0.1 (the OS picks it; a race with another process is possible
/// but rare, and start-up checks that the server really listens).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A key prefix no other test in this process uses.
pub fn unique_prefix(name: &str) -> String {
    let n = PREFIX_SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "t{}{}{n}",
        std::process::id(),
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    )
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Start `redis-server` with `args` in `dir`, watched: it dies when this process does.
fn spawn_watched(dir: &Path, port: u16, extra: &str) -> Watcher {
    let me = std::process::id();
    // The watcher polls this process; when it is gone it stops the server and removes
    // the scratch files. `exec`-free so that `$!` is the server's pid.
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir '{dir}' \
         --maxmemory-policy noeviction --loglevel warning --logfile '{dir}/redis-{port}.log' {extra} & \
         rpid=$!; while kill -0 {me} 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 0.5; done; \
         kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf '{dir}'",
        dir = dir.display()
    );
    let mut watcher = spawn_sh(&script)
        .expect("start redis-server (is it installed? apt-get install redis-server)");
    let pid = watcher.id();
    let gone = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = gone.clone();
    // Reap the watcher if it ends while this process lives (no zombie), and say so.
    std::thread::spawn(move || {
        let _ = watcher.wait();
        let (lock, cv) = &*flag;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    });
    Watcher { pid, gone }
}

/// Run `sh -c script` with no standard streams (the watcher shells).
fn spawn_sh(script: &str) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// SIGKILL the child process `pid` as soon as this process is gone, however it ends
/// (panic, abort, SIGKILL): a small shell loop, like the one that watches the private
/// `redis-server`s, which ends by itself when the child does.
pub fn watch_child(pid: u32) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -0 {me} 2>/dev/null || kill -9 {pid} 2>/dev/null"
    );
    let mut watcher = spawn_sh(&script).expect("start a watcher shell");
    // Reap it when it ends (no zombie).
    std::thread::spawn(move || watcher.wait());
}

/// A scratch directory of this process for `tag` (hosted result files, say), created
/// on first use and removed by a watcher shell once this process is gone.
pub fn scratch(tag: &str) -> PathBuf {
    static DIRS: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let mut dirs = DIRS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    dirs.entry(tag.to_string())
        .or_insert_with(|| {
            let dir = scratch_dir(&format!("scratch-{tag}"));
            let me = std::process::id();
            let script = format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; rm -rf '{}'",
                dir.display()
            );
            if let Ok(mut w) = spawn_sh(&script) {
                std::thread::spawn(move || w.wait());
            }
            dir
        })
        .clone()
}

/// `redis-cli -p <port> <args>`: what it printed on stdout (empty when it could not run).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether the server on `port` answers PING.
fn answers(port: u16) -> bool {
    redis_cli(port, &["ping"]).contains("PONG")
}

/// Wait until the server on `port` answers PING, at most `within`; true when it does.
fn wait_answering(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if answers(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_ping(port: u16) {
    assert!(
        wait_answering(port, Duration::from_secs(10)),
        "redis-server on port {port} did not answer PING within 10 s"
    );
}

/// Start a private single-node Redis for this process (it stops when the process ends,
/// or with [`TestRedis::stop`]). Fails with a message saying how to install Redis when
/// `redis-server` is not on PATH.
pub fn start_redis(tag: &str) -> Result<TestRedis, String> {
    start_redis_at(tag, free_port())
}

/// As [`start_redis`], on a given port (for tests of programs that start before Redis).
pub fn start_redis_at(tag: &str, port: u16) -> Result<TestRedis, String> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        return Err("redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL".into());
    }
    Ok(single_node(tag, port))
}

/// A watched single-node server in the scratch directory of `tag`, answering PING.
fn single_node(tag: &str, port: u16) -> TestRedis {
    let dir = scratch_dir(tag);
    let watcher = spawn_watched(&dir, port, "");
    wait_ping(port);
    TestRedis {
        url: format!("redis://127.0.0.1:{port}"),
        ports: vec![port],
        dir,
        watchers: vec![watcher],
    }
}

impl TestRedis {
    /// Shut the server(s) down now and wait (up to 10 s) until their watchers have
    /// cleaned up and exited, so that nothing started here outlives the caller. True
    /// when everything is gone.
    pub fn stop(&self) -> bool {
        for p in &self.ports {
            let _ = redis_cli(*p, &["shutdown", "nosave"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        self.watchers
            .iter()
            .all(|w| w.wait_gone(deadline.saturating_duration_since(Instant::now())))
    }

    /// The pids of the watcher processes (each the parent of one `redis-server`).
    pub fn watcher_pids(&self) -> Vec<u32> {
        self.watchers.iter().map(|w| w.pid).collect()
    }
}

/// The private single-node Redis of this test binary.
pub fn redis() -> &'static TestRedis {
    SINGLE.get_or_init(|| single_node("redis", free_port()))
}

/// A private 3-master Redis Cluster for this test binary, or `None` when `redis-cli`
/// cannot create one here.
pub fn cluster() -> Option<&'static TestRedis> {
    CLUSTER
        .get_or_init(|| {
            let dir = scratch_dir("cluster");
            let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
            let mut watchers = Vec::new();
            for port in &ports {
                let node_dir = dir.join(port.to_string());
                std::fs::create_dir_all(&node_dir).ok()?;
                watchers.push(spawn_watched(
                    &node_dir,
                    *port,
                    &format!(
                        "--cluster-enabled yes --cluster-config-file nodes-{port}.conf --cluster-node-timeout 5000"
                    ),
                ));
            }
            for port in &ports {
                wait_ping(*port);
            }
            let mut args = vec!["--cluster".to_string(), "create".to_string()];
            args.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
            args.push("--cluster-yes".to_string());
            let out = Command::new("redis-cli").args(&args).output().ok()?;
            if !out.status.success() {
                return None;
            }
            // Wait until every slot is served.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if redis_cli(ports[0], &["cluster", "info"]).contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(TestRedis {
                url: format!("redis://127.0.0.1:{}", ports[0]),
                ports,
                dir,
                watchers,
            })
        })
        .as_ref()
}

/// A `redis-server` a test starts, SIGKILLs and restarts on the same port and directory,
/// with an append-only file synced on every write (`--appendonly yes --appendfsync
/// always`), so that what it acknowledged survives the kill. It is watched
/// ([`watch_child`]): it dies with the test process; dropping it kills it and removes its
/// directory (unless it is the caller's, [`DurableRedis::in_dir`]).
#[derive(Debug)]
pub struct DurableRedis {
    /// Its port, the same across restarts.
    pub port: u16,
    /// Its data directory: the append-only file and `redis.log`.
    pub dir: PathBuf,
    /// Extra `redis-server` arguments.
    extra: Vec<String>,
    /// Whether dropping it removes `dir`.
    owns_dir: bool,
    /// The running server, if any.
    server: Mutex<Option<Child>>,
}

impl DurableRedis {
    /// A server on a free port in a fresh scratch directory (not started).
    pub fn new(tag: &str) -> DurableRedis {
        DurableRedis::with_args(tag, &[])
    }

    /// As [`DurableRedis::new`], with extra `redis-server` arguments (such as
    /// `["--requirepass", "…"]`).
    pub fn with_args(tag: &str, extra: &[&str]) -> DurableRedis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("switchyard-{tag}-{}-{port}", std::process::id()));
        let mut r = DurableRedis::in_dir(&dir, port);
        r.extra = extra.iter().map(|a| a.to_string()).collect();
        r.owns_dir = true;
        r
    }

    /// A server on `port` keeping its data in `dir` (created if need be, and left in
    /// place on drop: the caller decides what becomes of it). Not started.
    pub fn in_dir(dir: &Path, port: u16) -> DurableRedis {
        std::fs::create_dir_all(dir).expect("create the redis data dir");
        DurableRedis {
            port,
            dir: dir.to_path_buf(),
            extra: Vec::new(),
            owns_dir: false,
            server: Mutex::new(None),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Start it (again, on its append-only file) without waiting for it to answer.
    pub fn spawn(&self) {
        let dir = self.dir.display().to_string();
        let log = self.log_path().display().to_string();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--maxmemory-policy", "noeviction", "--loglevel", "warning"])
            .args(["--logfile", &log])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? apt-get install redis-server)");
        watch_child(child.id());
        let old = self.lock().replace(child);
        assert!(old.is_none(), "redis-server on port {port} started twice");
    }

    /// Start it (again) and wait until it answers PING (panics after 10 s).
    pub fn start(&self) {
        self.spawn();
        wait_ping(self.port);
    }

    /// Whether it answers PING.
    pub fn answers(&self) -> bool {
        answers(self.port)
    }

    /// Wait until it answers PING, at most `within`; true when it does.
    pub fn wait_answering(&self, within: Duration) -> bool {
        wait_answering(self.port, within)
    }

    /// `redis-cli -p <port> <args>`: what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// SIGKILL the server (no shutdown, no save) and reap it: its port is closed when
    /// this returns. Nothing happens when it is not running.
    pub fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Wait until `cond` holds, checking every 20 ms, or panic with `what` after `timeout`.
/// For waiting on an outcome without a fixed sleep.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GoAPI's and PiAPI's documented create bodies (`testdata/goapi-examples/requests/`,
/// copied from the pages each file cites), as (file name, body), sorted by name.
pub fn goapi_create_bodies() -> Vec<(String, serde_json::Value)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/goapi-examples/requests");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("testdata/goapi-examples/requests") {
        let dir = dir.expect("an examples directory").path();
        for f in std::fs::read_dir(&dir).expect("an examples directory") {
            let path = f.expect("an example file").path();
            let text = std::fs::read_to_string(&path).expect("an example file");
            let doc: serde_json::Value = serde_json::from_str(&text).expect("example JSON");
            if doc["method"] == "POST" && doc["path"] == "/api/v1/task" {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                out.push((name, doc["body"].clone()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 16,
        "the GoAPI examples are missing: {}",
        out.len()
    );
    out
}

/// A private S3-protocol server for this test binary (moto's `moto_server`), with one
/// bucket, stopped when the test binary exits.
#[derive(Debug)]
pub struct TestS3 {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// A bucket that exists.
    pub bucket: String,
}

static S3: OnceLock<Result<TestS3, String>> = OnceLock::new();

/// Where `moto_server` is: `SWITCHYARD_TEST_MOTO_SERVER`, on PATH, or in the virtualenv
/// this installs it into (`<temp>/switchyard-moto-venv`, kept for later runs) with
/// `python3 -m venv` and `pip install 'moto[server]'`.
fn moto_server() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SWITCHYARD_TEST_MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let on_path = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Ok(PathBuf::from("moto_server"));
    }
    let venv = std::env::temp_dir().join("switchyard-moto-venv");
    let exe = venv.join("bin").join("moto_server");
    if exe.exists() {
        return Ok(exe);
    }
    // One installer at a time across test binaries: a lock directory.
    let lock = std::env::temp_dir().join("switchyard-moto-venv.lock");
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if exe.exists() {
            return Ok(exe);
        }
        if Instant::now() > deadline {
            return Err(format!("waited 10 min for {} to go", lock.display()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let result = (|| {
        if exe.exists() {
            return Ok(());
        }
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(2000)
                    .collect())
            }
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "moto[server]"]))
    })();
    let _ = std::fs::remove_dir(&lock);
    result.map_err(|e| {
        format!(
            "the S3 tests need moto's S3 server: `pip install 'moto[server]'` (or set \
             SWITCHYARD_TEST_MOTO_SERVER); installing it into {} failed: {e}",
            venv.display()
        )
    })?;
    Ok(exe)
}

/// Send one HTTP/1.1 request without a body; the status code, or `None`.
fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The private S3 server of this test binary (started on first use).
pub fn s3() -> &'static TestS3 {
    match S3.get_or_init(start_s3) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn start_s3() -> Result<TestS3, String> {
    let exe = moto_server()?;
    let port = free_port();
    let dir = scratch_dir("s3");
    let me = std::process::id();
    let script = format!(
        "'{exe}' -H 127.0.0.1 -p {port} >'{dir}/moto.log' 2>&1 & spid=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $spid 2>/dev/null; do sleep 0.5; done; \
         kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf '{dir}'",
        exe = exe.display(),
        dir = dir.display()
    );
    let mut watcher = spawn_sh(&script).map_err(|e| format!("start moto_server: {e}"))?;
    std::thread::spawn(move || watcher.wait());
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(port, "GET", "/").is_none() {
        if Instant::now() > deadline {
            return Err(format!(
                "moto_server on port {port} did not answer within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bucket = "switchyard-tests".to_string();
    match http_status(port, "PUT", &format!("/{bucket}")) {
        Some(200) => {}
        other => return Err(format!("could not create the test bucket: {other:?}")),
    }
    Ok(TestS3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket,
    })
}
