//! A Mosquitto broker started for a test or a benchmark, on loopback, killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Mosquitto process, killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why Mosquitto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    /// Its configuration could not be written or it could not be spawned.
    #[error("starting mosquitto: {0}")]
    Spawn(#[from] std::io::Error),
    /// It did not listen in time.
    #[error("mosquitto did not listen on port {0} within 5 s")]
    NotListening(u16),
}

/// The settings docs/operations.md recommends for the agent's broker: no broker-side drop of
/// QoS 1 messages queued for a slow subscriber, a larger in-flight window.
pub const RECOMMENDED: &str = "max_queued_messages 0\nmax_inflight_messages 100\n";

/// Starts Mosquitto on loopback `port` with its configuration (plus `extra` lines) in `dir`,
/// and waits until it accepts connections (milliseconds; bounded at 5 s).
pub fn start(dir: &Path, port: u16, extra: &str) -> Result<Mosquitto, MosquittoError> {
    let conf =
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}");
    start_with(dir, port, &conf)
}

/// Starts Mosquitto with the whole configuration `conf` (written to `dir`), and waits until it
/// accepts connections on loopback `port` (bounded at 5 s).
pub fn start_with(dir: &Path, port: u16, conf: &str) -> Result<Mosquitto, MosquittoError> {
    let path = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(&path, conf)?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mosquitto = Mosquitto { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(mosquitto);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(MosquittoError::NotListening(port))
}
