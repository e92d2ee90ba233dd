//! Home Assistant over MQTT: device-based discovery (one retained config per appliance on
//! `{ha_prefix}/device/{household}_{device}/config`, Home Assistant 2024.11+), entity states
//! the agent publishes (retained) on `{prefix}/{household}/agent/ha/{device}/state`, and the
//! commands Home Assistant sends back: an approve button and a mode select per consumable.
//!
//! Payloads are built by pure functions ([`discovery_config`], [`state_payload`],
//! [`parse_command`]) from a [`DeviceSnapshot`] read out of the engine; the task ([`spawn`])
//! publishes what changed on every notice, periodically, and everything again when Home
//! Assistant announces `online` on `{ha_prefix}/status`. See `docs/home-assistant.md`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::clock::{DAY_MS, UnixMs};
use crate::engine::household::{Actor, Mode};
use crate::engine::order::OrderState;
use crate::engine::{Engine, Event, Notice};
use crate::internal_events::{HaCommand, HaNoticesLagged, HaOutcome, HaPublished, emit};
use crate::mqtt_out::{Inbound, LinkInput, Outgoing, Publish};
use crate::runtime::{AgentHandle, AskError};
use replenish_protocol::topic::agent_root;

/// A slot is `low` at or below this share of its capacity...
pub const LOW_FRACTION: f64 = 0.2;
/// ...or when it is predicted to run empty within this many days.
pub const LOW_DAYS: f64 = 3.0;
/// What Home Assistant's approve button sends.
pub const PRESS: &str = "PRESS";

/// What the integration needs to know.
#[derive(Debug, Clone)]
pub struct HaSettings {
    /// The agent's topic prefix (`replenish/v1`).
    pub prefix: String,
    /// The household id.
    pub household: String,
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub ha_prefix: String,
    /// Whether appliances are announced (`home_assistant.discovery`). When not, the task only
    /// withdraws what an earlier run announced: the integration turned off leaves nothing
    /// behind.
    pub announce: bool,
    /// Whether buttons and selects act; without it they are not offered and commands are
    /// refused (logged and counted).
    pub control: bool,
    /// The agent's web page, shown as the device's configuration URL.
    pub public_url: String,
    /// How often states are refreshed without a notice (days to empty change with time).
    pub refresh: Duration,
}

impl HaSettings {
    /// Discovery topic of a device: `{ha_prefix}/device/{household}_{device}/config`.
    pub fn discovery_topic(&self, device: &str) -> String {
        format!(
            "{}/device/{}_{device}/config",
            self.ha_prefix, self.household
        )
    }

    /// State topic of a device: `{prefix}/{household}/agent/ha/{device}/state`.
    pub fn state_topic(&self, device: &str) -> String {
        format!("{}/state", self.device_base(device))
    }

    /// Command topic of a slot's approve button.
    pub fn approve_topic(&self, device: &str, slot: &str) -> String {
        format!("{}/{slot}/approve", self.device_base(device))
    }

    /// Command topic of a slot's mode select.
    pub fn mode_topic(&self, device: &str, slot: &str) -> String {
        format!("{}/{slot}/mode", self.device_base(device))
    }

    /// Home Assistant's birth and last-will topic: `{ha_prefix}/status`.
    pub fn ha_status_topic(&self) -> String {
        format!("{}/status", self.ha_prefix)
    }

    /// What the agent subscribes to: Home Assistant's status, the command topics, and the
    /// discovery configs (its own, retained: what an earlier run announced, so that entities it
    /// no longer has are removed).
    pub fn subscriptions(&self) -> Vec<String> {
        let base = format!("{}/ha", agent_root(&self.prefix, &self.household));
        if !self.announce {
            return vec![format!("{}/device/+/config", self.ha_prefix)];
        }
        vec![
            self.ha_status_topic(),
            format!("{base}/+/+/approve"),
            format!("{base}/+/+/mode"),
            format!("{}/device/+/config", self.ha_prefix),
        ]
    }

    /// The device of one of this household's discovery topics.
    pub fn device_of_discovery_topic<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&format!("{}/device/", self.ha_prefix))?;
        let device = rest
            .strip_suffix("/config")?
            .strip_prefix(&format!("{}_", self.household))?;
        replenish_protocol::Id::new(device)
            .is_ok()
            .then_some(device)
    }

    fn device_base(&self, device: &str) -> String {
        format!("{}/ha/{device}", agent_root(&self.prefix, &self.household))
    }

    fn unique_id(&self, device: &str, rest: &str) -> String {
        format!("replenish_{}_{device}_{rest}", self.household)
    }
}

/// An accepted appliance as Home Assistant sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    /// Device id.
    pub id: String,
    /// What the household calls it.
    pub name: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Connected now.
    pub online: bool,
    /// Its slots, by id.
    pub slots: Vec<SlotSnapshot>,
}

/// One slot (one consumable) of an appliance.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSnapshot {
    /// Slot id.
    pub id: String,
    /// Consumable id.
    pub consumable: String,
    /// What the household calls the consumable.
    pub label: String,
    /// Whether a shop sells it: what none sells (tap water) has no button and no mode.
    pub orderable: bool,
    /// Whether the device only counts uses (a brew counter): a count, no level.
    pub usage_only: bool,
    /// Uses counted so far.
    pub uses: u64,
    /// How long it lasts, in words: `Coffee beans: about 3 days left (2 to 4)`.
    pub outlook: String,
    /// Unit symbol: g, ml or count.
    pub unit: String,
    /// Capacity in the unit.
    pub capacity: f64,
    /// Level, if reported.
    pub level: Option<f64>,
    /// Median predicted empty time.
    pub empty_at: Option<UnixMs>,
    /// The consumable's mode.
    pub mode: Mode,
    /// A proposed order of this slot waiting for the household, if any.
    pub pending_order: Option<String>,
    /// That order in words: `Order 1 kg of Coffee beans (2 × 500 g) from BigBox for €17.98,
    /// arriving Thursday`.
    pub pending_text: Option<String>,
}

