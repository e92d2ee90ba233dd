//! The agent's configuration: defaults, then a TOML file, then `REPLENISH_*` environment
//! variables; unknown keys are refused and everything is checked once, at start.
//!
//! Environment variables name a key by its section and field joined with `__`, after the
//! `REPLENISH_` prefix: `REPLENISH_MQTT__URL`, `REPLENISH_HOUSEHOLD__APPROVAL=manual`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use replenish_protocol::{HouseholdId, Id};
use serde::{Deserialize, Serialize};

use crate::clock::DAY_MS;
use crate::engine::forecast::linked::{DrivenBy, Measure};
use crate::engine::household;
use crate::engine::shopping::{PickupPreference, ShopInfo};
use crate::engine::{ConsumableSettings, EngineConfig, IngestLimits, Pairing, PolicyConfig};
use crate::wire::Rules;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The household.
    pub household: HouseholdConfig,
    /// The household's rules until an owner changes them (then the stored ones apply), read
    /// as the API reads them.
    pub rules: Rules,
    /// Where pending approvals are announced.
    pub notifications: NotificationsConfig,
    /// Home Assistant MQTT discovery.
    pub home_assistant: HomeAssistantConfig,
    /// The MQTT broker.
    pub mqtt: MqttConfig,
    /// What devices may send, pairing, commands and stall detection.
    pub ingest: IngestConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Storage.
    pub storage: StorageConfig,
    /// The shop, when there is one (`[[shops]]` lists several).
    pub commerce: CommerceConfig,
    /// `[[shops]]`: the shops to buy from, in order of preference on a tie; when empty, the
    /// one shop of `[commerce]`.
    pub shops: Vec<ShopConfig>,
    /// The reorder policy.
    pub policy: PolicySection,
    /// Settings of particular consumables, by consumable id (`[consumables.milk]`).
    pub consumables: std::collections::BTreeMap<String, ConsumableSection>,
    /// `[names]`: what the household calls its consumables and devices, by id
    /// (`coffee_beans = "Espresso beans"`); others are named after their id ("Coffee beans").
    pub names: std::collections::BTreeMap<String, String>,
}

/// `[consumables.<id>]`: overrides of `[policy]` for one consumable (the default overrides
/// nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumableSection {
    /// Highest acceptable chance of running out before an order arrives.
    pub risk: Option<f64>,
    /// Days of use one order should cover.
    pub target_days: Option<f64>,
    /// Most to keep at home, in the slot unit (milk keeps a week; a shelf holds so much).
    pub max_stock: Option<f64>,
    /// Days between uses as the maker recommends (a descaler: 30), for a consumable used
    /// rarely: the forecast starts from it and learns the household's own intervals.
    pub use_every_days: Option<f64>,
    /// Used once per so much of another consumable on the same appliance: a descaler every
    /// 200 brews (`{ consumable = "coffee_beans", every_uses = 200 }`), a water filter every
    /// 150 litres (`{ consumable = "water", every_amount = 150000 }`, in the driver's unit).
    pub driven_by: Option<DrivenBySection>,
    /// Products the household allows (SKUs, the usual one first); when none of them is in
    /// stock anywhere, another product is proposed for approval. Empty: any product.
    #[serde(default)]
    pub products: Vec<String>,
}

/// `driven_by` of `[consumables.<id>]`: exactly one of `every_uses` and `every_amount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivenBySection {
    /// The driving consumable, on the same appliance.
    pub consumable: String,
    /// One use per this many uses of the driver (brews).
    pub every_uses: Option<f64>,
    /// One use per this much of the driver's amount, in its unit (millilitres of water).
    pub every_amount: Option<f64>,
}

impl DrivenBySection {
    /// The engine's form, or what to fix.
    fn settings(&self, consumable: &str) -> Result<DrivenBy, String> {
        let fix = |why: &str| {
            format!(
                "[consumables.{consumable}] driven_by: {why} (for example driven_by = {{ consumable = \"coffee_beans\", every_uses = 200 }})"
            )
        };
        if Id::new(&self.consumable).is_err() {
            return Err(fix(&format!(
                "{:?} is not a consumable id (a-z0-9_-)",
                self.consumable
            )));
        }
        if self.consumable == consumable {
            return Err(fix("a consumable cannot drive itself"));
        }
        let (every, measure) = match (self.every_uses, self.every_amount) {
            (Some(every), None) => (every, Measure::Uses),
            (None, Some(every)) => (every, Measure::Amount),
            _ => return Err(fix("give exactly one of every_uses and every_amount")),
        };
        if !(every.is_finite() && every >= 1.0) {
            return Err(fix("every_uses or every_amount must be at least 1"));
        }
        Ok(DrivenBy {
            consumable: self.consumable.clone(),
            every,
            measure,
        })
    }
}

/// `[household]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HouseholdConfig {
    /// The household id, a topic segment (`a-z0-9_-`).
    pub id: String,
    /// `owner`: a new device waits until an owner accepts it; `open`: accepted at once.
    pub pairing: Pairing,
}

