//! `replenish-agent`: the household's edge daemon, and its console commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use replenish_agent::auth::{hash_token, new_token};
use replenish_agent::clock::{Clock, SystemClock};
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::household::{Actor, Role};
use replenish_agent::engine::{Engine, Event};
use replenish_agent::store::{self, SledStore, Store};
use replenish_agent::{Agent, AgentOptions};

// jemalloc instead of glibc's malloc: sled copies a node (about 9 KB) on every insert, and under
// that churn glibc's malloc and free took a tenth of the agent's CPU (bench ingest: 0.6-0.7 of
// the null subscriber's rate with glibc, 0.9-1.0 with jemalloc, on the machine of 2026-12-04).
// Its settings are in .cargo/config.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc's thread caches are off but for the runtime's threads (`thread_cache_on`), which carry
// every message. A thread's cache is trimmed only when that thread allocates, so the caches of
// sled's eight I/O and flusher threads, idle most of the time, kept what they once held: about
// 5 MiB of a 1,000-device agent's 29 (bench ingest, 2026-12-06). CPU per message measured the
// same as with caches on every thread, within noise; with none at all, a tenth more. jemalloc
// reads this before its first allocation, after the settings compiled in (.cargo/config.toml)
// and before `_RJEM_MALLOC_CONF` from the environment.
#[allow(unsafe_code, non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &u8 = &b"tcache:false\0"[0];

/// Turns jemalloc's thread cache on for the calling thread (the runtime's workers and blocking
/// threads).
#[allow(unsafe_code)]
fn thread_cache_on() {
    // SAFETY: `thread.tcache.enabled` is a bool (jemalloc(3), "MALLCTL NAMESPACE"), the type
    // written, and the name ends in NUL.
    let enabled = unsafe { tikv_jemalloc_ctl::raw::write(b"thread.tcache.enabled\0", true) };
    if let Err(error) = enabled {
        // Slower allocation on this thread, nothing worse.
        tracing::warn!(%error, "jemalloc's thread cache could not be turned on");
    }
}

/// The replenish edge agent: watches appliances' consumables and reorders them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file; environment variables REPLENISH_SECTION__KEY override it.
    #[arg(long, short, env = "REPLENISH_CONFIG_FILE", global = true)]
    config: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check a configuration file: its syntax, keys, types and values, each problem with its
    /// line. Exits 0 when the file is good, 1 when not.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Save a copy of the whole store: from the running agent (`--url` and an owner's
    /// `--token`), or, with the agent stopped, from its data directory.
    Backup {
        /// Where to write the copy (JSON).
        #[arg(long)]
        to: PathBuf,
        /// The running agent's address (`http://127.0.0.1:8080`).
        #[arg(long)]
        url: Option<String>,
        /// An owner's API token, for `--url`.
        #[arg(long, env = "REPLENISH_TOKEN")]
        token: Option<String>,
    },
    /// Write a backup into an empty data directory (the agent stopped); a backup from a newer
    /// version is refused.
    Restore {
        /// The backup.
        #[arg(long)]
        from: PathBuf,
    },
    /// Write the household's history (orders, deliveries, levels, audit) as JSON for the
    /// household to keep: from the running agent (`--url`, `--token`) or its data directory.
    Export {
        /// Where to write it.
        #[arg(long)]
        json: PathBuf,
        /// The running agent's address.
        #[arg(long)]
        url: Option<String>,
        /// An owner's API token, for `--url`.
        #[arg(long, env = "REPLENISH_TOKEN")]
        token: Option<String>,
    },
    /// Manage the household's members (with the agent stopped: it holds the store's lock).
    Household {
        #[command(subcommand)]
        command: HouseholdCommand,
    },
}

#[derive(Debug, Subcommand)]
enum HouseholdCommand {
    /// Add a member and print their API token, once.
    AddMember {
        /// Their name, unique in the household.
        name: String,
        /// `owner` (changes rules, members, devices) or `member` (approves orders).
        #[arg(long, default_value = "member")]
        role: Role,
    },
    /// List the members.
    Members,
    /// Remove a member by id (m-000002); their token stops working.
    RemoveMember {
        /// The member's id.
        id: String,
    },
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(thread_cache_on)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async_main())
}

async fn async_main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_default_config {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", AgentConfig::default_toml());
        }
        return Ok(());
    }
    match args.command.unwrap_or(Command::Run) {
        Command::Run => run(args.config).await,
        Command::CheckConfig { file } => check_config(&file),
        Command::Backup { to, url, token } => {
            let copy = read_backup(args.config, url, token).await?;
            write_json(&to, &copy)
        }
        Command::Restore { from } => restore(args.config, &from),
        Command::Export { json, url, token } => {
            let copy = read_backup(args.config, url, token).await?;
            write_json(&json, &store::backup::history(&copy))
        }
        Command::Household { command } => {
            replenish_agent::telemetry::init_logging("warn");
            household(args.config, command)
        }
    }
}

