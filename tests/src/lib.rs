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

/// `shop` served on a free loopback port, and an agent's default configuration that orders
/// from it.
pub async fn serve_shop(
    shop: &replenish_sim::shop::SandboxShop,
) -> anyhow::Result<(
    replenish_sim::shop::ShopServer,
    replenish_agent::config::AgentConfig,
)> {
    let server = shop
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
        .await?;
    let mut config = replenish_agent::config::AgentConfig::default();
    config.commerce.url = server.url();
    Ok((server, config))
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

/// Whether a test may go on, given what its real peer lacks here (`None`: nothing). A lack
/// fails the test in CI, where `.ci/run` installs every peer; elsewhere the skip is said where
/// `cargo test` shows it and the test returns.
#[allow(clippy::print_stdout)] // the skip is said where cargo test shows it
pub fn peer_ready(missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    assert!(!in_ci(), "CI=true but {why}");
    println!("SKIPPED: {why}");
    false
}

/// What of `programs` is not on the PATH, with the Debian packages that bring them.
pub fn programs_missing(programs: &[&str], packages: &str) -> Option<String> {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (apt-get install {packages})",
            missing.join(", ")
        )
    })
}

/// Mosquitto, with `config` added to its configuration in `dir`, on a free loopback port;
/// `None` (the test is skipped, see [`peer_ready`]) when it or one of `clients` is not
/// installed.
pub fn mosquitto_or_skip(dir: &Path, config: &str, clients: &[&str]) -> Option<Mosquitto> {
    let programs: Vec<&str> = std::iter::once("mosquitto")
        .chain(clients.iter().copied())
        .collect();
    if !peer_ready(programs_missing(&programs, "mosquitto mosquitto-clients")) {
        return None;
    }
    match replenish_sim::mosquitto::start_on_free_port(dir, config) {
        Ok(mosquitto) => Some(mosquitto),
        Err(error) => panic!("Mosquitto did not start: {error}"),
    }
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