/// `[notifications]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Publish pending approvals on `{prefix}/{household}/agent/approvals`.
    pub mqtt: bool,
    /// URLs to POST pending approvals to; the body is ntfy-compatible text with `Title` and
    /// `Click` headers (an ntfy topic URL works as is).
    pub webhooks: Vec<String>,
    /// Per-request timeout in seconds.
    pub timeout_secs: u64,
}

/// `[home_assistant]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    /// Announce devices and consumables with MQTT discovery.
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// Whether Home Assistant's approve buttons and mode selects act (as an owner).
    pub control: bool,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            mqtt: true,
            webhooks: Vec::new(),
            timeout_secs: 10,
        }
    }
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            discovery: true,
            prefix: "homeassistant".into(),
            control: true,
        }
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Start the embedded broker (rumqttd) on `embedded_listen`; set false to use `url`'s broker.
    pub embedded: bool,
    /// Where the embedded broker listens (MQTT 3.1.1).
    pub embedded_listen: SocketAddr,
    /// Whether the embedded broker also offers MQTT 5 (for devices whose client speaks only v5,
    /// such as rust-mqtt), on `embedded_listen_v5`.
    pub embedded_v5: bool,
    /// Where the embedded broker's MQTT 5 listener listens.
    pub embedded_listen_v5: SocketAddr,
    /// The broker to connect to: `mqtt://host:port`.
    pub url: String,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id; defaults to `replenish-agent-{household}`.
    pub client_id: Option<String>,
    /// Keep-alive in seconds.
    pub keep_alive_secs: u64,
    /// Largest MQTT packet (topic, payload and header), in bytes: the embedded broker closes
    /// the connection of a client that sends a larger one, and the agent neither sends nor
    /// accepts larger ones. Device messages are at most 2048 bytes; the agent's own largest is a
    /// Home Assistant discovery config (about 1 KB per slot, under 16 KB for 8 slots).
    pub max_packet_bytes: usize,
    /// The user name the agent logs in with (to an external broker, or to the embedded one's
    /// gate when `embedded_auth` is on).
    pub username: Option<String>,
    /// The agent's password.
    pub password: Option<String>,
    /// The embedded broker accepts only logins: the agent's (`username`, `password`) and one per
    /// device, issued by an owner (`POST /api/v1/devices/{id}/login`); each device may publish
    /// only to its own topics and subscribe only to its own command topic. Off: anyone who
    /// reaches the port may connect and publish as any device (pairing is then the only gate).
    /// Without `username` and `password` the agent makes itself a login at each start (its own
    /// clients use it; set them to let Home Assistant or other tools in). On by default; an
    /// external broker (`embedded = false`) has its own logins and ignores it.
    pub embedded_auth: bool,
    /// Also listen for MQTT over TLS here (needs `embedded_auth`): appliances on the home
    /// network then send their passwords encrypted. MQTT 3.1.1 and 5 alike.
    pub tls_listen: Option<SocketAddr>,
    /// The TLS certificate chain (PEM), the server's certificate first.
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// An amount above this multiple of its slot's capacity is refused as impossible.
    pub capacity_multiple: f64,
    /// A report stamped more than this ahead of the agent's clock is refused, and the device
    /// is sent the time (`time_sync`).
    pub clock_skew_secs: u64,
    /// New devices waiting for an owner, at most; a new one pushes out the one that asked
    /// longest ago (counted).
    pub max_waiting_devices: usize,
    /// A waiting device asks the household at most this often.
    pub pairing_notice_every_secs: u64,
    /// A command not acknowledged within this is sent again (the wait doubling each time).
    pub command_timeout_secs: u64,
    /// Sends of one command, at most.
    pub command_attempts: u32,
    /// Messages pending and none acknowledged for this long: the ingest is reported stalled
    /// (log, metric, `/healthz` failing).
    pub stall_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            capacity_multiple: 2.0,
            clock_skew_secs: 300,
            max_waiting_devices: 32,
            pairing_notice_every_secs: 600,
            command_timeout_secs: 30,
            command_attempts: 3,
            stall_secs: 30,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the API, the web page, `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// How people reach the web page (links in notifications); `http://{listen}` when unset.
    pub public_url: Option<String>,
    /// A client must send a request's head (also: the next one, on an idle connection), and
    /// the whole request, within this; else it is closed (`408` for a slow body).
    pub client_timeout_secs: u64,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Failed authentications (API tokens, page logins) a client address may make in a minute;
    /// then it is refused (`429`, `Retry-After`) until the minute ends.
    pub max_failed_logins: u32,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// sled page cache in MiB (sled's own default is 1 GiB).
    pub cache_mb: u64,
}

/// `[commerce]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommerceConfig {
    /// The shop's platform: `sandbox` (replenish's commerce API, `replenish-sim shop`) or
    /// `vendure` (a Vendure shop's GraphQL Shop API; see docs/commerce-vendure.md).
    pub platform: ShopPlatform,
    /// The shop's URL: the sandbox shop's base URL, or Vendure's Shop API
    /// (`http://host:3000/shop-api`).
    pub url: String,
    /// Per-request timeout in seconds.
    pub timeout_secs: u64,
    /// First wait before placing a failed order again, in seconds; it doubles per attempt up
    /// to an hour, jittered.
    pub retry_secs: u64,
    /// `[commerce.vendure]`: the household's customer account and address at a Vendure shop.
    pub vendure: Option<replenish_commerce::vendure::VendureAccount>,
}

