//! The broker under attack: the real `warren` binary started in a fresh data directory on a free
//! port (or an address given), watched through `/proc` for its resident memory and through its
//! exit status and log for death and panics.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A broker: ours (a child process) or someone else's (an address only).
pub struct Broker {
    /// Where it listens for AMQP.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

impl Broker {
    /// Starts `binary` on a free loopback port with a fresh data directory under `work`.
    pub fn start(
        binary: &Path,
        work: &Path,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Broker> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = work.join(format!("netfuzz-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("broker.log"))?;
        let mut cmd = Command::new(binary);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--log-level", "warn"])
            .env("WARREN_MANAGEMENT_ENABLED", "false")
            .env("WARREN_PROMETHEUS_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut broker = Broker {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: Some(child),
            dir: Some(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(broker.addr).is_err() {
            if let Some(why) = broker.died() {
                bail!("the broker exited at start: {why}");
            }
            if Instant::now() > deadline {
                bail!("the broker did not listen within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(broker)
    }

    /// A broker someone else runs.
    pub fn external(addr: SocketAddr) -> Broker {
        Broker {
            addr,
            child: None,
            dir: None,
        }
    }

    /// Its process id, when it is ours.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Why the broker is gone, if it is.
    pub fn died(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// Resident memory in bytes (`VmRSS`), when it is ours and Linux shows it.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line
            .trim_start_matches("VmRSS:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Open file descriptors, when it is ours.
    pub fn open_fds(&self) -> Option<usize> {
        let dir = std::fs::read_dir(format!("/proc/{}/fd", self.pid()?)).ok()?;
        Some(dir.count())
    }

    /// Lines of its log that report a panic.
    pub fn panics(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("broker.log"))
            .map(|log| {
                log.lines()
                    .filter(|l| l.contains("panicked"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops our broker (SIGKILL: there is nothing to keep) and removes its directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
