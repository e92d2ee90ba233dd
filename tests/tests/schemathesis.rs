//! Schemathesis (from PyPI, pinned in `tests/schemathesis/requirements.txt`) against the agent's
//! API and the sandbox shop's, each as it runs: requests generated from their OpenAPI documents
//! (examples, coverage of every documented constraint, fuzzing), and every check: status codes
//! and content types as documented, schema-valid requests accepted and schema-violating ones
//! refused, responses matching their schemas, no 5xx.
//!
//! Left out: schemathesis's stateful phase, which chains calls and, given an owner's token,
//! adds an owner and removes the one whose token it uses (the API allows that) and then cannot
//! go on; and, for the shop only, the check that schema-valid orders are accepted, since the
//! shop refuses unknown products and missing stock with documented `422`s that no schema of a
//! changing catalog can express.
//!
//! Needs `tests/schemathesis/.venv` (`.ci/run` makes it). Skips, saying so, when it is missing,
//! except in CI (`CI=true`), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use replenish_agent::auth::{hash_token, new_token};
use replenish_agent::clock::{DAY_MS, ManualClock};
use replenish_agent::engine::Event;
use replenish_agent::engine::household::{Actor, Role};
use replenish_protocol::Unit;
use replenish_sim::shop::{SandboxShop, ShopConfig};
use replenish_tests::fed::FedAgent;
use replenish_tests::peer_ready;

fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis/.venv/bin/schemathesis")
        })
}

/// Runs schemathesis on `schema` with `extra` arguments; panics with its report on failure.
async fn run(schema: String, extra: Vec<String>) {
    // Schemathesis keeps a cache in its working directory: a scratch one, not the tree.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(schemathesis())
            .current_dir(scratch.path())
            .args(["run", &schema, "--checks", "all"])
            .args(["--max-examples", "30", "--generation-deterministic"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(extra)
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{}", report.lines().last().unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_api_and_the_sandbox_shop_api_hold_to_their_openapi_documents() {
    let missing = (!schemathesis().exists()).then(|| {
        format!(
            "no {}; python3 -m venv tests/schemathesis/.venv && tests/schemathesis/.venv/bin/pip install -r tests/schemathesis/requirements.txt",
            schemathesis().display()
        )
    });
    if !peer_ready(missing) {
        return;
    }
    let clock = ManualClock::new(20_458 * DAY_MS);
    let shop = SandboxShop::new(ShopConfig::default(), clock.clone());
    let (server, mut config) = replenish_tests::serve_shop(&shop).await.unwrap();
    // Schemathesis tries requests without and with wrong tokens by the hundred.
    config.http.max_failed_logins = 1_000_000;
    let beans = ("coffee", "beans", "coffee_beans", Unit::G, 1000.0);
    let household = FedAgent::start(config, clock.clone(), None, 1, beans)
        .await
        .unwrap();
    let token = new_token().unwrap();
    household
        .handle()
        .ask(Event::AddMember {
            name: "tester".into(),
            role: Role::Owner,
            token_hash: hash_token(&token),
            by: Actor::Console,
        })
        .await
        .unwrap();
    let agent = format!("http://{}/api/v1/openapi.json", household.agent.http_addr());
    run(
        agent,
        vec!["--header".into(), format!("Authorization: Bearer {token}")],
    )
    .await;
    let sandbox = format!("http://{}/openapi.json", server.addr());
    run(
        sandbox,
        vec!["--exclude-checks".into(), "positive_data_acceptance".into()],
    )
    .await;
    household.agent.shutdown().await;
}
