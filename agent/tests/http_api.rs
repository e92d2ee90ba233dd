//! The household API and web page over real HTTP on loopback: tokens on every route, roles,
//! expiring approvals, budget and limits, pagination, and the page's login and CSRF checks.
//! The agent runs with a memory store, the memory shop and a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use replenish_agent::auth::{hash_token, new_token};
use replenish_agent::clock::{DAY_MS, HOUR_MS, ManualClock, UnixMs};
use replenish_agent::config::AgentConfig;
use replenish_agent::engine::household::{Actor, Role};
use replenish_agent::engine::{Event, Pairing, Telemetry};
use replenish_agent::store::MemoryStore;
use replenish_agent::{Agent, AgentOptions};
use replenish_commerce::MemoryShop;
use replenish_commerce::{Catalog, Offer};
use replenish_protocol::{Birth, Id, Report, ReportBody, SensorKind, SlotSpec, Status, Unit};
use reqwest::StatusCode;
use serde_json::{Value, json};

const T0: UnixMs = 20_458 * DAY_MS;

struct Household {
    agent: Agent,
    clock: Arc<ManualClock>,
    shop: Arc<MemoryShop>,
    base: String,
    owner: String,
    member: String,
    http: reqwest::Client,
    seq: u32,
}

fn id<T: From<Id>>(s: &str) -> T {
    Id::new(s).unwrap().into()
}

fn catalog() -> Catalog {
    Catalog {
        fulfilment: Vec::new(),
        offers: vec![
            Offer {
                sku: "beans-500".into(),
                name: "Beans 500 g".into(),
                consumable: "coffee_beans".into(),
                pack_size: 500.0,
                unit: Unit::G,
                price: replenish_commerce::Money::new(899, replenish_commerce::Currency::EUR),
                stock: 100,
            },
            Offer {
                sku: "beans-1kg".into(),
                name: "Beans 1 kg".into(),
                consumable: "coffee_beans".into(),
                pack_size: 1000.0,
                unit: Unit::G,
                price: replenish_commerce::Money::new(1899, replenish_commerce::Currency::EUR),
                stock: 100,
            },
        ],
    }
}

impl Household {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(edit: impl FnOnce(&mut AgentConfig)) -> Self {
        replenish_agent::commerce::ensure_crypto_provider();
        let clock = ManualClock::new(T0);
        let shop = Arc::new(MemoryShop::new(catalog()));
        let mut config = AgentConfig::default();
        config.household.pairing = Pairing::Open;
        config.mqtt.embedded = false;
        // Nothing listens there: the MQTT task keeps retrying; telemetry is fed directly.
        config.mqtt.url = "mqtt://127.0.0.1:9".into();
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        edit(&mut config);
        let options = AgentOptions {
            clock: clock.clone(),
            store: Some(Arc::new(MemoryStore::default())),
            commerce: Some(shop.clone()),
            tick_every: None,
            broker: None,
        };
        let agent = Agent::start(&config, options).await.unwrap();
        let base = format!("http://{}", agent.http_addr());
        let mut tokens = Vec::new();
        for (name, role) in [("ann", Role::Owner), ("bob", Role::Member)] {
            let token = new_token().unwrap();
            agent
                .handle()
                .ask(Event::AddMember {
                    name: name.into(),
                    role,
                    token_hash: hash_token(&token),
                    by: Actor::Console,
                })
                .await
                .unwrap();
            tokens.push(token);
        }
        let member = tokens.pop().unwrap();
        let owner = tokens.pop().unwrap();
        // The catalog is fetched at start, in the background.
        for _ in 0..200 {
            if agent
                .handle()
                .read(|e, _| !e.catalogs().is_empty())
                .await
                .unwrap()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let slots = [SlotSpec::level(
            id("beans"),
            id("coffee_beans"),
            Unit::G,
            1000.0,
        )];
        let birth = Birth::new(
            id("coffee-maker"),
            "0.1.0".try_into().unwrap(),
            1,
            slots.into_iter().collect(),
        );
        let birth = Telemetry::Status(Box::new(Status::Online(birth)));
        agent
            .handle()
            .ask(Event::Telemetry {
                device: id("coffee"),
                message: birth,
            })
            .await
            .unwrap();
        Household {
            agent,
            clock,
            shop,
            base,
            owner,
            member,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seq: 0,
        }
    }

