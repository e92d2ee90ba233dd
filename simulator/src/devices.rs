//! `replenish-sim devices`: virtual appliances against any MQTT broker, with nothing else of
//! replenish around them: the same coffee maker and fridge as the demo (the firmware's
//! detection and device runtime on simulated sensors), used by a household that follows its
//! habits, in real time or faster.
//!
//! Time is simulated and paced against the wall clock: `speed` simulated seconds per real
//! second, in steps of at most five simulated minutes. Reports carry the simulated time, so an
//! agent on the wall clock accepts an accelerated run only while it stays within the agent's
//! allowed clock skew (`ingest.clock_skew_secs`); brokers, Home Assistant and other tools
//! take any speed. With nobody ordering for it, the household refills a slot by hand when it
//! falls below a fifth of its capacity (counted as a refill bought in a shop).

use std::time::Duration;

use anyhow::Context;
use replenish_agent::clock::{DAY_MS, UnixMs};
use replenish_protocol::HouseholdId;
use tokio::sync::watch;

use crate::appliance::{Appliance, Link, VirtualDevice};
use crate::household::{Action, Planned, Schedule};
use crate::scenario::{self, HouseholdScript, Scenario};
use crate::world::STEP_MS;

/// Simulated time per step at most (the demo's step).
const MAX_STEP_MS: UnixMs = STEP_MS;
/// Simulated time per step at least: at low speeds, a step a real second.
const MIN_STEP_MS: UnixMs = 1_000;
/// A slot below this share of its capacity is refilled by hand.
const REFILL_BELOW: f64 = 0.2;

/// How the appliances log in.
#[derive(Debug, Clone)]
pub enum DeviceLogin {
    /// No login (an open broker).
    None,
    /// One account for every appliance (a test broker's).
    Shared {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// Each appliance its own login, as the agent's embedded broker and the documented
    /// Mosquitto want: the user name is the device id, the password is looked up by
    /// `household/device`, then by `device`.
    PerDevice(std::collections::BTreeMap<String, String>),
}

impl DeviceLogin {
    /// Reads a logins file: TOML, `"household/device" = "password"` or `device = "password"`.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the logins {}", path.display()))?;
        let logins: std::collections::BTreeMap<String, String> = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("in the logins {}: {e}", path.display()))?;
        anyhow::ensure!(!logins.is_empty(), "{}: no login in it", path.display());
        Ok(Self::PerDevice(logins))
    }

    /// (user name, password) for `device` of `household`, if it logs in.
    fn for_device(
        &self,
        household: &str,
        device: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        Ok(match self {
            Self::None => None,
            Self::Shared { username, password } => Some((username.clone(), password.clone())),
            Self::PerDevice(logins) => {
                let password = logins
                    .get(&format!("{household}/{device}"))
                    .or_else(|| logins.get(device))
                    .with_context(|| {
                        format!("no login for {household}/{device} in the logins file")
                    })?;
                Some((device.to_string(), password.clone()))
            }
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DevicesOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// How the appliances log in.
    pub login: DeviceLogin,
    /// TLS to the broker (`mqtts://`); `None`: plain MQTT.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Topic prefix.
    pub prefix: String,
    /// The households, their appliances and what happens to them.
    pub scenario: Scenario,
    /// Households to run, cycling through the scenario's (`None`: the scenario's own).
    pub households: Option<usize>,
    /// Their ids instead of the scenario's: `{household}`, or `{household}-{n}` for several.
    pub household: Option<String>,
    /// Simulated seconds per real second (1: real time).
    pub speed: f64,
    /// Simulated days to run; `None`: until stopped.
    pub days: Option<f64>,
    /// Seed of the habits and the sensors' noise.
    pub seed: u64,
    /// Simulated start (the wall clock, normally); the scenario's days count from it.
    pub start: UnixMs,
    /// Real time between two views of the devices.
    pub view_every: Duration,
}

/// One appliance as the live view shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceView {
    /// Household id.
    pub household: String,
    /// Device id.
    pub device: String,
    /// Connected to the broker now, with power and Wi-Fi (a scenario's outage shows here).
    pub online: bool,
    /// What each slot really holds: (slot, amount, unit).
    pub slots: Vec<(String, f64, String)>,
    /// Messages published so far.
    pub published: u64,
    /// Refills by hand so far.
    pub refills: u64,
}

/// The whole fleet at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetView {
    /// Simulated time (ms since the epoch).
    pub at: UnixMs,
    /// Every appliance.
    pub devices: Vec<DeviceView>,
}

