//! A Mosquitto broker started for a test or a benchmark, on loopback, killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use replenish_agent::broker::packet::Version;

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
    /// It stopped before listening (its port taken, its configuration refused).
    #[error("mosquitto exited before listening on port {port}: {status}")]
    Exited {
        /// The port it was to listen on.
        port: u16,
        /// How it ended.
        status: std::process::ExitStatus,
    },
}

/// Whether an MQTT broker answers on loopback `port`: a CONNECT gets a CONNACK (accepted or
/// not). A bare TCP connect is not enough: whatever took the port would pass for Mosquitto.
fn answers_mqtt(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    replenish_agent::broker::probe_mqtt(addr, Version::V4, None).is_some()
}

/// Attempts [`start_on_free_port`] makes.
const FREE_PORT_ATTEMPTS: usize = 5;

/// Starts Mosquitto (with `extra` configuration lines) on a free loopback port and waits until
/// it listens. A port is free when picked, but Mosquitto binds it a moment later and another
/// socket may take it meanwhile: Mosquitto then exits, and another port is tried (up to five).
pub fn start_on_free_port(dir: &Path, extra: &str) -> Result<Mosquitto, MosquittoError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        match start(dir, port, extra) {
            Err(MosquittoError::Exited { .. }) if attempt < FREE_PORT_ATTEMPTS => continue,
            started => return started,
        }
    }
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
    let mut mosquitto = Mosquitto { child, port };
    for _ in 0..100 {
        if let Some(status) = mosquitto.child.try_wait()? {
            return Err(MosquittoError::Exited { port, status });
        }
        if answers_mqtt(port) {
            return Ok(mosquitto);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(MosquittoError::NotListening(port))
}
