//! `replenish-sim`: the demo, the sandbox shop on its own, and (later) benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use replenish_agent::clock::{DAY_MS, SystemClock};
use replenish_agent::engine::ApprovalMode;
use replenish_sim::demo::{self, DemoOptions};
use replenish_sim::shop::{SandboxShop, ShopConfig};

/// Simulated households and a sandbox shop for replenish.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the embedded broker, the agent, the sandbox shop and one household in this process.
    Demo {
        /// Simulated days.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// At most this many simulated seconds per real second (0: as fast as possible).
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
        /// Seed of the household's habits and the sensors' noise.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Approval mode of the agent.
        #[arg(long, value_enum, default_value = "auto")]
        approval: Approval,
        /// Where the agent keeps its data (default: a new temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Also write the summary as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Runs only the sandbox shop, on the wall clock, for an agent of your own.
    Shop {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        /// Delivery time in days.
        #[arg(long, default_value_t = 2.0)]
        lead_time_days: f64,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Approval {
    Auto,
    Manual,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    replenish_agent::telemetry::init_logging("warn,rumqttd=off");
    match args.command {
        Command::Demo {
            days,
            speed,
            seed,
            approval,
            data_dir,
            json,
        } => {
            let options = DemoOptions {
                days,
                speed,
                seed,
                approval: match approval {
                    Approval::Auto => ApprovalMode::Auto,
                    Approval::Manual => ApprovalMode::Manual,
                },
                data_dir,
                progress: true,
            };
            let mut stdout = std::io::stdout();
            let summary = demo::run(options, &mut stdout).await?;
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&summary)?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Shop {
            listen,
            lead_time_days,
        } => {
            let config = ShopConfig {
                lead_time_ms: (lead_time_days * DAY_MS as f64) as u64,
                ..ShopConfig::default()
            };
            let shop = SandboxShop::new(config, Arc::new(SystemClock));
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let server = shop.spawn(listener).await?;
            tracing::info!(url = %server.url(), "sandbox shop running; Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
            server.shutdown().await?;
        }
    }
    Ok(())
}
