//! A real Vendure shop for tests: `tests/vendure/server.js` (install with
//! `npm ci --prefix tests/vendure`) started on a free loopback port, plus plain GraphQL clients
//! for what a test does besides the adapter: a customer's own calls (to leave a half-built
//! order behind, as a crashed agent would) and the shop's staff actions through the Admin API
//! (ship, deliver, cancel, restock).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use replenish_commerce::vendure::{AUTH_TOKEN_HEADER, Address, CHANNEL_HEADER, VendureAccount};
use serde_json::{Value, json};

/// A running test shop. Dropping it closes the server's stdin, which stops it.
#[derive(Debug)]
pub struct VendureServer {
    _child: Child,
    /// The Shop API's URL.
    pub shop_api: String,
    /// The Admin API's URL.
    pub admin_api: String,
    /// The default channel's token.
    pub channel_token: String,
}

/// The test server's directory.
pub fn server_dir() -> PathBuf {
    crate::repo_root().join("tests/vendure")
}

/// Why the Vendure tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !server_dir().join("node_modules/@vendure/core").exists() {
        return Some("Vendure is not installed: run npm ci --prefix tests/vendure".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    None
}

impl VendureServer {
    /// Starts a server on a fresh database (seeded with the demo catalog, a delivery and a
    /// click-and-collect method, an auto-settling payment) and waits for its ready line.
    pub fn start() -> anyhow::Result<Self> {
        let mut child = Command::new("node")
            .arg(server_dir().join("server.js"))
            .env("PORT", "0")
            .env("VENDURE_EXIT_ON_STDIN_EOF", "1")
            .env("VENDURE_LOG_LEVEL", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node tests/vendure/server.js")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Cold start with seeding takes about 5 s; a loaded CI machine is slower.
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| anyhow!("the Vendure test server did not get ready in 120 s"))?;
        let ready: Value = serde_json::from_str(&line)
            .with_context(|| format!("the server's ready line {line:?}"))?;
        let text = |key: &str| -> anyhow::Result<String> {
            ready
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no {key} in the ready line {line:?}"))
        };
        Ok(Self {
            shop_api: text("shop_api")?,
            admin_api: text("admin_api")?,
            channel_token: text("channel_token")?,
            _child: child,
        })
    }

    /// One server for the whole test binary, started on first use. Tests share it and keep
    /// out of each other's way with customer accounts of their own.
    pub fn shared() -> anyhow::Result<&'static VendureServer> {
        static SERVER: OnceLock<Result<VendureServer, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| VendureServer::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    /// Registers a new customer account (it can log in at once) and returns it as the agent's
    /// account settings.
    pub async fn new_customer(&self, name: &str) -> anyhow::Result<VendureAccount> {
        let email = format!("{name}-{}@example.com", unique());
        let password = "test-password".to_string();
        let mut customer = Gql::new(&self.shop_api, &self.channel_token);
        let data = customer
            .call(
                "mutation Register($input: RegisterCustomerInput!) { \
                   registerCustomerAccount(input: $input) { __typename \
                   ... on ErrorResult { errorCode message } } }",
                json!({ "input": { "emailAddress": email, "password": password,
                                   "firstName": name, "lastName": "Test" } }),
            )
            .await?;
        if data.pointer("/registerCustomerAccount/__typename") != Some(&json!("Success")) {
            bail!("registering {email}: {data}");
        }
        Ok(VendureAccount {
            channel_token: Some(self.channel_token.clone()),
            email,
            password,
            payment_method: "auto-settle".into(),
            address: Address {
                full_name: format!("{name} Test"),
                street: "Musterstraße 5".into(),
                city: "Berlin".into(),
                postal_code: "10117".into(),
                country_code: "DE".into(),
            },
        })
    }

    /// A staff member logged in to the Admin API.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        let mut gql = Gql::new(&self.admin_api, &self.channel_token);
        let data = gql
            .call(
                "mutation { login(username: \"superadmin\", password: \"superadmin\") { \
                   __typename ... on ErrorResult { errorCode message } } }",
                json!({}),
            )
            .await?;
        if data.pointer("/login/__typename") != Some(&json!("CurrentUser")) {
            bail!("admin login: {data}");
        }
        Ok(Admin { gql })
    }
}

fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A plain GraphQL client with a session token.
#[derive(Debug)]
pub struct Gql {
    client: reqwest::Client,
    url: String,
    channel: String,
    token: Option<String>,
}

impl Gql {
    /// A client of `url` on `channel`.
    pub fn new(url: &str, channel: &str) -> Self {
        replenish_commerce::ensure_crypto_provider();
        Self {
            client: reqwest::Client::new(),
            url: url.into(),
            channel: channel.into(),
            token: None,
        }
    }

    /// Sends a document; the answer's `data`, or an error with the GraphQL errors.
    pub async fn call(&mut self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .post(&self.url)
            .header(CHANNEL_HEADER, &self.channel)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        if let Some(token) = response.headers().get(AUTH_TOKEN_HEADER) {
            self.token = Some(token.to_str()?.to_string());
        }
        let answer: Value = response.json().await?;
        if let Some(errors) = answer.get("errors") {
            bail!("GraphQL errors: {errors}");
        }
        answer.get("data").cloned().context("no data")
    }