    /// Uses 50 g a day from 600 g until the agent wants to order; returns the order id.
    async fn drive_until_order(&mut self) -> String {
        let mut remaining = 600.0;
        for day in 0..14u64 {
            let t = T0 + day * DAY_MS + 8 * HOUR_MS;
            self.clock.set(t);
            self.seq += 1;
            let report = Report {
                boot: 1,
                seq: self.seq,
                ts: t,
                body: ReportBody::Level {
                    slot: id("beans"),
                    remaining,
                },
            };
            self.agent
                .handle()
                .ask(Event::Telemetry {
                    device: id("coffee"),
                    message: Telemetry::Report(report),
                })
                .await
                .unwrap();
            // The daemon's tick, once the slot has had no report for the settling time.
            self.clock
                .set(t + AgentConfig::default().policy.settle_secs * 1000);
            self.agent.handle().ask(Event::Tick).await.unwrap();
            let order = self
                .agent
                .handle()
                .read(|e, _| e.orders().last().map(|o| o.id.to_string()))
                .await
                .unwrap();
            if let Some(order) = order {
                return order;
            }
            remaining -= 50.0;
        }
        panic!("no order within two weeks");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The web page at `path`, as the browser holding `cookie` sees it.
    async fn page(&self, path: &str, cookie: &str) -> String {
        let response = self.http.get(self.url(path)).header("cookie", cookie);
        response.send().await.unwrap().text().await.unwrap()
    }

    /// A form sent from the web page to `path`, with `cookie`.
    async fn form(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let request = self.http.post(self.url(path)).header("cookie", cookie);
        request.form(fields).send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    async fn set_rules(&self, change: impl FnOnce(&mut Value)) {
        let (_, mut rules) = self.get("/api/v1/rules", &self.owner).await;
        change(&mut rules);
        let (status, body) = self.put("/api/v1/rules", &self.owner, rules).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Lets the agent's background placement finish.
    async fn settle(&self) {
        self.agent.handle().settle(0).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_refuses_without_a_valid_token() {
    // Many refusals from one address: not throttled here (another test covers that).
    let h = Household::start_with(|c| c.http.max_failed_logins = 1000).await;
    let routes = [
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/orders"),
        ("GET", "/api/v1/orders/o-000001"),
        ("POST", "/api/v1/orders/o-000001/approve"),
        ("POST", "/api/v1/orders/o-000001/reject"),
        ("POST", "/api/v1/orders/o-000001/snooze"),
        ("GET", "/api/v1/orders/o-000001/options"),
        ("POST", "/api/v1/orders/o-000001/cancel"),
        ("POST", "/api/v1/orders/o-000001/collected"),
        ("GET", "/api/v1/rules"),
        ("PUT", "/api/v1/rules"),
        ("GET", "/api/v1/members"),
        ("POST", "/api/v1/members"),
        ("DELETE", "/api/v1/members/m-000001"),
        ("GET", "/api/v1/devices"),
        ("POST", "/api/v1/devices/coffee/accept"),
        ("DELETE", "/api/v1/devices/coffee"),
        ("GET", "/api/v1/devices/coffee/commands"),
        ("POST", "/api/v1/devices/coffee/commands"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/backup"),
    ];
    for (method, path) in routes {
        let method: reqwest::Method = method.parse().unwrap();
        for token in [None, Some("rpl_not-a-real-token")] {
            let response = h
                .http
                .request(method.clone(), h.url(path))
                .header("content-type", "application/json")
                .bearer_auth(token.unwrap_or_default())
                .body(if token.is_none() { "" } else { "{}" })
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{method} {path}"
            );
        }
    }
    // Open to all; unhealthy here, as no broker listens, and it says so.
    let healthz = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: serde_json::Value = healthz.json().await.unwrap();
    assert_eq!(health["mqtt_connected"], false, "{health}");
    assert_eq!(health["ingest_stalled"], false, "{health}");
    assert_eq!(
        health["problems"][0], "not connected to the MQTT broker",
        "{health}"
    );
    // The web page sends strangers to the login form instead.
    let page = h.http.get(h.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let (status, me) = h.get("/api/v1/me", &h.member).await;
    assert_eq!((status, me["name"].as_str()), (StatusCode::OK, Some("bob")));
    let (status, doc) = h.get("/api/v1/openapi.json", &h.member).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/orders/{id}/approve"].is_object());
    // This household's document names the one currency its rules take.
    let currency = &doc["components"]["schemas"]["Rules"]["properties"]["currency"];
    assert_eq!(currency["enum"], json!(["EUR"]), "{currency}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_decide_orders_but_cannot_change_rules_members_or_devices() {
    let h = Household::start().await;
    let (_, rules) = h.get("/api/v1/rules", &h.member).await;
    let mut changed = rules.clone();
    changed["default_mode"] = json!("off");
    let (status, body) = h.put("/api/v1/rules", &h.member, changed.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = h
        .post(
            "/api/v1/members",
            &h.member,
            json!({"name": "eve", "role": "owner"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.get("/api/v1/members", &h.member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A backup holds every token's hash: owners only.
    let (status, _) = h.get("/api/v1/backup", &h.member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, backup) = h.get("/api/v1/backup", &h.owner).await;
    assert_eq!(status, StatusCode::OK, "{backup}");
    assert_eq!(backup["format"], replenish_agent::store::backup::FORMAT);
    let household = &backup["tables"]["household"];
    assert_eq!(household.as_array().map(Vec::len), Some(1), "{backup}");
    assert!(
        backup["tables"]["meta"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "installation" && r["text"] == true),
        "{backup}"
    );
    let (status, _) = h
        .call(
            reqwest::Method::DELETE,
            "/api/v1/devices/coffee",
            Some(&h.member),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, after) = h.get("/api/v1/rules", &h.member).await;
    assert_eq!(after, rules, "nothing changed");

    // The rules' money is in the household's currency, and says so; a budget written in
    // another currency is refused, not kept as euros.
    assert_eq!(rules["currency"], "EUR", "{rules}");
    let mut francs = rules.clone();
    francs["currency"] = json!("CHF");
    francs["monthly_budget_cents"] = json!(20_000);
    let (status, body) = h.put("/api/v1/rules", &h.owner, francs).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("not CHF"), "{body}");
    let (_, after) = h.get("/api/v1/rules", &h.member).await;
    assert_eq!(after, rules, "nothing changed");

    // The owner may, and the audit trail says who did what.
    let (status, _) = h.put("/api/v1/rules", &h.owner, changed).await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = h
        .post(
            "/api/v1/members",
            &h.owner,
            json!({"name": "cy", "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    let (status, me) = h.get("/api/v1/me", token).await;
    assert_eq!((status, me["name"].as_str()), (StatusCode::OK, Some("cy")));
    let (status, members) = h.get("/api/v1/members", &h.owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members["items"].as_array().unwrap().len(), 3);
    assert_eq!(members["total"], 3);
    assert!(
        members.to_string().find("token").is_none(),
        "no token or hash is ever shown again"
    );
    let (_, page) = h.get("/api/v1/audit?per_page=1", &h.owner).await;
    assert_eq!(page["items"][0]["action"], "add_member");
    assert_eq!(page["items"][0]["who"], "ann (owner)");
    assert_eq!(page["next_page"], 2);
    assert!(page["total"].as_u64().unwrap() >= 4);
    // Removing cy revokes the token at once.
    let id = created["member"]["id"].as_str().unwrap();
    let (status, _) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/members/{id}"),
            Some(&h.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_approval_takes_its_default() {
    let mut h = Household::start().await;
    h.set_rules(|r| {
        r["default_mode"] = json!("approve");
        r["approval_timeout_hours"] = json!(3);
        r["on_expiry"] = json!("order");
    })
    .await;
    let order = h.drive_until_order().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "proposed");
    assert_eq!(view["waiting_for"], "approval");
    assert_eq!(view["default_decision"], "order");
    h.clock.advance(2 * HOUR_MS);
    h.agent.handle().tick().await.unwrap();
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "proposed", "not yet expired");
    assert!(h.shop.orders_by_key().is_empty());
    h.clock.advance(2 * HOUR_MS);
    h.agent.handle().tick().await.unwrap();
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "placed", "{view}");
    assert_eq!(view["decided_by"], "agent");
    assert_eq!(h.shop.orders_by_key().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_and_the_auto_approve_limit_hold() {
    let mut h = Household::start().await;
    // Auto mode, but even one 500 g pack (8.99) exceeds an 8.00 budget: it must wait.
    h.set_rules(|r| r["monthly_budget_cents"] = json!(800))
        .await;
    let order = h.drive_until_order().await;
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "proposed", "{view}");
    assert!(
        view["waiting_because"]
            .as_str()
            .unwrap()
            .contains("monthly budget"),
        "{view}"
    );
    assert!(h.shop.orders_by_key().is_empty());
    // The options side by side: both bags for the same amount, the 500 g packs (what the
    // order holds) cheaper per gram than the 1 kg bag.
    let (status, options) = h
        .get(&format!("/api/v1/orders/{order}/options"), &h.member)
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let listed: Vec<(&str, u64, u64, bool)> = options
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["sku"].as_str().unwrap(),
                o["packs"].as_u64().unwrap(),
                o["total_minor"].as_u64().unwrap(),
                o["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("beans-500", 2, 1798, true), ("beans-1kg", 1, 1899, false)],
        "{options}"
    );
    assert_eq!(options[0]["currency"], "EUR");
    assert_eq!(options[0]["shop"], "shop");
    // Edits are checked: a product of another consumable is refused, nothing changes.
    let (status, body) = h
        .post(
            &format!("/api/v1/orders/{order}/approve"),
            &h.member,
            json!({"sku": "milk-1l"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["status"], 422);
    // A person may approve it anyway, as one 1 kg bag.
    let (status, view) = h
        .post(
            &format!("/api/v1/orders/{order}/approve"),
            &h.member,
            json!({"sku": "beans-1kg", "packs": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    h.settle().await;
    let placed: Vec<_> = h.shop.orders_by_key().into_values().collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].lines[0].sku, "beans-1kg");
    assert_eq!(placed[0].lines[0].quantity, 1);
    let (status, again) = h
        .post(
            &format!("/api/v1/orders/{order}/approve"),
            &h.member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    // A decided order has no options left.
    let (status, body) = h
        .get(&format!("/api/v1/orders/{order}/options"), &h.member)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Not needed after all: the shop is asked to cancel it, and does.
    let (status, view) = h
        .post(
            &format!("/api/v1/orders/{order}/cancel"),
            &h.member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    let (status, body) = h
        .post(
            &format!("/api/v1/orders/{order}/cancel"),
            &h.member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_auto_approve_limit_approve_mode_orders_at_once_and_rejections_teach() {
    let mut h = Household::start().await;
    h.set_rules(|r| {
        r["default_mode"] = json!("approve");
        r["auto_approve_below_cents"] = json!(2000);
    })
    .await;
    let order = h.drive_until_order().await;
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "placed", "{view}");

    let mut h = Household::start().await;
    h.set_rules(|r| r["default_mode"] = json!("approve")).await;
    let order = h.drive_until_order().await;
    let (status, view) = h
        .post(
            &format!("/api/v1/orders/{order}/reject"),
            &h.member,
            json!({"reason": "still_have_some", "note": "a bag in the cupboard"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "cancelled");
    let (status, body) = h
        .post(
            &format!("/api/v1/orders/{order}/reject"),
            &h.member,
            json!({"reason": "because"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // No new proposal for 72 h, however low the beans go.
    h.clock.advance(48 * HOUR_MS);
    h.agent.handle().tick().await.unwrap();
    let (_, open) = h.get("/api/v1/orders?state=proposed", &h.member).await;
    assert_eq!(open["total"], 0, "{open}");
    h.clock.advance(25 * HOUR_MS);
    h.agent.handle().tick().await.unwrap();
    let (_, open) = h.get("/api/v1/orders?state=proposed", &h.member).await;
    assert_eq!(open["total"], 1, "{open}");
}

/// The page's login takes a token and its CSRF cookie; forms need the session's CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_logs_in_with_a_token_and_refuses_forms_without_csrf() {
    let mut h = Household::start().await;
    h.set_rules(|r| r["default_mode"] = json!("approve")).await;
    let order = h.drive_until_order().await;

    let login = h.http.get(h.url("/login")).send().await.unwrap();
    let login_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let html = login.text().await.unwrap();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    // Without the cookie the login form's token does not count.
    let refused = h
        .http
        .post(h.url("/login"))
        .form(&[("token", h.member.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let wrong = h
        .form(
            "/login",
            &login_cookie,
            &[("token", "rpl_wrong"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = h
        .form(
            "/login",
            &login_cookie,
            &[("token", h.member.as_str()), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("replenish_session="))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    let session = session.split(';').next().unwrap().to_string();

    let home = h
        .http
        .get(h.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let html = home.text().await.unwrap();
    assert!(
        html.contains(&format!("data-order=\"{order}\"")),
        "the pending order is shown"
    );
    // People read names, not ids.
    assert!(!html.contains("coffee_beans"), "{html}");
    assert!(html.contains("Order 1 kg of Coffee beans"), "{html}");
    // The slot's card names it as people do, says how it is ordered and its level in kg or g.
    assert!(html.contains("<h2>Coffee beans</h2>"), "{html}");
    assert!(html.contains("Coffee · ordered when you approve"), "{html}");
    // A slot no shop sells, that has not reported a level yet, says both.
    let tap = Telemetry::Status(Box::new(Status::Online(Birth {
        model: id("tap"),
        firmware: "0.1.0".try_into().unwrap(),
        boot: 1,
        slots: [SlotSpec {
            id: id("water"),
            consumable: id("tap_water"),
            unit: Unit::Ml,
            capacity: 1500.0,
            sensor: SensorKind::Level,
        }]
        .into_iter()
        .collect(),
        buffer: None,
        usage: None,
    })));
    h.agent
        .handle()
        .ask(Event::Telemetry {
            device: id("kitchen-tap"),
            message: tap,
        })
        .await
        .unwrap();
    let html = h.page("/", &session).await;
    assert!(html.contains("<h2>Tap water</h2>"), "{html}");
    assert!(
        html.contains("Kitchen tap · not bought through the agent"),
        "{html}"
    );
    assert!(
        html.contains("Waiting for the first reading from Kitchen tap."),
        "{html}"
    );
    assert!(
        html.contains("<p class=\"fulfilment\">Delivered by the shop</p>"),
        "the card says where it comes from"
    );
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");

    let approve = format!("/orders/{order}/approve");
    let forged = h.form(&approve, &session, &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "proposed", "a forged form changes nothing");

    // The order's page puts the ways to get it side by side, what the order holds checked.
    let page = h.page(&format!("/orders/{order}"), &session).await;
    assert!(page.contains("Or choose another way"), "{page}");
    assert!(
        page.contains("value=\"shop|beans-500||2\" checked"),
        "the current option is checked: {page}"
    );
    assert!(page.contains("1 × Beans 1 kg, €18.99"), "{page}");
    let approved = h
        .form(
            &approve,
            &session,
            &[("csrf", csrf.as_str()), ("option", "shop|beans-1kg||1")],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    h.settle().await;
    let (_, view) = h.get(&format!("/api/v1/orders/{order}"), &h.member).await;
    assert_eq!(view["state"], "placed", "{view}");
    assert_eq!(
        (&view["sku"], &view["packs"]),
        (&json!("beans-1kg"), &json!(1)),
        "{view}"
    );
    assert_eq!(view["decided_by"], "bob (member)");

    // The audit trail says it in words, the order by its name, linked.
    let audit = h.page("/audit", &session).await;
    assert!(
        audit.contains(&format!(
            "<a href=\"/orders/{order}\">approved Coffee beans from the shop</a>"
        )),
        "{audit}"
    );

    // A member sees the settings but cannot save them.
    let settings = h
        .form(
            "/settings/rules",
            &session,
            &[("csrf", csrf.as_str()), ("default_mode", "off")],
        )
        .await;
    assert_eq!(settings.status(), StatusCode::FORBIDDEN);
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).expect("start marker") + start.len();
    let to = text[from..].find(end).expect("end marker") + from;
    text[from..to].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_pages_through_every_device_once_within_64_kb() {
    let h = Household::start().await;
    // 120 more devices of 8 slots each: far more than one page's bytes.
    for i in 0..120 {
        let slots = (0..8)
            .map(|s| SlotSpec {
                id: id(&format!("slot{s}")),
                consumable: id("coffee_beans"),
                unit: Unit::G,
                capacity: 1000.0,
                sensor: SensorKind::Level,
            })
            .collect();
        let birth = Telemetry::Status(Box::new(Status::Online(Birth {
            model: id("coffee-maker"),
            firmware: "0.1.0".try_into().unwrap(),
            boot: 1,
            slots,
            buffer: None,
            usage: None,
        })));
        h.agent
            .handle()
            .ask(Event::Telemetry {
                device: id(&format!("dev-{i:03}")),
                message: birth,
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/status?limit=200&cursor={c}"),
            None => "/api/v1/status?limit=200".to_string(),
        };
        let response = h
            .http
            .get(h.url(&path))
            .bearer_auth(&h.member)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.bytes().await.unwrap();
        assert!(body.len() <= 64 * 1024, "page of {} bytes", body.len());
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["totals"]["devices"], 121);
        for d in page["devices"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert!(pages > 1, "the byte bound split the list");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen.len(), 121, "every device once");
    assert_eq!(unique.len(), 121);
    for bad in [
        "/api/v1/status?limit=0",
        "/api/v1/status?limit=201",
        "/api/v1/status?cursor=Not%20an%20id",
    ] {
        let (status, _) = h.get(bad, &h.member).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_send_commands_that_wait_for_the_device_s_ack() {
    let h = Household::start().await;
    let tare = json!({"tare": {"slot": "beans"}});
    let (status, _) = h
        .post("/api/v1/devices/coffee/commands", &h.member, tare.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members may not");
    let (status, _) = h
        .post("/api/v1/devices/coffee/commands", &h.owner, tare)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, pending) = h.get("/api/v1/devices/coffee/commands", &h.member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending[0]["command"], "tare", "{pending}");
    assert_eq!(pending[0]["attempts"], 1);
    // The device acknowledges: nothing waits any more.
    let ack = replenish_protocol::Ack {
        id: pending[0]["id"].as_u64().unwrap() as u32,
        ok: true,
        error: None,
    };
    h.agent
        .handle()
        .ask(Event::Telemetry {
            device: id("coffee"),
            message: Telemetry::Ack(ack),
        })
        .await
        .unwrap();
    let (_, pending) = h.get("/api/v1/devices/coffee/commands", &h.member).await;
    assert_eq!(pending, json!([]));
    for (body, expected) in [
        // The device has no such slot: not found, as a device that does not exist.
        (json!({"tare": {"slot": "sugar"}}), StatusCode::NOT_FOUND),
        (
            json!({"time_sync": {"unix_ms": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"report_interval": {"seconds": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, problem) = h
            .post("/api/v1/devices/coffee/commands", &h.owner, body.clone())
            .await;
        assert_eq!(status, expected, "{body} -> {problem}");
    }
    let (status, _) = h
        .post(
            "/api/v1/devices/nobody/commands",
            &h.owner,
            json!({"tare": {"slot": "beans"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_security_headers_and_errors_are_problem_documents() {
    let h = Household::start().await;
    for path in ["/login", "/api/v1/me", "/healthz", "/no-such-page"] {
        let response = h.http.get(h.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains("default-src 'none'"),
            "no script of any origin: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "plain HTTP: no HSTS"
        );
    }
    // The scheme in any case (RFC 9110).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = h
            .http
            .get(h.url("/api/v1/me"))
            .header("authorization", format!("{scheme} {}", h.member))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    // axum's own refusals come as problem documents too.
    let wrong_method = h
        .http
        .delete(h.url("/api/v1/orders"))
        .header("authorization", format!("Bearer {}", h.member))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );
    assert!(wrong_method.headers().get("allow").is_some());
    let huge = h
        .http
        .put(h.url("/api/v1/rules"))
        .header("authorization", format!("Bearer {}", h.owner))
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.headers()["content-type"], "application/problem+json");
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["status"], 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_from_one_address_are_throttled_with_retry_after() {
    let h = Household::start().await;
    for attempt in 0..10 {
        let (status, _) = h.get("/api/v1/me", "rpl_guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let response = h
        .http
        .get(h.url("/api/v1/me"))
        .header("authorization", format!("Bearer {}", h.member))
        .send()
        .await
        .unwrap();
    // Refused before any token is checked, even a good one, until the window ends.
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // The page's login form is throttled the same way.
    let login = h.http.get(h.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK, "the form itself is served");
    let refused = h
        .http
        .post(h.url("/login"))
        .form(&[("token", h.member.as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Household::start_with(|c| c.http.client_timeout_secs = 1).await;
    let addr = h.agent.http_addr();
    let closed_within = |secs: u64, mut stream: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        read.is_ok()
    };
    // Connected, silent.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(5, idle).await, "an idle connection is closed");
    // Half a request head, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(5, slow).await, "a slow head is closed");
    // A keep-alive connection left idle after a request is closed too.
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(5, kept).await,
        "an idle keep-alive connection is closed"
    );
    // And the server still serves.
    let (status, _) = h.get("/api/v1/me", &h.member).await;
    assert_eq!(status, StatusCode::OK);
}

/// Logs in on the page with `token`; returns the session cookie and a CSRF token of the page.
async fn page_session(h: &Household, token: &str) -> (String, String) {
    let login = h.http.get(h.url("/login")).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = login.text().await.unwrap();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    let ok = h
        .form(
            "/login",
            &cookie,
            &[("token", token), ("csrf", csrf.as_str())],
        )
        .await;
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("replenish_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = h.page("/devices", &session).await;
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"");
    (session, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_gives_a_device_a_login_shown_once_and_stored_as_a_hash() {
    let h = Household::start().await;
    let (status, login) = h
        .post("/api/v1/devices/kettle/login", &h.owner, json!(null))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    assert_eq!(login["username"], "kettle");
    let password = login["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 32, "a long random secret: {password}");
    let stored = h
        .agent
        .handle()
        .read(|engine, _| engine.household().device_logins.get("kettle").cloned())
        .await
        .unwrap()
        .expect("the login is kept");
    assert_eq!(
        stored.password_hash,
        replenish_agent::auth::hash_token(&password)
    );
    assert!(
        !format!("{stored:?}").contains(&password),
        "only the hash is kept"
    );

    // Again: a new password.
    let (_, again) = h
        .post("/api/v1/devices/kettle/login", &h.owner, json!(null))
        .await;
    assert_ne!(again["password"], login["password"]);
    // A member who is not an owner may not; a bad id is no device.
    let (status, _) = h
        .post("/api/v1/devices/kettle/login", &h.member, json!(null))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .post("/api/v1/devices/Bad%20Id/login", &h.owner, json!(null))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // On the page: an owner asks for the fridge's login and reads it once.
    let (session, csrf) = page_session(&h, &h.owner).await;
    let page = h
        .form(
            "/devices/login",
            &session,
            &[("csrf", csrf.as_str()), ("device", "fridge")],
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-login=\"fridge\""), "{html}");
    let shown = between(&html, "<code data-password>", "</code>");
    let stored = h
        .agent
        .handle()
        .read(|engine, _| engine.household().device_logins.get("fridge").cloned())
        .await
        .unwrap()
        .expect("the fridge's login is kept");
    assert_eq!(
        stored.password_hash,
        replenish_agent::auth::hash_token(&shown)
    );
    // The audit trail says who gave it, without the password.
    let (_, audit) = h.get("/api/v1/audit", &h.owner).await;
    let text = audit.to_string();
    assert!(text.contains("issue_device_login"), "{text}");
    assert!(!text.contains(&password) && !text.contains(&shown));
}
