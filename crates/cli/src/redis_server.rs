//! The demo's private `redis-server`: on a free loopback port, in its own scratch
//! directory, nothing saved to disk, and watched so that it never outlives the demo.
//!
//! A small `sh` loop starts the server and polls this process: when this process is
//! gone, however it ended (even SIGKILL), the loop stops the server, waits for it and
//! removes the scratch directory. [`PrivateRedis::stop`] shuts the server down and waits
//! for that loop to finish, so that nothing is left when the demo returns.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the server has to answer after it is started, and to be gone after
/// `SHUTDOWN`.
const WAIT: Duration = Duration::from_secs(10);

/// Ports tried before giving up (another process may take a free port before the server
/// binds it).
const ATTEMPTS: usize = 3;

/// A private `redis-server` and the shell loop that watches it.
#[derive(Debug)]
pub(crate) struct PrivateRedis {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// Its scratch directory (removed by the watcher when the server ends).
    dir: PathBuf,
    /// Whether the server answering on `port` was found to be ours: only then does
    /// [`PrivateRedis::stop`] send it `SHUTDOWN`.
    ours: bool,
    /// The watcher (`sh`, the server's parent), until it has been reaped.
    watcher: Mutex<Option<Child>>,
}

impl PrivateRedis {
    /// Start a server and wait until it answers. Fails with what to do when
    /// `redis-server` is not installed or does not come up.
    pub(crate) fn start() -> Result<PrivateRedis, String> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            return Err("redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL".into());
        }
        let dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
            // The path as the server will report it (symbolic links resolved).
            let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
            let port = free_port().map_err(|e| format!("no free port on 127.0.0.1 ({e})"))?;
            let mut redis = PrivateRedis::spawn(dir, port)?;
            match redis.wait_ready() {
                Ok(()) => {
                    redis.ours = true;
                    return Ok(redis);
                }
                Err(e) => {
                    // Not ours to shut down: ours exits by itself when it cannot bind,
                    // and its watcher with it.
                    redis.wait_gone();
                    last = e;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(format!("{last}; or set REDIS_URL to use a running Redis"))
    }

    /// `redis://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start the watcher, which starts the server.
    fn spawn(dir: PathBuf, port: u16) -> Result<PrivateRedis, String> {
        let me = std::process::id();
        // `$!` is the server's pid (no `exec`): the loop ends when this process or the
        // server is gone, then stops the server, reaps it and removes the scratch
        // directory (`$1`, passed as an argument so that no quoting can go wrong).
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir \"$1\" \
             --maxmemory-policy noeviction --loglevel warning --logfile \"$1/redis.log\" & \
             rpid=$!; while kill -0 {me} 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 0.2; done; \
             kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf \"$1\""
        );
        let watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("switchyard-redis-watcher")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start sh to run redis-server ({e})"))?;
        Ok(PrivateRedis {
            port,
            dir,
            ours: false,
            watcher: Mutex::new(Some(watcher)),
        })
    }

    /// Wait until the server on our port answers and is ours (its directory is our
    /// scratch directory: another process may have taken the port first).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let dir = self.dir.display().to_string();
        loop {
            if let Ok(answer) = command(self.port, &["CONFIG", "GET", "dir"]) {
                if answer.contains(&dir) {
                    return Ok(());
                }
                return Err(format!(
                    "port {} was taken by another server before redis-server could bind it",
                    self.port
                ));
            }
            if !self.watcher_running() {
                return Err(format!(
                    "redis-server did not start on port {} (see its log in {dir})",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {} did not answer within {} s",
                    self.port,
                    WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the watcher (hence, as far as it knows, the server) still runs.
    fn watcher_running(&self) -> bool {
        let mut guard = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) => {
                *guard = None; // reaped (or not ours to wait for any more)
                false
            }
            None => false,
        }
    }

    /// Shut the server down and wait (up to 10 s) until its watcher has removed the
    /// scratch directory and exited. True when everything is gone. Safe to call twice.
    pub(crate) fn stop(&self) -> bool {
        if self.ours && self.watcher_running() {
            // The server closes the connection without answering.
            let _ = command(self.port, &["SHUTDOWN", "NOSAVE"]);
        }
        self.wait_gone()
    }

    /// Wait (up to 10 s) until the watcher has exited, and reap it. True when it has.
    fn wait_gone(&self) -> bool {
        let mut guard = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let Some(watcher) = guard.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + WAIT;
        loop {
            match watcher.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    *guard = None;
                    return true;
                }
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1, as the OS picks it.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Send one command to the server on `port` and return its raw answer (RESP), read
/// until a pause; an error when nothing listens or nothing comes back.
fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes())?;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