/// An appliance with what it has done so far.
struct Device {
    /// Boxed: an appliance holds its offline buffer inline (tens of KiB), too much to move
    /// around on a task's stack.
    appliance: Box<Appliance>,
    published: u64,
    refills: u64,
}

struct Home {
    household: HouseholdId,
    schedule: Schedule,
    script: HouseholdScript,
    devices: Vec<Device>,
}

/// Runs the appliances until `days` have passed or `stop` turns true, calling `view` every
/// `view_every` of real time and once at the end. Each appliance says `offline` (its retained
/// status) before it disconnects.
pub async fn run(
    options: &DevicesOptions,
    mut stop: watch::Receiver<bool>,
    mut view: impl FnMut(&FleetView),
) -> anyhow::Result<FleetView> {
    anyhow::ensure!(
        options.speed.is_finite() && options.speed > 0.0,
        "--speed must be a positive number"
    );
    let now = options.start;
    let mut homes = Vec::new();
    // The scenario's days count from this run's start, not from the file's date.
    let fleet = scenario::fleet(
        &options.scenario,
        options.seed,
        now,
        options.households,
        options.household.as_deref(),
    );
    anyhow::ensure!(!fleet.is_empty(), "--households must be at least 1");
    for (script, seed) in fleet {
        let household = HouseholdId::new(&script.household)
            .with_context(|| format!("household {:?}", script.household))?;
        let link = Link {
            host: options.host.clone(),
            port: options.port,
            prefix: options.prefix.clone(),
            household: household.clone(),
            tls: options.tls.clone(),
        };
        let mut devices = Vec::new();
        for (n, spec) in script.appliances.iter().enumerate() {
            let login = options
                .login
                .for_device(household.as_str(), spec.device_id())?;
            let login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            let appliance = Appliance::connect(
                spec.device_id(),
                spec.kind
                    .parts(&spec.sizes(), seed.wrapping_add(n as u64))?,
                &link,
                login,
                seed,
                now,
            )
            .await
            .with_context(|| format!("{household}/{}", spec.device_id()))?;
            devices.push(Device {
                appliance: Box::new(appliance),
                published: 0,
                refills: 0,
            });
        }
        homes.push(Home {
            household,
            schedule: script.schedule(seed, now),
            script,
            devices,
        });
    }
    let step_ms = ((options.speed * 1000.0) as UnixMs).clamp(MIN_STEP_MS, MAX_STEP_MS);
    let real_step = Duration::from_secs_f64(step_ms as f64 / 1000.0 / options.speed);
    let end = options
        .days
        .map(|days| options.start + (days * DAY_MS as f64) as UnixMs);
    let mut now = options.start;
    let started = tokio::time::Instant::now();
    let mut next_view = started + options.view_every;
    let mut steps: u32 = 0;
    for home in &mut homes {
        home.exchange(now).await?;
    }
    loop {
        if end.is_some_and(|end| now >= end) || *stop.borrow() {
            break;
        }
        steps += 1;
        // Paced from the start, so slow steps do not add up to drift.
        let due = started + real_step * steps;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.changed() => break,
        }
        let since = now;
        now += step_ms;
        for home in &mut homes {
            home.step(since, now).await?;
        }
        if tokio::time::Instant::now() >= next_view {
            next_view += options.view_every;
            view(&fleet_view(&homes, now));
        }
    }
    let last = fleet_view(&homes, now);
    view(&last);
    for device in homes.into_iter().flat_map(|home| home.devices) {
        device.appliance.go_offline().await;
    }
    Ok(last)
}

fn fleet_view(homes: &[Home], at: UnixMs) -> FleetView {
    let mut devices = Vec::new();
    for home in homes {
        for Device {
            appliance,
            published,
            refills,
        } in &home.devices
        {
            devices.push(DeviceView {
                household: home.household.to_string(),
                device: appliance.id().to_string(),
                online: appliance.is_online() && appliance.device().reachable(),
                slots: appliance
                    .device()
                    .slots
                    .iter()
                    .map(|s| {
                        (
                            s.spec.id.to_string(),
                            s.amount,
                            s.spec.unit.symbol().to_string(),
                        )
                    })
                    .collect(),
                published: *published,
                refills: *refills,
            });
        }
    }
    FleetView { at, devices }
}