/// Reads the accepted devices out of the engine at `now` (devices waiting for pairing are left
/// out).
pub fn snapshot(engine: &Engine, now: UnixMs) -> Vec<DeviceSnapshot> {
    let rules = &engine.household().rules;
    let words = engine.words(now);
    engine
        .devices()
        .filter(|d| d.accepted)
        .map(|d| DeviceSnapshot {
            id: d.id.to_string(),
            name: words.name(d.id.as_str()),
            model: d.birth.model.to_string(),
            firmware: d.birth.firmware.to_string(),
            online: d.online(),
            slots: engine
                .device_slots(&d.id)
                .into_iter()
                .map(|s| (s, pending(engine, d, s)))
                .map(|(s, pending)| SlotSnapshot {
                    id: s.spec.id.to_string(),
                    consumable: s.spec.consumable.to_string(),
                    label: words.name(s.spec.consumable.as_str()),
                    orderable: words.orderable(s.spec.consumable.as_str()),
                    usage_only: s.spec.sensor == replenish_protocol::SensorKind::Usage,
                    uses: s.uses,
                    outlook: words.days_left(s),
                    unit: s.spec.unit.symbol().to_string(),
                    capacity: f64::from(s.spec.capacity),
                    level: s.level,
                    empty_at: s.forecast.as_ref().and_then(|f| f.empty_at),
                    mode: rules.mode_of(s.spec.consumable.as_str()),
                    pending_order: pending.map(|o| o.id.to_string()),
                    pending_text: pending.map(|o| format!("{}.", words.order(o))),
                })
                .collect(),
        })
        .collect()
}

/// The newest order of the slot waiting for a person.
fn pending<'a>(
    engine: &'a Engine,
    device: &crate::engine::inventory::DeviceState,
    slot: &crate::engine::inventory::SlotState,
) -> Option<&'a crate::engine::order::Order> {
    engine.orders().rfind(|o| {
        o.state == OrderState::Proposed
            && o.pending.is_some()
            && o.covers(&device.id, &slot.spec.id)
    })
}

