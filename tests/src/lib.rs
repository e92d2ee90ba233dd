//! Helpers for whole-system tests: running Mosquitto and the doc's example commands.

use std::path::{Path, PathBuf};

pub mod fed;
pub mod home_assistant;
pub mod vendure;

pub use replenish_sim::mosquitto::{Mosquitto, MosquittoError};

/// Starts Mosquitto on loopback `port`, with its configuration in `dir`, and waits until it
/// accepts connections (it takes milliseconds; bounded at 5 s).
pub fn start_mosquitto(dir: &Path, port: u16) -> Result<Mosquitto, MosquittoError> {
    replenish_sim::mosquitto::start(dir, port, "")
}

/// Starts Mosquitto on a free loopback port (tried again on another if the port is taken
/// before Mosquitto binds it); [`Mosquitto::port`] tells which.
pub fn start_mosquitto_on_free_port(dir: &Path) -> Result<Mosquitto, MosquittoError> {
    replenish_sim::mosquitto::start_on_free_port(dir, "")
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

/// Lives `world` an hour at a time until its agent proposes an order, at most 30 simulated days;
/// that order.
pub async fn until_proposed(
    world: &mut replenish_sim::world::World,
) -> anyhow::Result<replenish_agent::engine::order::Order> {
    use replenish_agent::engine::order::OrderState;
    let handle = world.handle()?;
    for _ in 0..24 * 30 {
        let now = world.clock_now();
        world
            .run_until(now + replenish_agent::clock::HOUR_MS, |_| {})
            .await?;
        let proposed = handle
            .read(|engine, _| {
                engine
                    .orders()
                    .find(|o| o.state == OrderState::Proposed)
                    .cloned()
            })
            .await?;
        if let Some(order) = proposed {
            return Ok(order);
        }
    }
    anyhow::bail!("the agent proposed no order within 30 days")
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