/// `[[shops]]`: one shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// Its id on orders and in logs: letters, digits, `-` and `_`. Keep it once orders exist.
    pub id: String,
    /// Its name as the household knows it ("Shop A").
    pub name: String,
    /// Its platform.
    #[serde(default)]
    pub platform: ShopPlatform,
    /// Its URL (see `commerce.url`).
    pub url: String,
    /// Per-request timeout in seconds.
    #[serde(default = "default_shop_timeout_secs")]
    pub timeout_secs: u64,
    /// The household's customer account, for Vendure.
    #[serde(default)]
    pub vendure: Option<replenish_commerce::vendure::VendureAccount>,
}

/// What a shop id must be ([`crate::engine::ShopId::parse`]).
const SHOP_ID_RULE: &str = "must be 1 to 64 letters, digits, - and _ (such as shop-a)";

fn default_shop_timeout_secs() -> u64 {
    10
}

/// The shop platforms the agent has an adapter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShopPlatform {
    /// replenish's own commerce API.
    #[default]
    Sandbox,
    /// Vendure's GraphQL Shop API.
    Vendure,
}

/// `[policy]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Expected delivery time in days, before deliveries are observed.
    pub lead_time_days: f64,
    /// Highest acceptable chance of running out before an order arrives (0.02 = 2%).
    pub risk: f64,
    /// Days of use one order should cover.
    pub target_days: f64,
    /// Consumables that would need ordering within this many days join an order being placed
    /// (one delivery, one approval); 0 turns bundling off.
    pub bundle_days: f64,
    /// After a report, seconds a slot waits for the next before the policy decides (by the
    /// tick): several uses in a row (a brunch's eggs) are read together. 0: on every report.
    pub settle_secs: u64,
    /// Click and collect: `never`, `when_sooner` (when it arrives in time for less, or is the
    /// only way to arrive in time) or `prefer`.
    pub pickup: PickupPreference,
    /// An order costing more than this multiple of the usual price per unit waits for
    /// approval, whatever the mode (1.25: 25 % more).
    pub price_guard: f64,
}

impl Default for HouseholdConfig {
    fn default() -> Self {
        Self {
            id: "home".into(),
            pairing: Pairing::Owner,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            embedded_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            embedded_v5: true,
            embedded_listen_v5: SocketAddr::from(([127, 0, 0, 1], 1884)),
            url: "mqtt://127.0.0.1:1883".into(),
            prefix: replenish_protocol::DEFAULT_PREFIX.into(),
            client_id: None,
            keep_alive_secs: 30,
            max_packet_bytes: 64 * 1024,
            username: None,
            password: None,
            embedded_auth: true,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            client_timeout_secs: 10,
            max_connections: 256,
            max_failed_logins: 10,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("replenish-data"),
            cache_mb: 2,
        }
    }
}

impl Default for CommerceConfig {
    fn default() -> Self {
        Self {
            platform: ShopPlatform::Sandbox,
            url: "http://127.0.0.1:8088".into(),
            timeout_secs: 10,
            retry_secs: 60,
            vendure: None,
        }
    }
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            lead_time_days: 2.0,
            risk: 0.02,
            target_days: 14.0,
            bundle_days: 3.0,
            settle_secs: 300,
            pickup: PickupPreference::default(),
            price_guard: 1.25,
        }
    }
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read or has unknown keys or wrong types.
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("invalid configuration: {key}: {problem}")]
    Invalid {
        /// The key, `section.field`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A problem in a configuration file, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct FileProblem {
    /// The line (from 1) it is on, when it is in the file.
    pub line: Option<usize>,
    /// The key (`policy.risk`, `shops[1].url`), when one is to blame.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of `key` (`policy.risk`, `shops[1].url`; the first of `a / b`) in the file, or of
/// the nearest section above it; and whether the key itself is in the file.
fn locate(document: &toml_edit::Document<&str>, text: &str, key: &str) -> (Option<usize>, bool) {
    let key = key.split(" / ").next().unwrap_or(key);
    let mut table: Option<&dyn toml_edit::TableLike> = Some(document.as_table());
    let mut found: Option<std::ops::Range<usize>> = None;
    let segments: Vec<&str> = key.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let Some((k, item)) = table.and_then(|t| t.get_key_value(name)) else {
            return (found.map(|span| line_of(text, span.start)), false);
        };
        let item = match (index, item) {
            (Some(n), toml_edit::Item::ArrayOfTables(array)) => match array.get(n) {
                Some(t) => {
                    found = t.span().or(found);
                    table = Some(t);
                    continue;
                }
                None => return (found.map(|span| line_of(text, span.start)), false),
            },
            (_, item) => item,
        };
        found = k.span().or_else(|| item.span()).or(found);
        if i + 1 < segments.len() {
            table = item.as_table_like();
        }
    }
    (found.map(|span| line_of(text, span.start)), true)
}

/// Where the MQTT broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password, if the agent logs in.
    pub login: Option<(String, String)>,
}