/// The store's copy: from the running agent when `url` is given, else from the data directory.
async fn read_backup(
    config_file: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
) -> anyhow::Result<store::backup::Backup> {
    if let Some(url) = url {
        let token = token.context("--url needs an owner's --token (or REPLENISH_TOKEN)")?;
        replenish_agent::commerce::ensure_crypto_provider();
        let answer = reqwest::Client::new()
            .get(format!("{}/api/v1/backup", url.trim_end_matches('/')))
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("asking the agent at {url} for a backup"))?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.text().await.unwrap_or_default();
            anyhow::bail!("the agent at {url} answered {status}: {body}");
        }
        return answer.json().await.context("reading the agent's backup");
    }
    let config = AgentConfig::load(config_file.as_deref()).context("loading the configuration")?;
    let store = open_store(
        &config,
        "is the agent running? then use --url and an owner's --token",
    )?;
    store::backup::export(&store).context("reading the store")
}

/// Opens the configured store (it fails while the agent runs: sled locks it); `hint` says what
/// to do then.
fn open_store(config: &AgentConfig, hint: &str) -> anyhow::Result<SledStore> {
    let path = &config.storage.path;
    SledStore::open(path, config.storage.cache_mb << 20)
        .with_context(|| format!("opening the store at {} ({hint})", path.display()))
}

/// Writes `value` as JSON to `path`, readable by its owner only (it may hold token hashes).
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(&mut file, value)
        .with_context(|| format!("writing {}", path.display()))?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// `restore --from FILE` into the configured, empty data directory.
fn restore(config_file: Option<PathBuf>, from: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    let backup: store::backup::Backup = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a backup", from.display()))?;
    let config = AgentConfig::load(config_file.as_deref()).context("loading the configuration")?;
    let path = &config.storage.path;
    let store = open_store(&config, "stop the agent first")?;
    store::backup::restore(&store, &backup)
        .with_context(|| format!("restoring {} into {}", from.display(), path.display()))?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "restored {} records (format {}) into {}",
            backup.tables.values().map(Vec::len).sum::<usize>(),
            backup.format,
            path.display()
        );
    }
    Ok(())
}

/// `check-config FILE`: `FILE: ok`, or `FILE:LINE: key: problem` and exit status 1.
#[allow(clippy::print_stdout, clippy::print_stderr)] // a console command's output
fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    match AgentConfig::check_file(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(())
        }
        Err(problem) => {
            let at = problem.line.map(|l| format!(":{l}")).unwrap_or_default();
            let key = problem
                .key
                .as_ref()
                .map(|k| format!("{k}: "))
                .unwrap_or_default();
            eprintln!("{}{at}: {key}{}", file.display(), problem.message);
            std::process::exit(1);
        }
    }
}

async fn run(config_file: Option<PathBuf>) -> anyhow::Result<()> {
    replenish_agent::telemetry::init_logging("info,rumqttd=off");
    let config = AgentConfig::load(config_file.as_deref()).context("loading the configuration")?;
    let options = AgentOptions {
        clock: Arc::new(SystemClock),
        store: None,
        commerce: None,
        tick_every: Some(Duration::from_secs(60)),
        broker: None,
    };
    let agent = Agent::start(&config, options)
        .await
        .context("starting the agent")?;
    tracing::info!(household = %config.household.id, http = %agent.http_addr(), "agent running");
    let signal = stop_signal().await.context("waiting for a stop signal")?;
    tracing::info!(signal, "shutting down");
    agent.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or, on Unix, SIGTERM (what `systemctl stop` sends): both stop the agent
/// cleanly, flushing its store and saying goodbye to the broker.
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

/// Changes the household through the same engine the daemon runs, on its store.
#[allow(clippy::print_stdout)]
fn household(config_file: Option<PathBuf>, command: HouseholdCommand) -> anyhow::Result<()> {
    let config = AgentConfig::load(config_file.as_deref()).context("loading the configuration")?;
    let store = open_store(
        &config,
        "is the agent running? stop it first, or let an owner add members on the web page's \
         Settings or with POST /api/v1/members",
    )?;
    store::backup::open(&store).context("checking the store's format")?;
    let installation = store::installation_id(&store).context("reading the installation id")?;
    let snapshot = store::load_snapshot(&store).context("reading the store")?;
    let mut engine = Engine::new(config.engine_config(installation)?, snapshot);
    let now = SystemClock.now_ms();
    let event = match command {
        HouseholdCommand::Members => {
            for m in engine.household().members.values() {
                println!("{}\t{}\t{}", m.id, m.role.as_str(), m.name);
            }
            return Ok(());
        }
        HouseholdCommand::RemoveMember { id } => Event::RemoveMember {
            member_id: id,
            by: Actor::Console,
        },
        HouseholdCommand::AddMember { name, role } => {
            let token = new_token()?;
            let event = Event::AddMember {
                name: name.clone(),
                role,
                token_hash: hash_token(&token),
                by: Actor::Console,
            };
            apply(&mut engine, &store, event, now)?;
            println!(
                "Added {name} as {}. Their token (shown only now):",
                role.as_str()
            );
            println!();
            println!("{token}");
            println!();
            println!(
                "Log in at {} or send it as `Authorization: Bearer <token>`.",
                config
                    .http
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.http.listen))
            );
            return Ok(());
        }
    };
    apply(&mut engine, &store, event, now)?;
    println!("done");
    Ok(())
}

fn apply(engine: &mut Engine, store: &dyn Store, event: Event, now: u64) -> anyhow::Result<()> {
    let effects = engine.handle(event, now)?;
    for effect in &effects {
        store::save_effect(store, &|t, k| store::engine_record(engine, t, k), effect)
            .context("saving")?;
    }
    store.flush().context("flushing the store")?;
    Ok(())
}