impl Home {
    async fn step(&mut self, since: UnixMs, now: UnixMs) -> anyhow::Result<()> {
        let mut stocked: Vec<Stocked<'_>> = self
            .devices
            .iter_mut()
            .map(|d| Stocked {
                device: d.appliance.device_mut(),
                refills: &mut d.refills,
            })
            .collect();
        for planned in self.schedule.due(now) {
            act(planned, &mut stocked);
        }
        for device in &mut self.devices {
            self.script
                .apply(device.appliance.device_mut(), since, now)?;
        }
        self.exchange(now).await
    }

    async fn exchange(&mut self, now: UnixMs) -> anyhow::Result<()> {
        for device in &mut self.devices {
            device.appliance.sample(now);
            device.published += device.appliance.flush(now).await?;
        }
        Ok(())
    }
}

/// An appliance a household keeps stocked by hand, and how often it has.
pub struct Stocked<'a> {
    /// The appliance.
    pub device: &'a mut VirtualDevice,
    /// Refills by hand so far.
    pub refills: &'a mut u64,
}

/// The first of `devices` with a slot `slot`.
fn holding<'s, 'a>(devices: &'s mut [Stocked<'a>], slot: &str) -> Option<&'s mut Stocked<'a>> {
    devices
        .iter_mut()
        .find(|d| d.device.slots.iter().any(|s| s.spec.id.as_str() == slot))
}

/// Carries out one planned action on a household's appliances (an action for an appliance
/// the household does not have is skipped). With nobody ordering for it, the household
/// refills a slot by hand when it is below a fifth of its capacity or short, and tops up the
/// water tank from the tap (not counted).
pub fn act(planned: Planned, devices: &mut [Stocked<'_>]) {
    let at = planned.at;
    match planned.action {
        Action::Brew { beans, water } => {
            let Some(coffee_maker) = holding(devices, "beans") else {
                return;
            };
            if let Some(tank) = coffee_maker.device.slot_mut("water")
                && tank.amount < water * 2.0
            {
                tank.amount = f64::from(tank.spec.capacity);
            }
            if take(
                coffee_maker.device,
                coffee_maker.refills,
                "beans",
                beans,
                at,
            ) {
                take(
                    coffee_maker.device,
                    coffee_maker.refills,
                    "water",
                    water,
                    at,
                );
                coffee_maker.device.count_use("brews", at);
            }
        }
        Action::PourMilk { ml } => {
            if let Some(fridge) = holding(devices, "milk") {
                take(fridge.device, fridge.refills, "milk", ml, at);
            }
        }
        Action::TakeEggs { count } => {
            if let Some(fridge) = holding(devices, "eggs") {
                for _ in 0..count {
                    take(fridge.device, fridge.refills, "eggs", 1.0, at);
                }
            }
        }
        Action::Refill {
            device,
            slot,
            amount,
        } => {
            let Some(d) = devices.iter_mut().find(|d| d.device.id.as_str() == device) else {
                return;
            };
            if let Some(s) = d.device.slot_mut(&slot) {
                s.amount = (s.amount + amount).min(f64::from(s.spec.capacity));
                *d.refills += 1;
                d.device.sample(at);
            }
        }
    }
}

/// Takes `amount` from a slot, refilling it by hand first if it is low; false if there was not
/// enough. The sensors see each change as it happens.
fn take(
    device: &mut VirtualDevice,
    refills: &mut u64,
    slot: &str,
    amount: f64,
    at: UnixMs,
) -> bool {
    let Some(s) = device.slot_mut(slot) else {
        return false;
    };
    let capacity = f64::from(s.spec.capacity);
    if s.amount < amount || s.amount < capacity * REFILL_BELOW {
        s.amount = capacity;
        *refills += 1;
        // The sensor sees the refill before anything is taken.
        device.sample(at);
    }
    let Some(s) = device.slot_mut(slot) else {
        return false;
    };
    if s.amount + 1e-9 < amount {
        return false;
    }
    s.amount -= amount;
    device.sample(at);
    true
}

/// One line per device, for a terminal.
pub fn lines(view: &FleetView) -> String {
    let mut out = String::new();
    let at = jiff::Timestamp::from_millisecond(view.at as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    for d in &view.devices {
        let slots: Vec<String> = d
            .slots
            .iter()
            .map(|(slot, amount, unit)| format!("{slot} {amount:.0} {unit}"))
            .collect();
        out.push_str(&format!(
            "{at}  {}/{:<13} {:<7}  {:<40}  sent {:>5}  refills {}\n",
            d.household,
            d.device,
            if d.online { "online" } else { "offline" },
            slots.join(", "),
            d.published,
            d.refills
        ));
    }
    out
}
