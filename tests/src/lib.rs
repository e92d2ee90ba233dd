//! Helpers for whole-system tests: running Mosquitto and the doc's example commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Mosquitto process, killed when dropped.
pub struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// Starts Mosquitto on loopback `port`, with its configuration in `dir`, and waits until it
/// accepts connections (it takes milliseconds; bounded at 5 s).
pub fn start_mosquitto(dir: &Path, port: u16) -> Result<Mosquitto, MosquittoError> {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )?;
    let mosquitto = Mosquitto(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(mosquitto);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(MosquittoError::NotListening(port))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `mosquitto_pub` command lines of `docs/protocol.md`, in order.
pub fn doc_mosquitto_pub_lines() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_root().join("docs/protocol.md")).unwrap_or_default();
    doc.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("mosquitto_pub "))
        .map(str::to_string)
        .collect()
}

/// Splits a shell line into words, honouring single quotes (all the doc's lines need).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Whether a program is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// True when running in CI, where a missing tool is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_keep_quoted_json_whole() {
        let words = shell_words("mosquitto_pub -t a/b -m '{\"x\": 1}'");
        assert_eq!(words, ["mosquitto_pub", "-t", "a/b", "-m", "{\"x\": 1}"]);
    }

    #[test]
    fn the_doc_has_the_two_commands() {
        assert_eq!(doc_mosquitto_pub_lines().len(), 2);
    }
}