    /// Logs in to the Shop API as `account`.
    pub async fn login(&mut self, account: &VendureAccount) -> anyhow::Result<()> {
        let data = self
            .call(
                "mutation Login($u: String!, $p: String!) { login(username: $u, password: $p) { \
                   __typename ... on ErrorResult { errorCode message } } }",
                json!({ "u": account.email, "p": account.password }),
            )
            .await?;
        if data.pointer("/login/__typename") != Some(&json!("CurrentUser")) {
            bail!("login: {data}");
        }
        Ok(())
    }
}

/// Shop staff, through the Admin API.
#[derive(Debug)]
pub struct Admin {
    gql: Gql,
}

impl Admin {
    /// The order's id and its lines (line id, SKU, quantity).
    async fn order(&mut self, code: &str) -> anyhow::Result<(String, Vec<(String, String, u64)>)> {
        let data = self
            .gql
            .call(
                "query($code: String!) { orders(options: { filter: { code: { eq: $code } } }) { \
                   items { id lines { id quantity productVariant { sku } } } } }",
                json!({ "code": code }),
            )
            .await?;
        let order = data
            .pointer("/orders/items/0")
            .with_context(|| format!("no order {code}"))?;
        let id = order["id"].as_str().context("order id")?.to_string();
        let lines = order["lines"]
            .as_array()
            .context("lines")?
            .iter()
            .map(|l| {
                (
                    l["id"].as_str().unwrap_or_default().to_string(),
                    l["productVariant"]["sku"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    l["quantity"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        Ok((id, lines))
    }

    /// Sends everything in one fulfilment; its id.
    pub async fn fulfil(&mut self, code: &str) -> anyhow::Result<String> {
        let (_, lines) = self.order(code).await?;
        let lines: Vec<Value> = lines
            .iter()
            .map(|(id, _, quantity)| json!({ "orderLineId": id, "quantity": quantity }))
            .collect();
        let data = self
            .gql
            .call(
                "mutation($lines: [OrderLineInput!]!) { addFulfillmentToOrder(input: { \
                   lines: $lines, handler: { code: \"manual-fulfillment\", arguments: [ \
                   { name: \"method\", value: \"Courier\" }, \
                   { name: \"trackingCode\", value: \"T-1\" }] } }) { __typename \
                   ... on Fulfillment { id } ... on ErrorResult { errorCode message } } }",
                json!({ "lines": lines }),
            )
            .await?;
        data.pointer("/addFulfillmentToOrder/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("fulfilment of {code}: {data}"))
    }

    /// Moves a fulfilment to `Shipped` or `Delivered`.
    pub async fn move_fulfilment(&mut self, id: &str, state: &str) -> anyhow::Result<()> {
        let data = self
            .gql
            .call(
                "mutation($id: ID!, $state: String!) { transitionFulfillmentToState(id: $id, \
                   state: $state) { __typename ... on ErrorResult { errorCode message } } }",
                json!({ "id": id, "state": state }),
            )
            .await?;
        if data.pointer("/transitionFulfillmentToState/__typename") != Some(&json!("Fulfillment")) {
            bail!("fulfilment {id} to {state}: {data}");
        }
        Ok(())
    }

    /// Cancels the whole order, or `quantity` of the line holding `sku`.
    pub async fn cancel(&mut self, code: &str, part: Option<(&str, u64)>) -> anyhow::Result<()> {
        let (id, lines) = self.order(code).await?;
        let lines = part.map(|(sku, quantity)| {
            lines
                .iter()
                .filter(|(_, s, _)| s == sku)
                .map(|(line, _, _)| json!({ "orderLineId": line, "quantity": quantity }))
                .collect::<Vec<_>>()
        });
        let data = self
            .gql
            .call(
                "mutation($id: ID!, $lines: [OrderLineInput!]) { cancelOrder(input: { \
                   orderId: $id, lines: $lines, reason: \"shop test\", cancelShipping: true }) { \
                   __typename ... on ErrorResult { errorCode message } } }",
                json!({ "id": id, "lines": lines }),
            )
            .await?;
        if data.pointer("/cancelOrder/__typename") != Some(&json!("Order")) {
            bail!("cancelling {code}: {data}");
        }
        Ok(())
    }

    /// Sets the stock on hand of the variant with `sku`.
    pub async fn set_stock(&mut self, sku: &str, stock: u64) -> anyhow::Result<()> {
        let data = self
            .gql
            .call(
                "query($sku: String!) { productVariants(options: { filter: { sku: { eq: $sku } } }) \
                   { items { id } } }",
                json!({ "sku": sku }),
            )
            .await?;
        let id = data
            .pointer("/productVariants/items/0/id")
            .and_then(Value::as_str)
            .with_context(|| format!("no variant {sku}"))?
            .to_string();
        self.gql
            .call(
                "mutation($id: ID!, $stock: Int!) { updateProductVariants(input: [{ id: $id, \
                   stockOnHand: $stock }]) { id } }",
                json!({ "id": id, "stock": stock }),
            )
            .await?;
        Ok(())
    }
}