/// The device-based discovery config of an appliance.
pub fn discovery_config(settings: &HaSettings, device: &DeviceSnapshot) -> Value {
    let id = device.id.as_str();
    let mut components = serde_json::Map::new();
    for slot in &device.slots {
        let shared = device
            .slots
            .iter()
            .filter(|s| s.consumable == slot.consumable)
            .count()
            > 1;
        let label = if shared {
            format!("{} ({})", slot.label, slot.id)
        } else {
            slot.label.clone()
        };
        let s = slot.id.as_str();
        let field = |name: &str| format!("{{{{ value_json.slots['{s}'].{name} }}}}");
        // The sentences a person reads, as attributes of the slot's entities.
        let attributes = format!(
            "{{{{ {{'summary': value_json.slots['{s}'].outlook, 'pending_order': value_json.slots['{s}'].pending_text}} | tojson }}}}"
        );
        let uid = |rest: &str| settings.unique_id(id, &format!("{s}_{rest}"));
        if slot.usage_only {
            // Only counted (a brew counter): the count, no level to run out of.
            components.insert(
                format!("{s}_uses"),
                json!({
                    "p": "sensor",
                    "name": format!("{label} counted"),
                    "unique_id": uid("uses"),
                    "state_class": "total_increasing",
                    "icon": "mdi:counter",
                    "value_template": field("uses"),
                    "json_attributes_topic": settings.state_topic(id),
                    "json_attributes_template": attributes,
                }),
            );
        } else {
            components.insert(
                format!("{s}_level"),
                json!({
                    "p": "sensor",
                    "name": format!("{label} level"),
                    "unique_id": uid("level"),
                    "unit_of_measurement": slot.unit,
                    "state_class": "measurement",
                    "icon": "mdi:gauge",
                    "value_template": field("level"),
                }),
            );
            components.insert(
                format!("{s}_days_to_empty"),
                json!({
                    "p": "sensor",
                    "name": format!("{label} days to empty"),
                    "unique_id": uid("days_to_empty"),
                    "device_class": "duration",
                    "unit_of_measurement": "d",
                    "state_class": "measurement",
                    "suggested_display_precision": 1,
                    "value_template": field("days_to_empty"),
                    "json_attributes_topic": settings.state_topic(id),
                    "json_attributes_template": attributes,
                }),
            );
            components.insert(
                format!("{s}_empty_at"),
                json!({
                    "p": "sensor",
                    "name": format!("{label} predicted empty"),
                    "unique_id": uid("empty_at"),
                    "device_class": "timestamp",
                    "value_template": field("empty_at"),
                }),
            );
            components.insert(
                format!("{s}_low"),
                json!({
                    "p": "binary_sensor",
                    "name": format!("{label} low"),
                    "unique_id": uid("low"),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "value_template": format!("{{{{ 'ON' if value_json.slots['{s}'].low else 'OFF' }}}}"),
                }),
            );
        }
        if !slot.orderable {
            // Watched, never ordered: nothing to approve, no mode.
        } else if settings.control {
            components.insert(
                format!("{s}_approve"),
                json!({
                    "p": "button",
                    "name": format!("Approve {} order", label.to_lowercase()),
                    "unique_id": uid("approve"),
                    "icon": "mdi:cart-check",
                    "command_topic": settings.approve_topic(id, s),
                    "payload_press": PRESS,
                    "json_attributes_topic": settings.state_topic(id),
                    "json_attributes_template": attributes,
                }),
            );
            components.insert(
                format!("{s}_mode"),
                json!({
                    "p": "select",
                    "name": format!("{label} mode"),
                    "unique_id": uid("mode"),
                    "icon": "mdi:cart-cog",
                    "options": Mode::ALL.map(Mode::as_str),
                    "command_topic": settings.mode_topic(id, s),
                    "value_template": field("mode"),
                }),
            );
        } else {
            // Its own key: a component cannot change platform (select → sensor) in place.
            components.insert(
                format!("{s}_mode_state"),
                json!({
                    "p": "sensor",
                    "name": format!("{label} mode"),
                    "unique_id": uid("mode_state"),
                    "icon": "mdi:cart-cog",
                    "value_template": field("mode"),
                }),
            );
        }
    }
    json!({
        "dev": {
            "identifiers": [format!("replenish_{}_{id}", settings.household)],
            "name": device.name,
            "model": device.model,
            "sw_version": device.firmware,
            "manufacturer": "replenish",
            "configuration_url": settings.public_url,
        },
        "o": {
            "name": "replenish-agent",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
        "availability": [
            { "topic": crate::mqtt_out::availability_topic(&settings.prefix, &settings.household) },
            {
                "topic": settings.state_topic(id),
                "value_template": "{{ 'online' if value_json.online else 'offline' }}",
            },
        ],
        "availability_mode": "all",
        "state_topic": settings.state_topic(id),
        "qos": 1,
        "cmps": components,
    })
}

/// The platform of each component of a discovery config (`beans_level` → `sensor`), leaving
/// out removal markers (a component that is only `{"p": …}`).
pub fn components_of(config: &Value) -> std::collections::BTreeMap<String, String> {
    config["cmps"]
        .as_object()
        .map(|cmps| {
            cmps.iter()
                .filter(|(_, c)| c.as_object().is_some_and(|c| c.len() > 1))
                .filter_map(|(key, c)| Some((key.clone(), c["p"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds a removal marker (`{"p": platform}`, as Home Assistant asks) to `config` for every
/// component announced `before` that it no longer has.
pub fn mark_removed(config: &mut Value, before: &std::collections::BTreeMap<String, String>) {
    let Some(cmps) = config["cmps"].as_object_mut() else {
        return;
    };
    for (key, platform) in before {
        if !cmps.contains_key(key) {
            cmps.insert(key.clone(), json!({ "p": platform }));
        }
    }
}

/// RFC 3339 in UTC, to the second.
fn rfc3339(at: UnixMs) -> Option<String> {
    let seconds = i64::try_from(at / 1000).ok()?;
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.to_string())
}

/// The state of an appliance at `now`, for its entities' value templates.
pub fn state_payload(device: &DeviceSnapshot, now: UnixMs) -> Value {
    let slots: serde_json::Map<String, Value> = device
        .slots
        .iter()
        .map(|slot| {
            let days = slot
                .empty_at
                .map(|at| (at.saturating_sub(now) as f64 / DAY_MS as f64 * 10.0).round() / 10.0);
            let low = slot
                .level
                .is_some_and(|l| l <= LOW_FRACTION * slot.capacity)
                || days.is_some_and(|d| d <= LOW_DAYS);
            let value = json!({
                "consumable": slot.consumable,
                "outlook": slot.outlook,
                "pending_text": slot.pending_text,
                "level": slot.level.map(|l| (l * 10.0).round() / 10.0),
                "unit": slot.unit,
                "days_to_empty": days,
                "empty_at": slot.empty_at.and_then(rfc3339),
                "low": low,
                "uses": slot.uses,
                "mode": slot.mode.as_str(),
                "pending_order": slot.pending_order,
            });
            (slot.id.clone(), value)
        })
        .collect();
    json!({ "online": device.online, "slots": slots })
}

/// What Home Assistant asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Home Assistant (re)started: announce everything again.
    Announce,
    /// Approve the slot's pending order.
    Approve {
        /// Device id.
        device: String,
        /// Slot id.
        slot: String,
    },
    /// Set the mode of the slot's consumable.
    SetMode {
        /// Device id.
        device: String,
        /// Slot id.
        slot: String,
        /// The mode.
        mode: Mode,
    },
}

/// Why an inbound message is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A topic the integration does not handle.
    #[error("not a Home Assistant topic: {0}")]
    Topic(String),
    /// A payload that does not fit the topic.
    #[error("bad payload: {0}")]
    Payload(String),
    /// `{ha_prefix}/status` said something other than `online` (e.g. its last will).
    #[error("Home Assistant is {0}")]
    Ignored(String),
}

impl CommandError {
    fn label(&self) -> &'static str {
        match self {
            Self::Topic(_) => "bad_topic",
            Self::Payload(_) => "bad_payload",
            Self::Ignored(_) => "ignored",
        }
    }
}

/// Reads a message on one of [`HaSettings::subscriptions`].
pub fn parse_command(
    settings: &HaSettings,
    topic: &str,
    payload: &[u8],
) -> Result<Command, CommandError> {
    let text = String::from_utf8_lossy(payload).trim().to_string();
    if topic == settings.ha_status_topic() {
        return if text == "online" {
            Ok(Command::Announce)
        } else {
            Err(CommandError::Ignored(text))
        };
    }
    let base = format!("{}/ha/", agent_root(&settings.prefix, &settings.household));
    let parts: Vec<&str> = topic
        .strip_prefix(&base)
        .ok_or_else(|| CommandError::Topic(topic.to_string()))?
        .split('/')
        .collect();
    let valid = |id: &str| replenish_protocol::Id::new(id).is_ok();
    match parts.as_slice() {
        [device, slot, "approve"] if valid(device) && valid(slot) => {
            if text != PRESS {
                return Err(CommandError::Payload(format!(
                    "expected {PRESS}, got {text:?}"
                )));
            }
            Ok(Command::Approve {
                device: (*device).to_string(),
                slot: (*slot).to_string(),
            })
        }
        [device, slot, "mode"] if valid(device) && valid(slot) => {
            let mode = text.parse::<Mode>().map_err(CommandError::Payload)?;
            Ok(Command::SetMode {
                device: (*device).to_string(),
                slot: (*slot).to_string(),
                mode,
            })
        }
        _ => Err(CommandError::Topic(topic.to_string())),
    }
}

/// Starts the task: it announces accepted appliances and keeps their states current until
/// `shutdown`, and carries out Home Assistant's commands (as [`Actor::HomeAssistant`]) when
/// `settings.control` allows.
pub fn spawn(
    settings: HaSettings,
    publisher: Arc<dyn Publish>,
    input: LinkInput,
    agent: AgentHandle,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let notices = agent.notices();
    let announcer = Announcer {
        settings,
        publisher,
        published: HashMap::new(),
        announced: BTreeSet::new(),
        components: HashMap::new(),
    };
    tokio::spawn(announcer.run(agent, notices, input, shutdown))
}

struct Announcer {
    settings: HaSettings,
    publisher: Arc<dyn Publish>,
    /// The last payload published per topic, so unchanged ones are not sent again.
    published: HashMap<String, Vec<u8>>,
    /// Devices whose config is out there.
    announced: BTreeSet<String>,
    /// The components each device's config out there has (key → platform): what this run
    /// published, or an earlier run's retained config read back.
    components: HashMap<String, std::collections::BTreeMap<String, String>>,
}

/// States follow the engine's changes at most this often (a burst of reports is one sync).
const MIN_SYNC_GAP: Duration = Duration::from_secs(1);

impl Announcer {
    async fn run(
        mut self,
        agent: AgentHandle,
        mut notices: broadcast::Receiver<Notice>,
        input: LinkInput,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let LinkInput {
            messages: mut inbound,
            mut connections,
        } = input;
        let mut connections_open = true;
        let mut refresh = tokio::time::interval(self.settings.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inbound_open = true;
        let mut changes = agent.changes();
        let mut last_sync = tokio::time::Instant::now();
        // A change within MIN_SYNC_GAP of the last sync waits for `due`; notices and commands
        // sync at once.
        let mut pending_change = false;
        let due = tokio::time::sleep(MIN_SYNC_GAP);
        tokio::pin!(due);
        loop {
            let force = tokio::select! {
                _ = refresh.tick() => false,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    changes.borrow_and_update();
                    if last_sync.elapsed() < MIN_SYNC_GAP {
                        if !pending_change {
                            pending_change = true;
                            due.as_mut().reset(last_sync + MIN_SYNC_GAP);
                        }
                        continue;
                    }
                    false
                }
                () = &mut due, if pending_change => false,
                notice = notices.recv() => {
                    match notice {
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            emit(HaNoticesLagged { missed });
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    // One sync for a burst of notices.
                    while notices.try_recv().is_ok() {}
                    false
                }
                message = inbound.recv(), if inbound_open => match message {
                    Some(message) => match self.command(&agent, message).await {
                        Some(force) => force,
                        None => continue,
                    },
                    None => {
                        inbound_open = false;
                        continue;
                    }
                },
                changed = connections.changed(), if connections_open => {
                    if changed.is_err() {
                        connections_open = false;
                        continue;
                    }
                    // A broker that restarted lost what was retained: publish it all again.
                    tracing::debug!("connected to the broker; publishing everything");
                    true
                }
                _ = crate::runtime::stopped(&mut shutdown) => break,
            };
            if self.sync(&agent, force).await.is_err() {
                break;
            }
            last_sync = tokio::time::Instant::now();
            pending_change = false;
        }
        tracing::info!("Home Assistant integration stopped");
    }

    /// Carries out one inbound message; `Some(force)` when a sync should follow.
    async fn command(&mut self, agent: &AgentHandle, message: Inbound) -> Option<bool> {
        if let Some(device) = self.settings.device_of_discovery_topic(&message.topic) {
            return self.learn(device.to_string(), &message.payload);
        }
        let command = match parse_command(&self.settings, &message.topic, &message.payload) {
            Ok(command) => command,
            Err(error) => {
                emit(HaCommand {
                    command: "unknown",
                    topic: &message.topic,
                    outcome: HaOutcome::Unreadable {
                        label: error.label(),
                        error: &error,
                        status: matches!(error, CommandError::Ignored(_)),
                    },
                });
                return None;
            }
        };
        let name = match &command {
            Command::Announce => {
                emit(HaCommand {
                    command: "announce",
                    topic: &message.topic,
                    outcome: HaOutcome::Announce,
                });
                return Some(true);
            }
            Command::Approve { .. } => "approve",
            Command::SetMode { .. } => "mode",
        };
        let report = |outcome: HaOutcome<'_>| {
            emit(HaCommand {
                command: name,
                topic: &message.topic,
                outcome,
            });
        };
        if message.retain {
            report(HaOutcome::Retained);
            return None;
        }
        if !self.settings.control {
            report(HaOutcome::ControlOff);
            return None;
        }
        let result = match command {
            Command::Approve { device, slot } => self.approve(agent, device, slot).await,
            Command::SetMode { device, slot, mode } => {
                self.set_mode(agent, device, slot, mode).await
            }
            Command::Announce => return Some(true),
        };
        match result {
            Ok(detail) => report(HaOutcome::Applied(&detail)),
            Err(CommandFailed::Nothing(detail)) => report(HaOutcome::NothingToDo(&detail)),
            Err(CommandFailed::Refused(error)) => report(HaOutcome::Refused(&error)),
        }
        Some(false)
    }

    async fn approve(
        &self,
        agent: &AgentHandle,
        device: String,
        slot: String,
    ) -> Result<String, CommandFailed> {
        let (d, s) = (device.clone(), slot.clone());
        let order_id = agent
            .read(move |engine, _| {
                engine
                    .orders()
                    .filter(|o| {
                        o.state == OrderState::Proposed
                            && o.pending.is_some()
                            && o.lines()
                                .iter()
                                .any(|l| l.device.as_str() == d && l.slot.as_str() == s)
                    })
                    .map(|o| o.id.clone())
                    .next_back()
            })
            .await
            .map_err(|e| CommandFailed::Refused(AskError::Stopped(e)))?
            .ok_or_else(|| CommandFailed::Nothing(format!("no order of {device}/{slot} waits")))?;
        agent
            .ask(Event::Approve {
                order_id: order_id.clone(),
                by: Actor::HomeAssistant,
                edit: None,
            })
            .await
            .map_err(CommandFailed::Refused)?;
        Ok(format!("approved {order_id}"))
    }

    async fn set_mode(
        &self,
        agent: &AgentHandle,
        device: String,
        slot: String,
        mode: Mode,
    ) -> Result<String, CommandFailed> {
        let (d, s) = (device.clone(), slot.clone());
        let (mut rules, consumable) = agent
            .read(move |engine, _| {
                // Ids hold no slash, so only this device's slot can have this key.
                let consumable = engine
                    .slot(&format!("{d}/{s}"))
                    .map(|x| x.spec.consumable.to_string());
                (engine.household().rules.clone(), consumable)
            })
            .await
            .map_err(|e| CommandFailed::Refused(AskError::Stopped(e)))?;
        let consumable =
            consumable.ok_or_else(|| CommandFailed::Nothing(format!("no slot {device}/{slot}")))?;
        rules
            .consumables
            .entry(consumable.clone())
            .or_default()
            .mode = Some(mode);
        agent
            .ask(Event::SetRules {
                rules,
                currency: None,
                by: Actor::HomeAssistant,
            })
            .await
            .map_err(CommandFailed::Refused)?;
        Ok(format!("{consumable} mode {}", mode.as_str()))
    }

    /// A discovery config of this household seen on the broker (an earlier run's, retained, or
    /// the echo of this run's): remembers its components, so the next sync removes those the
    /// device no longer has, and the device itself when it is gone.
    fn learn(&mut self, device: String, payload: &[u8]) -> Option<bool> {
        if payload.is_empty() {
            return None;
        }
        let Ok(config) = serde_json::from_slice::<Value>(payload) else {
            tracing::warn!(%device, "unreadable discovery config on the broker; ignored");
            return None;
        };
        let seen = components_of(&config);
        if self.components.get(&device) == Some(&seen) {
            return None;
        }
        self.components.insert(device.clone(), seen);
        self.announced.insert(device);
        Some(false)
    }

    /// Publishes configs and states that changed (all of them with `force`), and removes the
    /// entities of devices that are gone. Fails only when the agent stopped.
    async fn sync(
        &mut self,
        agent: &AgentHandle,
        force: bool,
    ) -> Result<(), crate::runtime::Stopped> {
        // Turned off, no device is announced: every one announced before is gone.
        let (devices, now) = if self.settings.announce {
            agent
                .read(|engine, now| (snapshot(engine, now), now))
                .await?
        } else {
            (Vec::new(), 0)
        };
        let current: BTreeSet<String> = devices.iter().map(|d| d.id.clone()).collect();
        for gone in self
            .announced
            .difference(&current)
            .cloned()
            .collect::<Vec<_>>()
        {
            tracing::info!(device = %gone, "removing the device from Home Assistant");
            let config = self.publish(self.settings.discovery_topic(&gone), Vec::new(), true);
            let state = self.publish(self.settings.state_topic(&gone), Vec::new(), true);
            if config && state {
                self.announced.remove(&gone);
                self.components.remove(&gone);
            }
        }
        for device in &devices {
            let mut config = discovery_config(&self.settings, device);
            let fresh = components_of(&config);
            if let Some(before) = self.components.get(&device.id) {
                mark_removed(&mut config, before);
            }
            let config = config.to_string().into_bytes();
            let state = state_payload(device, now).to_string().into_bytes();
            let config_topic = self.settings.discovery_topic(&device.id);
            if force || self.published.get(&config_topic) != Some(&config) {
                if !self.announced.contains(&device.id) {
                    tracing::info!(device = %device.id, "announcing the device to Home Assistant");
                }
                if self.publish(config_topic, config, true) {
                    self.components.insert(device.id.clone(), fresh);
                }
            }
            let state_topic = self.settings.state_topic(&device.id);
            if force || self.published.get(&state_topic) != Some(&state) {
                self.publish(state_topic, state, true);
            }
            self.announced.insert(device.id.clone());
        }
        Ok(())
    }

    /// Queues one message; false (logged and counted) when it could not be.
    fn publish(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> bool {
        let message = Outgoing {
            topic: topic.clone(),
            payload: payload.clone(),
            retain,
        };
        match self.publisher.publish(message) {
            Ok(()) => {
                emit(HaPublished {
                    topic: &topic,
                    error: None,
                });
                if payload.is_empty() {
                    self.published.remove(&topic);
                } else {
                    self.published.insert(topic, payload);
                }
                true
            }
            Err(error) => {
                emit(HaPublished {
                    topic: &topic,
                    error: Some(&error),
                });
                self.published.remove(&topic);
                false
            }
        }
    }
}

enum CommandFailed {
    Nothing(String),
    Refused(AskError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settings(control: bool) -> HaSettings {
        HaSettings {
            prefix: "replenish/v1".into(),
            household: "home".into(),
            ha_prefix: "homeassistant".into(),
            announce: true,
            control,
            public_url: "http://gateway.local:8080".into(),
            refresh: Duration::from_secs(60),
        }
    }

    fn device() -> DeviceSnapshot {
        DeviceSnapshot {
            id: "coffee".into(),
            name: "Kitchen coffee maker".into(),
            model: "coffee-maker".into(),
            firmware: "0.1.0".into(),
            online: true,
            slots: vec![SlotSnapshot {
                id: "beans".into(),
                consumable: "coffee_beans".into(),
                label: "Coffee beans".into(),
                orderable: true,
                usage_only: false,
                uses: 37,
                outlook: "Coffee beans: about 5 days left (4 to 7)".into(),
                unit: "g".into(),
                capacity: 1000.0,
                level: Some(412.25),
                empty_at: Some(1_700_000_000_000 + 5 * DAY_MS + DAY_MS / 4),
                mode: Mode::Approve,
                pending_order: Some("o-000003".into()),
                pending_text: Some(
                    "Order 1 kg of Coffee beans (2 × 500 g) from BigBox for €17.98, arriving Thursday."
                        .into(),
                ),
            }],
        }
    }

    const ATTRIBUTES: &str = "{{ {'summary': value_json.slots['beans'].outlook, 'pending_order': value_json.slots['beans'].pending_text} | tojson }}";

    #[test]
    fn discovery_config_is_the_device_based_form() {
        let config = discovery_config(&settings(true), &device());
        let expected = json!({
            "dev": {
                "identifiers": ["replenish_home_coffee"],
                "name": "Kitchen coffee maker",
                "model": "coffee-maker",
                "sw_version": "0.1.0",
                "manufacturer": "replenish",
                "configuration_url": "http://gateway.local:8080",
            },
            "o": { "name": "replenish-agent", "sw_version": env!("CARGO_PKG_VERSION") },
            "availability": [
                { "topic": "replenish/v1/home/agent/availability" },
                {
                    "topic": "replenish/v1/home/agent/ha/coffee/state",
                    "value_template": "{{ 'online' if value_json.online else 'offline' }}",
                },
            ],
            "availability_mode": "all",
            "state_topic": "replenish/v1/home/agent/ha/coffee/state",
            "qos": 1,
            "cmps": {
                "beans_level": {
                    "p": "sensor",
                    "name": "Coffee beans level",
                    "unique_id": "replenish_home_coffee_beans_level",
                    "unit_of_measurement": "g",
                    "state_class": "measurement",
                    "icon": "mdi:gauge",
                    "value_template": "{{ value_json.slots['beans'].level }}",
                },
                "beans_days_to_empty": {
                    "p": "sensor",
                    "name": "Coffee beans days to empty",
                    "unique_id": "replenish_home_coffee_beans_days_to_empty",
                    "device_class": "duration",
                    "unit_of_measurement": "d",
                    "state_class": "measurement",
                    "suggested_display_precision": 1,
                    "value_template": "{{ value_json.slots['beans'].days_to_empty }}",
                    "json_attributes_topic": "replenish/v1/home/agent/ha/coffee/state",
                    "json_attributes_template": ATTRIBUTES,
                },
                "beans_empty_at": {
                    "p": "sensor",
                    "name": "Coffee beans predicted empty",
                    "unique_id": "replenish_home_coffee_beans_empty_at",
                    "device_class": "timestamp",
                    "value_template": "{{ value_json.slots['beans'].empty_at }}",
                },
                "beans_low": {
                    "p": "binary_sensor",
                    "name": "Coffee beans low",
                    "unique_id": "replenish_home_coffee_beans_low",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "value_template": "{{ 'ON' if value_json.slots['beans'].low else 'OFF' }}",
                },
                "beans_approve": {
                    "p": "button",
                    "name": "Approve coffee beans order",
                    "unique_id": "replenish_home_coffee_beans_approve",
                    "icon": "mdi:cart-check",
                    "command_topic": "replenish/v1/home/agent/ha/coffee/beans/approve",
                    "payload_press": "PRESS",
                    "json_attributes_topic": "replenish/v1/home/agent/ha/coffee/state",
                    "json_attributes_template": ATTRIBUTES,
                },
                "beans_mode": {
                    "p": "select",
                    "name": "Coffee beans mode",
                    "unique_id": "replenish_home_coffee_beans_mode",
                    "icon": "mdi:cart-cog",
                    "options": ["auto", "approve", "notify", "off"],
                    "command_topic": "replenish/v1/home/agent/ha/coffee/beans/mode",
                    "value_template": "{{ value_json.slots['beans'].mode }}",
                },
            },
        });
        assert_eq!(config, expected, "{config:#}");
        assert_eq!(
            settings(true).discovery_topic("coffee"),
            "homeassistant/device/home_coffee/config"
        );
    }

    #[test]
    fn without_control_there_is_no_button_and_the_mode_is_read_only() {
        let config = discovery_config(&settings(false), &device());
        let cmps = config["cmps"].as_object().unwrap();
        assert!(!cmps.contains_key("beans_approve"));
        assert!(!cmps.contains_key("beans_mode"));
        assert_eq!(cmps["beans_mode_state"]["p"], "sensor");
        assert!(cmps.values().all(|c| c.get("command_topic").is_none()));
    }

    /// Control turned off, or a slot gone: what was announced before and is no more goes out
    /// once as `{"p": platform}`, which is how Home Assistant removes a component.
    #[test]
    fn components_no_longer_there_are_marked_for_removal() {
        let before = components_of(&discovery_config(&settings(true), &device()));
        assert_eq!(before["beans_approve"], "button");
        assert_eq!(before["beans_mode"], "select");
        let mut now = discovery_config(&settings(false), &device());
        mark_removed(&mut now, &before);
        let cmps = now["cmps"].as_object().unwrap();
        assert_eq!(cmps["beans_approve"], json!({ "p": "button" }));
        assert_eq!(cmps["beans_mode"], json!({ "p": "select" }));
        assert_eq!(cmps["beans_mode_state"]["p"], "sensor");
        // Markers are not components: read back, the config has the read-only set only.
        let after = components_of(&now);
        assert!(!after.contains_key("beans_approve"));
        assert_eq!(
            after,
            components_of(&discovery_config(&settings(false), &device()))
        );
        // A slot gone: all of its components are marked.
        let mut empty = device();
        empty.slots.clear();
        let mut config = discovery_config(&settings(true), &empty);
        mark_removed(&mut config, &before);
        assert_eq!(config["cmps"].as_object().unwrap().len(), before.len());
        assert!(components_of(&config).is_empty());
    }

    /// Tap water (no shop sells it) has no button and no mode; a brew counter shows its count,
    /// not a level.
    #[test]
    fn unorderable_slots_have_no_controls_and_counted_slots_a_count() {
        let mut d = device();
        d.slots[0].orderable = false;
        let config = discovery_config(&settings(true), &d);
        let cmps = config["cmps"].as_object().unwrap();
        assert!(!cmps.contains_key("beans_approve") && !cmps.contains_key("beans_mode"));
        assert!(!cmps.contains_key("beans_mode_state"));
        assert!(cmps.contains_key("beans_level"));
        d.slots[0].usage_only = true;
        let config = discovery_config(&settings(true), &d);
        let cmps = config["cmps"].as_object().unwrap();
        assert_eq!(cmps["beans_uses"]["state_class"], "total_increasing");
        assert!(!cmps.contains_key("beans_level") && !cmps.contains_key("beans_days_to_empty"));
    }

    #[test]
    fn only_this_households_discovery_topics_name_a_device() {
        let s = settings(true);
        assert_eq!(
            s.device_of_discovery_topic("homeassistant/device/home_coffee/config"),
            Some("coffee")
        );
        assert_eq!(
            s.device_of_discovery_topic("homeassistant/device/other_coffee/config"),
            None
        );
        assert_eq!(
            s.device_of_discovery_topic("homeassistant/device/home_/config"),
            None
        );
        assert_eq!(
            s.device_of_discovery_topic("homeassistant/sensor/home_coffee/config"),
            None
        );
    }

    #[test]
    fn the_largest_discovery_config_fits_the_default_packet_limit() {
        // Eight slots (the protocol's most) with ids and consumables of the longest length.
        let long = |c: char| std::iter::repeat_n(c, 32).collect::<String>();
        let mut d = device();
        d.id = long('d');
        d.model = long('m');
        d.slots = (0..8)
            .map(|i| SlotSnapshot {
                id: format!("{}{i}", long('s')),
                consumable: format!("{}{i}", long('c')),
                ..d.slots[0].clone()
            })
            .collect();
        let s = settings(true);
        let payload = serde_json::to_vec(&discovery_config(&s, &d)).unwrap();
        let size = s.discovery_topic(&d.id).len() + payload.len() + 16;
        let limit = crate::config::AgentConfig::default().mqtt.max_packet_bytes;
        assert!(size * 2 < limit, "{size} bytes against a limit of {limit}");
        // The old embedded limit (4 KiB) was too small for even a quarter of it.
        assert!(size > 4096, "{size}");
    }

    #[tokio::test]
    async fn a_message_larger_than_the_broker_takes_is_refused_not_sent() {
        let (_shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let settings = crate::mqtt_out::LinkSettings {
            host: "127.0.0.1".into(),
            port: 9,
            client_id: "t".into(),
            keep_alive: Duration::from_secs(30),
            availability_topic: "a".into(),
            subscriptions: Vec::new(),
            max_packet_bytes: 4096,
            connected: Default::default(),
            login: None,
        };
        let (publisher, _input, task) = crate::mqtt_out::spawn(settings, shutdown);
        let big = Outgoing {
            topic: "t".into(),
            payload: vec![b'x'; 5000],
            retain: true,
        };
        assert_eq!(
            publisher.publish(big),
            Err(crate::mqtt_out::PublishError::TooLarge(5017))
        );
        task.abort();
    }

    #[test]
    fn two_slots_of_one_consumable_get_distinct_names() {
        let mut d = device();
        let mut second = d.slots[0].clone();
        second.id = "hopper2".into();
        d.slots.push(second);
        let config = discovery_config(&settings(true), &d);
        assert_eq!(
            config["cmps"]["hopper2_level"]["name"],
            "Coffee beans (hopper2) level"
        );
        assert_eq!(
            config["cmps"]["beans_level"]["name"],
            "Coffee beans (beans) level"
        );
    }

    #[test]
    fn state_has_days_timestamp_low_and_mode() {
        let now = 1_700_000_000_000;
        let state = state_payload(&device(), now);
        assert_eq!(
            state,
            json!({
                "online": true,
                "slots": { "beans": {
                    "consumable": "coffee_beans",
                    "outlook": "Coffee beans: about 5 days left (4 to 7)",
                    "pending_text": "Order 1 kg of Coffee beans (2 × 500 g) from BigBox for €17.98, arriving Thursday.",
                    "level": 412.3,
                    "unit": "g",
                    "days_to_empty": 5.3,
                    "empty_at": "2023-11-20T04:13:20Z",
                    "low": false,
                    "uses": 37,
                    "mode": "approve",
                    "pending_order": "o-000003",
                }},
            })
        );
        // Low by level, and by days.
        let mut d = device();
        d.slots[0].level = Some(150.0);
        assert_eq!(state_payload(&d, now)["slots"]["beans"]["low"], true);
        let soon = state_payload(&device(), now + 3 * DAY_MS);
        assert_eq!(soon["slots"]["beans"]["low"], true);
        // Unknown values are null, which Home Assistant's templates render as unknown.
        let mut d = device();
        d.slots[0].level = None;
        d.slots[0].empty_at = None;
        let state = state_payload(&d, now);
        assert!(state["slots"]["beans"]["level"].is_null());
        assert!(state["slots"]["beans"]["empty_at"].is_null());
        assert_eq!(state["slots"]["beans"]["low"], false);
    }

    #[test]
    fn commands_are_parsed_strictly() {
        let s = settings(true);
        assert_eq!(
            parse_command(&s, "homeassistant/status", b"online"),
            Ok(Command::Announce)
        );
        assert!(matches!(
            parse_command(&s, "homeassistant/status", b"offline"),
            Err(CommandError::Ignored(_))
        ));
        assert_eq!(
            parse_command(
                &s,
                "replenish/v1/home/agent/ha/coffee/beans/approve",
                b"PRESS"
            ),
            Ok(Command::Approve {
                device: "coffee".into(),
                slot: "beans".into()
            })
        );
        assert!(matches!(
            parse_command(
                &s,
                "replenish/v1/home/agent/ha/coffee/beans/approve",
                b"yes"
            ),
            Err(CommandError::Payload(_))
        ));
        assert_eq!(
            parse_command(
                &s,
                "replenish/v1/home/agent/ha/coffee/beans/mode",
                b"notify"
            ),
            Ok(Command::SetMode {
                device: "coffee".into(),
                slot: "beans".into(),
                mode: Mode::Notify
            })
        );
        assert!(matches!(
            parse_command(
                &s,
                "replenish/v1/home/agent/ha/coffee/beans/mode",
                b"sometimes"
            ),
            Err(CommandError::Payload(_))
        ));
        for topic in [
            "replenish/v1/other/agent/ha/coffee/beans/mode",
            "replenish/v1/home/agent/ha/coffee/state",
            "replenish/v1/home/agent/ha/Coffee!/beans/mode",
        ] {
            assert!(
                matches!(
                    parse_command(&s, topic, b"auto"),
                    Err(CommandError::Topic(_))
                ),
                "{topic}"
            );
        }
    }

    /// The examples in `docs/home-assistant.md` are what the code produces.
    #[test]
    fn the_doc_examples_match_the_code() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/home-assistant.md"
        ))
        .unwrap();
        let blocks: Vec<Value> = doc
            .split("```json")
            .skip(1)
            .map(|b| serde_json::from_str(b.split("```").next().unwrap()).unwrap())
            .collect();
        let mut config = discovery_config(&settings(true), &device());
        config["o"]["sw_version"] = json!("0.1.0");
        let documented = &blocks[0];
        for (key, value) in documented.as_object().unwrap() {
            if key == "cmps" {
                for (id, component) in value.as_object().unwrap() {
                    assert_eq!(&config["cmps"][id], component, "doc component {id}");
                }
            } else {
                assert_eq!(&config[key], value, "doc field {key}");
            }
        }
        assert_eq!(blocks[1], state_payload(&device(), 1_700_000_000_000));
    }

    /// The subscriptions match the command topics the configs name, and not the state topics.
    #[test]
    fn subscriptions_cover_commands_only() {
        let s = settings(true);
        let matches = |filter: &str, topic: &str| {
            let f: Vec<&str> = filter.split('/').collect();
            let t: Vec<&str> = topic.split('/').collect();
            f.len() == t.len() && f.iter().zip(&t).all(|(a, b)| *a == "+" || a == b)
        };
        let subs = s.subscriptions();
        for topic in [
            s.approve_topic("coffee", "beans"),
            s.mode_topic("coffee", "beans"),
            s.ha_status_topic(),
        ] {
            assert!(subs.iter().any(|f| matches(f, &topic)), "{topic}");
        }
        assert!(!subs.iter().any(|f| matches(f, &s.state_topic("coffee"))));
    }
}
