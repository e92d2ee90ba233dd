//! `replenish-agent`: the household's edge daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use replenish_agent::clock::SystemClock;
use replenish_agent::config::AgentConfig;
use replenish_agent::{Agent, AgentOptions};

/// The replenish edge agent: watches appliances' consumables and reorders them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file; environment variables REPLENISH_SECTION__KEY override it.
    #[arg(long, short, env = "REPLENISH_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_default_config {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", AgentConfig::default_toml());
        }
        return Ok(());
    }
    replenish_agent::telemetry::init_logging("info,rumqttd=off");
    let config = AgentConfig::load(args.config.as_deref()).context("loading the configuration")?;
    let options = AgentOptions {
        clock: Arc::new(SystemClock),
        store: None,
        commerce: None,
        tick_every: Some(Duration::from_secs(60)),
    };
    let agent = Agent::start(&config, options)
        .await
        .context("starting the agent")?;
    tracing::info!(household = %config.household.id, http = %agent.http_addr(), "agent running");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    agent.shutdown().await;
    Ok(())
}