impl AgentConfig {
    /// Loads defaults, then `file` if given, then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, env)
    }

    /// Like [`AgentConfig::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::Config::try_from(&AgentConfig::default())?);
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("REPLENISH_"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("REPLENISH")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let config: AgentConfig = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks a configuration file on its own (the defaults under it, no environment), as
    /// `replenish-agent check-config FILE` does: its syntax, its keys and types, then every
    /// value; the first problem found, with the line it is on.
    pub fn check_file(path: &Path) -> Result<AgentConfig, FileProblem> {
        let text = std::fs::read_to_string(path).map_err(|e| FileProblem {
            line: None,
            key: None,
            message: format!("cannot read it: {e}"),
        })?;
        Self::check_text(&text)
    }

    /// [`AgentConfig::check_file`] on the file's text.
    pub fn check_text(text: &str) -> Result<AgentConfig, FileProblem> {
        let document = toml_edit::Document::parse(text).map_err(|e| FileProblem {
            line: e.span().map(|span| line_of(text, span.start)),
            key: None,
            message: e.message().trim().to_string(),
        })?;
        let config: AgentConfig = toml::from_str(text).map_err(|e| FileProblem {
            line: e.span().map(|span| line_of(text, span.start)),
            key: None,
            message: e.message().trim().to_string(),
        })?;
        config.validate().map_err(|error| match error {
            ConfigError::Invalid { key, problem } => {
                let (line, in_file) = locate(&document, text, &key);
                let message = if in_file {
                    problem
                } else {
                    format!("{problem} (not set in this file: the default applies)")
                };
                FileProblem {
                    line,
                    key: Some(key),
                    message,
                }
            }
            other => FileProblem {
                line: None,
                key: None,
                message: other.to_string(),
            },
        })?;
        Ok(config)
    }

    /// The default configuration as TOML, for `--print-default-config`.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&AgentConfig::default()).unwrap_or_default()
    }

    /// Checks every value; the error names the key and says what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Id::new(&self.household.id).map_err(|e| {
            invalid(
                "household.id",
                format!("{e}; for example \"home\" or \"flat-12\""),
            )
        })?;
        replenish_protocol::topic::validate_prefix(&self.mqtt.prefix).map_err(|e| {
            invalid(
                "mqtt.prefix",
                format!("{e}; the default is \"replenish/v1\""),
            )
        })?;
        self.broker_address()?;
        if self.mqtt.username.is_some() != self.mqtt.password.is_some() {
            return Err(invalid(
                "mqtt.password",
                "set both mqtt.username and mqtt.password, or neither",
            ));
        }
        if self.mqtt.embedded
            && self.mqtt.embedded_auth
            && self.mqtt.password.as_ref().is_some_and(|p| p.len() < 16)
        {
            return Err(invalid(
                "mqtt.password",
                "must be at least 16 characters: anyone who has it may read and publish everything",
            ));
        }
        if self.mqtt.tls_listen.is_some() {
            if !(self.mqtt.embedded && self.mqtt.embedded_auth) {
                return Err(invalid(
                    "mqtt.tls_listen",
                    "needs mqtt.embedded = true and mqtt.embedded_auth = true (TLS is served by the embedded broker's gate)",
                ));
            }
            if self.mqtt.tls_cert.is_none() || self.mqtt.tls_key.is_none() {
                return Err(invalid(
                    "mqtt.tls_cert",
                    "mqtt.tls_listen needs mqtt.tls_cert and mqtt.tls_key (PEM files)",
                ));
            }
        }
        if !(1..=300).contains(&self.http.client_timeout_secs) {
            return Err(invalid(
                "http.client_timeout_secs",
                "must be 1 to 300 seconds; the default is 10".to_string(),
            ));
        }
        if self.http.max_connections == 0 {
            return Err(invalid(
                "http.max_connections",
                "must be at least 1; the default is 256".to_string(),
            ));
        }
        household::Rules::from(self.rules.clone())
            .validate()
            .map_err(|e| invalid("rules", e.to_string()))?;
        for url in self
            .notifications
            .webhooks
            .iter()
            .chain(&self.http.public_url)
        {
            let parsed = reqwest::Url::parse(url).map_err(|e| {
                invalid(
                    "notifications.webhooks / http.public_url",
                    format!("{url:?}: {e}; expected http(s)://host/path"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid(
                    "notifications.webhooks / http.public_url",
                    format!("{url:?}: scheme must be http or https"),
                ));
            }
        }
        if self.notifications.timeout_secs == 0 {
            return Err(invalid("notifications.timeout_secs", "must be at least 1"));
        }
        replenish_protocol::topic::validate_prefix(&self.home_assistant.prefix).map_err(|e| {
            invalid(
                "home_assistant.prefix",
                format!("{e}; the default is \"homeassistant\""),
            )
        })?;
        if self.mqtt.keep_alive_secs < 5 {
            return Err(invalid(
                "mqtt.keep_alive_secs",
                "must be at least 5 seconds",
            ));
        }
        if !(4096..=16 << 20).contains(&self.mqtt.max_packet_bytes) {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                "must be between 4096 and 16777216 (the default is 65536)",
            ));
        }
        let ingest = &self.ingest;
        if !(ingest.capacity_multiple >= 1.0 && ingest.capacity_multiple <= 100.0) {
            return Err(invalid(
                "ingest.capacity_multiple",
                "must be between 1 and 100 (the default is 2)",
            ));
        }
        if ingest.clock_skew_secs == 0 || ingest.clock_skew_secs > 86_400 {
            return Err(invalid(
                "ingest.clock_skew_secs",
                "must be between 1 and 86400 (the default is 300)",
            ));
        }
        if !(1..=10_000).contains(&ingest.max_waiting_devices) {
            return Err(invalid(
                "ingest.max_waiting_devices",
                "must be between 1 and 10000 (the default is 32)",
            ));
        }
        if ingest.command_timeout_secs == 0 || ingest.command_attempts == 0 {
            return Err(invalid(
                "ingest.command_timeout_secs / ingest.command_attempts",
                "must be at least 1",
            ));
        }
        if ingest.stall_secs == 0 {
            return Err(invalid("ingest.stall_secs", "must be at least 1"));
        }
        if !(self.policy.price_guard >= 1.0 && self.policy.price_guard <= 10.0) {
            return Err(invalid(
                "policy.price_guard",
                "must be 1 to 10 (1.25: ask before paying 25 % more than usual)",
            ));
        }
        if !(1..=3600).contains(&self.commerce.retry_secs) {
            return Err(invalid("commerce.retry_secs", "must be 1 to 3600"));
        }
        let shops = self.shop_list();
        let mut ids = std::collections::BTreeSet::new();
        for (n, shop) in shops.iter().enumerate() {
            let key = |field: &str| {
                if self.shops.is_empty() {
                    format!("commerce.{field}")
                } else {
                    format!("shops[{n}].{field}")
                }
            };
            if crate::engine::ShopId::parse(&shop.id).is_none() {
                return Err(invalid(key("id"), SHOP_ID_RULE));
            }
            if !ids.insert(shop.id.clone()) {
                return Err(invalid(key("id"), format!("{:?} is used twice", shop.id)));
            }
            if shop.name.trim().is_empty() || shop.name.chars().any(char::is_control) {
                return Err(invalid(key("name"), "must be a name people read (Shop A)"));
            }
            let url = reqwest::Url::parse(&shop.url)
                .map_err(|e| invalid(key("url"), format!("{e}; expected http://host:port")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(key("url"), "scheme must be http or https"));
            }
            if shop.timeout_secs == 0 {
                return Err(invalid(key("timeout_secs"), "must be at least 1"));
            }
            match (shop.platform, &shop.vendure) {
                (ShopPlatform::Vendure, None) => {
                    return Err(invalid(
                        key("vendure"),
                        "platform \"vendure\" needs the household's account there: email, \
                         password, payment_method and an address (see docs/commerce-vendure.md)",
                    ));
                }
                (ShopPlatform::Vendure, Some(account)) => {
                    if account.email.trim().is_empty() || account.password.is_empty() {
                        return Err(invalid(
                            key("vendure"),
                            "email and password of the household's customer account must be set",
                        ));
                    }
                    if account.address.country_code.len() != 2 {
                        return Err(invalid(
                            key("vendure.address.country_code"),
                            "must be a two-letter ISO 3166 code such as DE",
                        ));
                    }
                }
                (ShopPlatform::Sandbox, Some(_)) => {
                    return Err(invalid(
                        key("vendure"),
                        "is set but the platform is \"sandbox\": set platform = \"vendure\" or remove it",
                    ));
                }
                (ShopPlatform::Sandbox, None) => {}
            }
        }
        if self.storage.cache_mb == 0 {
            return Err(invalid("storage.cache_mb", "must be at least 1"));
        }
        if !(self.policy.lead_time_days > 0.0 && self.policy.lead_time_days <= 60.0) {
            return Err(invalid(
                "policy.lead_time_days",
                "must be above 0 and at most 60",
            ));
        }
        if !(self.policy.risk > 0.0 && self.policy.risk < 0.5) {
            return Err(invalid(
                "policy.risk",
                "must be a probability above 0 and below 0.5, e.g. 0.02",
            ));
        }
        if !(self.policy.target_days >= 1.0 && self.policy.target_days <= 365.0) {
            return Err(invalid("policy.target_days", "must be between 1 and 365"));
        }
        if !(self.policy.bundle_days >= 0.0 && self.policy.bundle_days <= 30.0) {
            return Err(invalid("policy.bundle_days", "must be between 0 and 30"));
        }
        if self.policy.settle_secs > 3600 {
            return Err(invalid(
                "policy.settle_secs",
                "must be at most 3600 (an hour); 0 decides on every report",
            ));
        }
        for (id, name) in &self.names {
            let chars = name.trim().chars().count();
            if !(1..=64).contains(&chars) || name.chars().any(char::is_control) {
                return Err(invalid(
                    "names",
                    format!("the name of {id:?} must be 1 to 64 printable characters"),
                ));
            }
        }
        for (consumable, section) in &self.consumables {
            if Id::new(consumable).is_err() {
                return Err(invalid(
                    "consumables",
                    format!("{consumable:?} is not a consumable id (a-z0-9_-)"),
                ));
            }
            if section.risk.is_some_and(|r| !(r > 0.0 && r < 0.5))
                || section
                    .target_days
                    .is_some_and(|d| !(1.0..=365.0).contains(&d))
                || section
                    .max_stock
                    .is_some_and(|m| !(m > 0.0 && m.is_finite()))
                || section
                    .use_every_days
                    .is_some_and(|d| !(1.0..=3650.0).contains(&d))
            {
                return Err(invalid(
                    "consumables",
                    format!(
                        "[consumables.{consumable}]: risk in (0, 0.5), target_days in 1..365, max_stock above 0, use_every_days in 1..3650"
                    ),
                ));
            }
            if let Some(link) = &section.driven_by {
                link.settings(consumable)
                    .map_err(|why| invalid("consumables", why))?;
            }
        }
        Ok(())
    }

    /// The broker to connect to: the embedded one when enabled, else `mqtt.url`.
    pub fn broker_address(&self) -> Result<BrokerAddress, ConfigError> {
        if self.mqtt.embedded {
            let listen = self.mqtt.embedded_listen;
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                listen.ip().to_string()
            };
            return Ok(BrokerAddress {
                host,
                port: listen.port(),
                login: self.mqtt_login(),
            });
        }
        let url = reqwest::Url::parse(&self.mqtt.url)
            .map_err(|e| invalid("mqtt.url", format!("{e}; expected mqtt://host:port")))?;
        if !matches!(url.scheme(), "mqtt" | "tcp") {
            return Err(invalid(
                "mqtt.url",
                "scheme must be mqtt:// (TLS is not supported yet)",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("mqtt.url", "has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        Ok(BrokerAddress {
            host,
            port: url.port().unwrap_or(1883),
            login: self.mqtt_login(),
        })
    }

    /// The agent's MQTT login, when both halves are set.
    pub fn mqtt_login(&self) -> Option<(String, String)> {
        Some((self.mqtt.username.clone()?, self.mqtt.password.clone()?))
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("replenish-agent-{}", self.household.id))
    }

    /// The household id, validated.
    pub fn household_id(&self) -> Result<HouseholdId, ConfigError> {
        HouseholdId::new(&self.household.id).map_err(|e| invalid("household.id", e.to_string()))
    }

    /// The engine's settings.
    /// The shops to buy from: `[[shops]]`, or the one shop of `[commerce]`.
    pub fn shop_list(&self) -> Vec<ShopConfig> {
        if !self.shops.is_empty() {
            return self.shops.clone();
        }
        vec![ShopConfig {
            id: crate::engine::DEFAULT_SHOP.into(),
            name: "the shop".into(),
            platform: self.commerce.platform,
            url: self.commerce.url.clone(),
            timeout_secs: self.commerce.timeout_secs,
            vendure: self.commerce.vendure.clone(),
        }]
    }

    /// The engine's settings from this configuration.
    pub fn engine_config(&self, key_prefix: String) -> Result<EngineConfig, ConfigError> {
        let mut engine = EngineConfig::new(self.household_id()?, key_prefix);
        engine.shops = self
            .shop_list()
            .into_iter()
            .map(|s| {
                Ok(ShopInfo {
                    id: crate::engine::ShopId::parse(&s.id)
                        .ok_or_else(|| invalid("shops.id", SHOP_ID_RULE))?,
                    name: s.name,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        engine.pickup = self.policy.pickup;
        engine.names = self.names.clone();
        engine.retry_base_ms = self.commerce.retry_secs * 1000;
        engine.price_guard = self.policy.price_guard;
        engine.products = self
            .consumables
            .iter()
            .filter(|(_, c)| !c.products.is_empty())
            .map(|(id, c)| (id.clone(), c.products.clone()))
            .collect();
        engine.rules = self.rules.clone().into();
        engine.pairing = self.household.pairing;
        engine.policy = PolicyConfig {
            defaults: ConsumableSettings {
                risk: self.policy.risk,
                target_days: self.policy.target_days,
                max_stock: None,
                use_every_days: None,
                driven_by: None,
            },
            lead_time_ms: (self.policy.lead_time_days * DAY_MS as f64) as u64,
            review_ms: crate::clock::HOUR_MS,
            bundle_days: self.policy.bundle_days,
            settle_ms: self.policy.settle_secs * 1000,
        };
        engine.ingest = IngestLimits {
            capacity_multiple: self.ingest.capacity_multiple,
            clock_skew_ms: self.ingest.clock_skew_secs * 1000,
            max_waiting_devices: self.ingest.max_waiting_devices,
            pairing_notice_every_ms: self.ingest.pairing_notice_every_secs * 1000,
            command_timeout_ms: self.ingest.command_timeout_secs * 1000,
            command_attempts: self.ingest.command_attempts,
        };
        for (consumable, section) in &self.consumables {
            let settings = ConsumableSettings {
                risk: section.risk.unwrap_or(self.policy.risk),
                target_days: section.target_days.unwrap_or(self.policy.target_days),
                max_stock: section.max_stock,
                use_every_days: section.use_every_days,
                driven_by: section
                    .driven_by
                    .as_ref()
                    .map(|link| link.settings(consumable))
                    .transpose()
                    .map_err(|why| invalid("consumables", why))?,
            };
            engine.consumables.insert(consumable.clone(), settings);
        }
        Ok(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_names_the_line_of_each_kind_of_problem() {
        let check = |text: &str| AgentConfig::check_text(text).unwrap_err();
        // Syntax.
        let p = check("[policy]\nrisk = = 0.1\n");
        assert_eq!(p.line, Some(2), "{p}");
        // An unknown key.
        let p = check("[household]\nid = \"home\"\n\n[mqtt]\nembeded = false\n");
        assert_eq!(p.line, Some(5), "{p}");
        assert!(p.message.contains("embeded"), "{p}");
        // A wrong type.
        let p = check("[policy]\nrisk = \"low\"\n");
        assert_eq!(p.line, Some(2), "{p}");
        // A value out of range, in a section and in the second of an array of tables.
        let p = check("[household]\nid = \"home\"\n[policy]\nlead_time_days = 2.0\nrisk = 0.7\n");
        assert_eq!(
            (p.line, p.key.as_deref()),
            (Some(5), Some("policy.risk")),
            "{p}"
        );
        assert!(p.message.contains("below 0.5"), "{p}");
        let shops = "[[shops]]\nid = \"a\"\nname = \"A\"\nurl = \"http://127.0.0.1:1\"\n\n\
                     [[shops]]\nid = \"b\"\nname = \"B\"\nurl = \"ftp://127.0.0.1:1\"\n";
        let p = check(shops);
        assert_eq!(
            (p.line, p.key.as_deref()),
            (Some(9), Some("shops[1].url")),
            "{p}"
        );
        // A value the file does not set is said to be the default's.
        let p = check("[storage]\npath = \"x\"\ncache_mb = 0\n");
        assert_eq!(p.line, Some(3), "{p}");
        // A good file passes: the defaults as printed, and the example in the docs.
        assert!(AgentConfig::check_text("[household]\nid = \"flat-12\"\n").is_ok());
        assert_eq!(
            AgentConfig::check_text(&AgentConfig::default_toml()),
            Ok(AgentConfig::default())
        );
        for example in [
            "../docs/examples/agent-vendure.toml",
            "packaging/agent.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(example);
            assert_eq!(AgentConfig::check_file(&path).err(), None, "{example}");
        }
    }

    use crate::wire::Mode;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let text = AgentConfig::default_toml();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let loaded = AgentConfig::load_from(Some(file.path()), env(&[])).unwrap();
        assert_eq!(loaded, AgentConfig::default());
    }

    #[test]
    fn the_vendure_example_loads_and_a_vendure_platform_needs_its_account() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/examples/agent-vendure.toml");
        let loaded = AgentConfig::load_from(
            Some(&example),
            env(&[(
                "REPLENISH_COMMERCE__VENDURE__PASSWORD",
                "from-the-environment",
            )]),
        )
        .unwrap();
        assert_eq!(loaded.commerce.platform, ShopPlatform::Vendure);
        let account = loaded.commerce.vendure.unwrap();
        assert_eq!(account.password, "from-the-environment");
        assert_eq!(account.address.country_code, "DE");

        let err = AgentConfig::load_from(None, env(&[("REPLENISH_COMMERCE__PLATFORM", "vendure")]))
            .unwrap_err();
        assert!(err.to_string().contains("commerce.vendure"), "{err}");
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[commerce.vendure]\nemail = \"a@b.c\"\npassword = \"x\"\npayment_method = \"p\"\n\
             [commerce.vendure.address]\nfull_name = \"A\"\nstreet = \"S\"\ncity = \"C\"\n\
             postal_code = \"1\"\ncountry_code = \"DE\""
        )
        .unwrap();
        let err = AgentConfig::load_from(Some(file.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("platform"), "{err}");
    }

    #[test]
    fn rules_take_whole_amounts_written_either_way_and_refuse_fractions() {
        let load = |rules: &str| {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            writeln!(file, "[rules]\n{rules}").unwrap();
            AgentConfig::load_from(Some(file.path()), env(&[]))
        };
        let loaded = load("auto_approve_below_cents = 500.0\nmonthly_budget_cents = 8000").unwrap();
        let engine = loaded.engine_config("k".into()).unwrap();
        assert_eq!(
            (
                engine.rules.auto_approve_below_cents,
                engine.rules.monthly_budget_cents
            ),
            (500, Some(8000))
        );
        let err = load("auto_approve_below_cents = 1.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto_approve_below_cents"), "{err}");
        let err = load("approval_timeout_hours = -3").unwrap_err().to_string();
        assert!(err.contains("approval_timeout_hours"), "{err}");
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[household]\nid = \"flat-12\"\n[mqtt]\nembedded = false\nurl = \"mqtt://broker.lan:1884\"").unwrap();
        let loaded = AgentConfig::load_from(
            Some(file.path()),
            env(&[
                ("REPLENISH_RULES__DEFAULT_MODE", "approve"),
                ("REPLENISH_RULES__QUIET_HOURS", "22:00-07:00"),
                ("REPLENISH_STORAGE__CACHE_MB", "16"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.household.id, "flat-12");
        assert_eq!(loaded.rules.default_mode, Mode::Approve);
        assert_eq!(
            loaded.rules.quiet_hours.map(|q| q.to_string()).as_deref(),
            Some("22:00-07:00")
        );
        assert_eq!(loaded.storage.cache_mb, 16);
        assert_eq!(
            loaded.broker_address().unwrap(),
            BrokerAddress {
                host: "broker.lan".into(),
                port: 1884,
                login: None,
            }
        );
    }

    #[test]
    fn consumables_override_the_policy() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[policy]\nrisk = 0.05\n[consumables.milk]\nmax_stock = 2500.0"
        )
        .unwrap();
        let loaded = AgentConfig::load_from(Some(file.path()), env(&[])).unwrap();
        let engine = loaded.engine_config("k".into()).unwrap();
        let milk = &engine.consumables["milk"];
        assert_eq!((milk.risk, milk.max_stock), (0.05, Some(2500.0)));
        let from_env = AgentConfig::load_from(
            None,
            env(&[("REPLENISH_CONSUMABLES__EGGS__MAX_STOCK", "18")]),
        )
        .unwrap()
        .engine_config("k".into())
        .unwrap();
        assert_eq!(from_env.consumables["eggs"].max_stock, Some(18.0));
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[consumables.milk]\nrisk = 2.0").unwrap();
        let err = AgentConfig::load_from(Some(bad.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("consumables.milk"), "{err}");
    }

    #[test]
    fn a_declared_use_interval_reaches_the_engine_and_nonsense_is_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[consumables.descaler_tablets]\nuse_every_days = 30").unwrap();
        let engine = AgentConfig::load_from(Some(file.path()), env(&[]))
            .unwrap()
            .engine_config("k".into())
            .unwrap();
        assert_eq!(
            engine.consumables["descaler_tablets"].use_every_days,
            Some(30.0)
        );
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[consumables.descaler_tablets]\nuse_every_days = 0.25").unwrap();
        let err = AgentConfig::load_from(Some(bad.path()), env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("use_every_days in 1..3650"),
            "{err}"
        );
    }

    #[test]
    fn a_declared_driver_reaches_the_engine_and_nonsense_is_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[consumables.descaler_tablets]\ndriven_by = {{ consumable = \"coffee_beans\", every_uses = 200 }}\n\
             [consumables.water_filter.driven_by]\nconsumable = \"water\"\nevery_amount = 150000"
        )
        .unwrap();
        let engine = AgentConfig::load_from(Some(file.path()), env(&[]))
            .unwrap()
            .engine_config("k".into())
            .unwrap();
        assert_eq!(
            engine.consumables["descaler_tablets"].driven_by,
            Some(DrivenBy {
                consumable: "coffee_beans".into(),
                every: 200.0,
                measure: Measure::Uses,
            })
        );
        assert_eq!(
            engine.consumables["water_filter"]
                .driven_by
                .as_ref()
                .map(|l| (l.every, l.measure)),
            Some((150_000.0, Measure::Amount))
        );
        for (text, says) in [
            ("consumable = \"coffee_beans\"", "exactly one of every_uses"),
            (
                "consumable = \"coffee_beans\", every_uses = 2, every_amount = 5",
                "exactly one of every_uses",
            ),
            (
                "consumable = \"coffee_beans\", every_uses = 0",
                "at least 1",
            ),
            (
                "consumable = \"descaler_tablets\", every_uses = 9",
                "drive itself",
            ),
            (
                "consumable = \"Coffee Beans\", every_uses = 9",
                "not a consumable id",
            ),
            (
                "consumable = \"coffee_beans\", every_brews = 9",
                "unknown field",
            ),
        ] {
            let mut bad = tempfile::NamedTempFile::new().unwrap();
            writeln!(
                bad,
                "[consumables.descaler_tablets]\ndriven_by = {{ {text} }}"
            )
            .unwrap();
            let err = AgentConfig::load_from(Some(bad.path()), env(&[])).unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[mqtt]\nembeded = false").unwrap();
        let err = AgentConfig::load_from(Some(file.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("embeded"), "{err}");
        let err = AgentConfig::load_from(None, env(&[("REPLENISH_HTTP__PORT", "1")])).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_to_fix() {
        let err = AgentConfig::load_from(None, env(&[("REPLENISH_HOUSEHOLD__ID", "My Home")]))
            .unwrap_err();
        assert!(err.to_string().contains("household.id"), "{err}");
        let err =
            AgentConfig::load_from(None, env(&[("REPLENISH_RULES__DEFAULT_MODE", "sometimes")]))
                .unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = AgentConfig::load_from(None, env(&[("REPLENISH_RULES__TIMEZONE", "Mars/Base")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("rules") && err.to_string().contains("Mars/Base"),
            "{err}"
        );
        let err = AgentConfig::load_from(
            None,
            env(&[("REPLENISH_RULES__QUIET_HOURS", "late evening")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("22:00-07:00"), "{err}");
        let err = AgentConfig::load_from(
            None,
            env(&[
                ("REPLENISH_MQTT__EMBEDDED", "false"),
                ("REPLENISH_MQTT__URL", "http://x"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("mqtt.url"), "{err}");
    }
}
