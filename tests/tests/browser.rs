//! A person approves a reorder in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/browser/approve.mjs`), logs in to the agent's page on a phone-sized screen, sees the
//! pending reorder of a simulated household, approves it, and the sandbox shop receives it.
//!
//! Needs `chromium` and `npm ci --prefix tests/browser` (`.ci/run` does both). Skips, saying so,
//! when either is missing, except in CI (`CI=true`), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use replenish_agent::clock::HOUR_MS;
use replenish_agent::engine::household::Mode;
use replenish_agent::engine::order::OrderState;
use replenish_sim::world::{World, WorldConfig};

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !chromium().exists() {
        return Some(format!("no Chromium at {}", chromium().display()));
    }
    if !script_dir().join("node_modules/playwright-core").exists() {
        return Some("playwright-core not installed: run npm ci --prefix tests/browser".into());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("no node on PATH".into());
    }
    None
}

/// How the page is seen.
#[derive(Clone, Copy)]
enum Screen {
    /// 390 × 844, touch.
    Phone,
    /// 1280 × 900.
    Desktop,
}

impl Screen {
    fn name(self) -> &'static str {
        match self {
            Screen::Phone => "phone",
            Screen::Desktop => "desktop",
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_approves_a_pending_reorder_in_chromium_and_the_shop_receives_it() {
    approve_in_chromium("card", Screen::Phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_desktop_a_member_approves_a_pending_reorder_and_the_shop_receives_it() {
    approve_in_chromium("card", Screen::Desktop).await;
}

/// On a phone, the member opens the waiting order, picks another of the ways side by side
/// (another shop, product or pickup) and approves that one: the order goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_approves_another_option_in_chromium_and_the_order_follows_it() {
    approve_in_chromium("option", Screen::Phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_desktop_a_member_approves_another_option_and_the_order_follows_it() {
    approve_in_chromium("option", Screen::Desktop).await;
}

/// The member chooses click and collect; when the shop has it ready, the page says where, and
/// the member confirms collecting it: the order is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_chooses_pickup_then_confirms_collection_in_chromium() {
    approve_in_chromium("pickup", Screen::Phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_desktop_a_member_chooses_pickup_then_confirms_collection() {
    approve_in_chromium("pickup", Screen::Desktop).await;
}

/// On a phone, the member rejects the waiting order with a reason: nothing reaches a shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_rejects_a_pending_reorder_in_chromium_and_no_shop_gets_it() {
    approve_in_chromium("reject", Screen::Phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_desktop_a_member_rejects_a_pending_reorder_and_no_shop_gets_it() {
    approve_in_chromium("reject", Screen::Desktop).await;
}

/// Runs `approve.mjs` in `mode` against the world's page; its one JSON line.
async fn browse(
    world: &World,
    mode: &'static str,
    screen: Screen,
    order: Option<&str>,
) -> serde_json::Value {
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("browser-{mode}-{}.png", screen.name()));
    let url = world.agent_url().unwrap();
    let token = world.owner_token().to_string();
    let script = script_dir().join("approve.mjs");
    let shot = screenshot.clone();
    let order = order.unwrap_or_default().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(url)
            .arg(token)
            .arg(shot)
            .arg(mode)
            .env("CHROMIUM", chromium())
            .env("VIEWPORT", screen.name())
            .env("ORDER", order)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser script failed:\n{stdout}\n{stderr}"
    );
    assert!(screenshot.exists());
    eprintln!("browser screenshot: {}", screenshot.display());
    serde_json::from_str(stdout.trim()).unwrap()
}

async fn approve_in_chromium(mode: &'static str, screen: Screen) {
    if !replenish_tests::peer_ready(missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = WorldConfig::new(dir.path().join("agent"), 7);
    config.approval = Mode::Approve;
    // The demo's two shops: the waiting order has ways to choose from, pickup among them.
    config.two_shops = matches!(mode, "option" | "pickup");
    let mut world = World::start(config).await.unwrap();
    let handle = world.handle().unwrap();
    // Live until the agent asks for an approval.
    let order = replenish_tests::until_proposed(&mut world)
        .await
        .unwrap()
        .id;

    let result = browse(&world, mode, screen, None).await;
    assert_eq!(
        result["order"],
        order.as_str(),
        "the browser decided the pending order"
    );

    let decided = handle
        .read(move |engine, _| engine.order(&order).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.decided_by.as_deref(), Some("demo (owner)"));
    if mode == "reject" {
        assert_eq!(result["state"], "cancelled");
        assert_eq!(decided.state, OrderState::Cancelled);
        let why = decided.last_error.clone().unwrap_or_default();
        assert!(
            why.contains("not_needed") && why.contains("Bought some at the market"),
            "the reason and note are kept: {why}"
        );
        let at_shops = world
            .shops()
            .iter()
            .flat_map(|shop| shop.orders())
            .filter(|o| o.reference == decided.id)
            .count();
        assert_eq!(at_shops, 0, "a rejected order reaches no shop");
        return;
    }
    assert_eq!(result["state"], "placed");
    if mode == "option" || mode == "pickup" {
        // shop|sku|fulfilment|packs, as the page offered it.
        let chosen = result["chosen"].as_str().expect("an option was chosen");
        let parts: Vec<&str> = chosen.split('|').collect();
        assert_eq!(parts.len(), 4, "{chosen}");
        assert_eq!(
            (decided.shop.as_str(), decided.first_line().sku.as_str()),
            (parts[0], parts[1]),
            "the order follows the chosen option"
        );
        assert_eq!(
            decided.fulfilment.as_ref().map_or("", |f| f.id.as_str()),
            parts[2]
        );
        assert_eq!(decided.first_line().packs.to_string(), parts[3]);
    }
    let at_shop: Vec<_> = world
        .shops()
        .iter()
        .flat_map(|shop| shop.orders())
        .filter(|o| o.reference == decided.id)
        .collect();
    assert_eq!(at_shop.len(), 1, "one shop has the order, once");
    assert_eq!(
        Some(&at_shop[0].idempotency_key),
        Some(&decided.idempotency_key)
    );
    if mode != "pickup" {
        return;
    }
    assert!(
        decided
            .fulfilment
            .as_ref()
            .is_some_and(|f| matches!(f.method, replenish_commerce::Fulfilment::Pickup(_))),
        "collected at a pickup point: {:?}",
        decided.fulfilment
    );
    // Until the shop has it ready (it is collected by itself a day later: stop before).
    let id = decided.id.clone();
    let mut ready = false;
    for _ in 0..24 * 5 {
        let now = world.clock_now();
        world.run_until(now + HOUR_MS, |_| {}).await.unwrap();
        let id = id.clone();
        let state = handle
            .read(move |engine, _| engine.order(&id).map(|o| o.state))
            .await
            .unwrap();
        if state == Some(OrderState::Shipped) {
            ready = true;
            break;
        }
    }
    assert!(ready, "the shop had the order ready within 5 days");
    let result = browse(&world, "collect", screen, Some(&decided.id)).await;
    assert_eq!(result["state"], "delivered");
    let id = decided.id.clone();
    let collected = handle
        .read(move |engine, _| engine.order(&id).cloned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collected.state, OrderState::Delivered);
}
