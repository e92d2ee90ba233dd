//! Virtual appliances: the firmware's detection and device runtime on simulated sensors,
//! talking MQTT to a real broker like a real device.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_agent::clock::UnixMs;
use replenish_firmware::calibration::Calibration;
use replenish_firmware::detect::{DetectorConfig, SlotMonitor, UsageCounter};
use replenish_firmware::runtime::{CommandAction, DeviceRuntime, Outgoing, RuntimeConfig};
use replenish_protocol::{
    Birth, Channel, Command, DeviceId, Encoding, HouseholdId, Id, SensorKind, SlotSpec, Unit,
    codec, topic,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};

use crate::loadcell::{Fidelity, LoadCell};

/// Samples a sensor takes per burst: enough for the detector to settle (30 in a row).
const SAMPLES_PER_BURST: usize = 40;
/// Reports a device buffers while offline.
pub const BUFFERED_REPORTS: usize = 128;

/// How a slot is measured in the simulation.
pub enum Sensor {
    /// A load cell read through the real HX711 driver, bit by bit.
    LoadCell {
        /// The simulated HX711 and its driver.
        cell: Box<LoadCell>,
        /// The firmware pipeline.
        monitor: SlotMonitor,
        /// Weight of the empty container, in the slot unit.
        container: f64,
    },
    /// A sensor that reports the amount itself (a time-of-flight tank level, a tray of egg
    /// switches), with noise of the given standard deviation.
    Amount {
        /// The firmware pipeline.
        monitor: SlotMonitor,
        /// Noise, in the slot unit.
        noise: f64,
    },
    /// A counter of uses (the brew counter).
    Counter(UsageCounter),
}

/// One slot: what it really holds, and its sensor.
pub struct SimSlot {
    /// The slot as announced.
    pub spec: SlotSpec,
    /// What it really holds, in its unit.
    pub amount: f64,
    sensor: Sensor,
    /// What the sensor saw at its last burst; a burst happens when it changes.
    sampled: Option<f64>,
    /// What the sensor adds to the true amount (a drifting load cell), in the slot's unit.
    pub bias: f64,
    /// A stuck sensor takes no readings: the device keeps reporting what it saw last.
    pub stuck: bool,
}

impl SimSlot {
    /// A slot holding `amount`.
    pub fn new(spec: SlotSpec, amount: f64, sensor: Sensor) -> Self {
        Self {
            spec,
            amount,
            sensor,
            sampled: None,
            bias: 0.0,
            stuck: false,
        }
    }
}

/// A virtual appliance without a network: its slots, sensors and firmware runtime. Pure: time
/// is passed in, and what it would send waits in its runtime until taken
/// ([`VirtualDevice::next_outgoing`]). [`Appliance`] connects one to a broker; the headless
/// benchmark runs it alone.
pub struct VirtualDevice {
    /// Its id.
    pub id: DeviceId,
    /// Its slots.
    pub slots: Vec<SimSlot>,
    runtime: DeviceRuntime<BUFFERED_REPORTS>,
    encoding: Encoding,
    rng: ChaCha8Rng,
    /// Its Wi-Fi reaches the broker (a scenario's `wifi_outage` turns it off).
    wifi: bool,
    /// It has power (a scenario's `power_loss` turns it off; it boots again when back).
    powered: bool,
}

/// A virtual appliance connected to an MQTT broker, like a real device.
pub struct Appliance {
    device: VirtualDevice,
    client: AsyncClient,
    /// (connections so far, connected now), from the MQTT task.
    connections: watch::Receiver<(u64, bool)>,
    seen_connections: u64,
    commands: mpsc::Receiver<Command>,
    prefix: String,
    household: HouseholdId,
    poller: tokio::task::JoinHandle<()>,
}

fn id<T: From<Id>>(s: &str) -> anyhow::Result<T> {
    Id::new(s)
        .map(T::from)
        .with_context(|| format!("bad id {s:?}"))
}

fn spec(
    slot: &str,
    consumable: &str,
    unit: Unit,
    capacity: f32,
    sensor: SensorKind,
) -> anyhow::Result<SlotSpec> {
    Ok(SlotSpec {
        id: id(slot)?,
        consumable: id(consumable)?,
        unit,
        capacity,
        sensor,
    })
}

/// Where an appliance connects and what it belongs to.
#[derive(Debug, Clone)]
pub struct Link {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Topic prefix.
    pub prefix: String,
    /// Household.
    pub household: HouseholdId,
    /// TLS to the broker (`mqtts://`), with the roots it trusts; `None`: plain MQTT.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client configuration trusting the CA certificates in the PEM file `ca`, or the
/// system's roots without one.
pub fn tls_config(ca: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("a certificate in {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("a CA certificate in {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system root rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no CA certificate to trust (give --ca FILE)"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The kinds of appliance the simulator builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplianceKind {
    /// A bean hopper on a load cell, a water tank level sensor and a brew counter. Speaks the
    /// binary encoding, as a small device would.
    CoffeeMaker,
    /// A milk shelf on a load cell and an egg tray that counts eggs. Speaks JSON.
    Fridge,
}

/// One slot an appliance kind has: what it holds and how much, by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotDefault {
    /// Slot id.
    pub slot: &'static str,
    /// Consumable.
    pub consumable: &'static str,
    /// Unit.
    pub unit: Unit,
    /// Capacity.
    pub capacity: f64,
    /// What it holds at the start.
    pub fill: f64,
    /// What its sensor measures.
    pub sensor: SensorKind,
}

const fn level(
    slot: &'static str,
    consumable: &'static str,
    unit: Unit,
    capacity: f64,
    fill: f64,
) -> SlotDefault {
    SlotDefault {
        slot,
        consumable,
        unit,
        capacity,
        fill,
        sensor: SensorKind::Level,
    }
}

const COFFEE_MAKER_SLOTS: [SlotDefault; 3] = [
    level("beans", "coffee_beans", Unit::G, 1000.0, 600.0),
    level("water", "water", Unit::Ml, 1500.0, 1200.0),
    SlotDefault {
        sensor: SensorKind::Usage,
        ..level("brews", "coffee_brews", Unit::Count, 100_000.0, 0.0)
    },
];
const FRIDGE_SLOTS: [SlotDefault; 2] = [
    level("milk", "milk", Unit::Ml, 3000.0, 2000.0),
    level("eggs", "eggs", Unit::Count, 12.0, 10.0),
];

/// What an appliance holds at the start and at most, per slot, where not the kind's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sizes {
    /// Amount at the start, by slot id.
    pub fill: BTreeMap<String, f64>,
    /// Capacity, by slot id.
    pub capacity: BTreeMap<String, f64>,
}

impl Sizes {
    /// Starting with `fill` of each slot named.
    pub fn filled(fill: &[(&str, f64)]) -> Self {
        Self {
            fill: fill.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            capacity: BTreeMap::new(),
        }
    }
}

impl ApplianceKind {
    /// Its device id when a scenario names none.
    pub fn default_id(self) -> &'static str {
        match self {
            Self::CoffeeMaker => "coffee-maker",
            Self::Fridge => "fridge",
        }
    }

    /// Its slots with their defaults.
    pub fn slots(self) -> &'static [SlotDefault] {
        match self {
            Self::CoffeeMaker => &COFFEE_MAKER_SLOTS,
            Self::Fridge => &FRIDGE_SLOTS,
        }
    }

    /// Its birth, slots and encoding, sized by `sizes`, its load cells read through the
    /// firmware's driver.
    pub fn parts(
        self,
        sizes: &Sizes,
        seed: u64,
    ) -> anyhow::Result<(Birth, Vec<SimSlot>, Encoding)> {
        self.parts_with(sizes, seed, Fidelity::Driver)
    }

    /// The same, its load cells read as `fidelity` says.
    pub fn parts_with(
        self,
        sizes: &Sizes,
        seed: u64,
        fidelity: Fidelity,
    ) -> anyhow::Result<(Birth, Vec<SimSlot>, Encoding)> {
        let sized = |n: usize| -> anyhow::Result<(SlotSpec, f64)> {
            let d = self.slots()[n];
            let capacity = sizes.capacity.get(d.slot).copied().unwrap_or(d.capacity);
            let fill = sizes.fill.get(d.slot).copied().unwrap_or(d.fill);
            anyhow::ensure!(
                capacity.is_finite() && capacity > 0.0,
                "{}: the capacity of {} must be a positive number",
                self.default_id(),
                d.slot
            );
            anyhow::ensure!(
                (0.0..=capacity).contains(&fill),
                "{}: {} starts with {fill} {}, outside 0..={capacity}",
                self.default_id(),
                d.slot,
                d.unit.symbol()
            );
            Ok((
                spec(d.slot, d.consumable, d.unit, capacity as f32, d.sensor)?,
                fill,
            ))
        };
        match self {
            Self::CoffeeMaker => {
                let (beans_spec, beans) = sized(0)?;
                let (water_spec, water) = sized(1)?;
                let (brews_spec, _) = sized(2)?;
                let calibration = Calibration::new(84_000, 0.01);
                let slots = vec![
                    SimSlot::new(
                        beans_spec.clone(),
                        beans,
                        Sensor::LoadCell {
                            cell: Box::new(LoadCell::with_fidelity(seed, 30.0, fidelity)),
                            monitor: SlotMonitor::for_spec(&beans_spec, calibration),
                            container: 0.0,
                        },
                    ),
                    SimSlot::new(
                        water_spec.clone(),
                        water,
                        Sensor::Amount {
                            monitor: SlotMonitor::new(
                                water_spec.id.clone(),
                                Calibration::IDENTITY,
                                DetectorConfig::scaled(5.0),
                            ),
                            noise: 1.0,
                        },
                    ),
                    SimSlot::new(
                        brews_spec.clone(),
                        0.0,
                        Sensor::Counter(UsageCounter::new(brews_spec.id.clone(), 1.0)),
                    ),
                ];
                Ok((
                    birth("coffee-maker", &slots, seed)?,
                    slots,
                    Encoding::Binary,
                ))
            }
            Self::Fridge => {
                let (milk_spec, milk) = sized(0)?;
                let (eggs_spec, eggs) = sized(1)?;
                // The shelf's load cell reads millilitres of milk directly: the firmware is
                // calibrated with the milk's density folded into the scale.
                let calibration = Calibration::new(-12_000, 0.05);
                let slots = vec![
                    SimSlot::new(
                        milk_spec.clone(),
                        milk,
                        Sensor::LoadCell {
                            cell: Box::new(LoadCell::with_fidelity(seed ^ 0x5eed, 20.0, fidelity)),
                            monitor: SlotMonitor::for_spec(&milk_spec, calibration),
                            container: 0.0,
                        },
                    ),
                    SimSlot::new(
                        eggs_spec.clone(),
                        eggs,
                        Sensor::Amount {
                            monitor: SlotMonitor::for_spec(&eggs_spec, Calibration::IDENTITY),
                            noise: 0.0,
                        },
                    ),
                ];
                Ok((birth("fridge", &slots, seed)?, slots, Encoding::Json))
            }
        }
    }
}

impl Appliance {
    /// A coffee maker holding `beans` grams, the rest as [`ApplianceKind::CoffeeMaker`]'s
    /// defaults.
    pub fn coffee_maker(beans: f64, seed: u64) -> anyhow::Result<(Birth, Vec<SimSlot>, Encoding)> {
        ApplianceKind::CoffeeMaker.parts(&Sizes::filled(&[("beans", beans)]), seed)
    }

    /// A fridge holding `milk` millilitres and `eggs` eggs.
    pub fn fridge(
        milk: f64,
        eggs: f64,
        seed: u64,
    ) -> anyhow::Result<(Birth, Vec<SimSlot>, Encoding)> {
        ApplianceKind::Fridge.parts(&Sizes::filled(&[("milk", milk), ("eggs", eggs)]), seed)
    }

    /// Connects an appliance to the broker and waits for the connection. With a `login` (user
    /// name, password), the client id is the device id, as the agent's gate requires (its
    /// logins have the device id as user name).
    pub async fn connect(
        device: &str,
        parts: (Birth, Vec<SimSlot>, Encoding),
        link: &Link,
        login: Option<(&str, &str)>,
        seed: u64,
        now: UnixMs,
    ) -> anyhow::Result<Self> {
        let virtual_device = VirtualDevice::new(device, parts, seed, now)?;
        let device = virtual_device.id.clone();
        let status_topic = topic::build(&link.prefix, &link.household, &device, Channel::Status);
        let will = encode(&virtual_device.runtime.last_will(), virtual_device.encoding)?;
        let client_id = match login {
            Some(_) => device.to_string(),
            None => format!("sim-{}-{device}", link.household),
        };
        let mut options = MqttOptions::new(client_id, &link.host, link.port);
        if let Some((username, password)) = login {
            options.set_credentials(username, password);
        }
        if let Some(tls) = &link.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_last_will(LastWill::new(status_topic, will, QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let cmd_topic = topic::build(&link.prefix, &link.household, &device, Channel::Cmd);
        let (conn_tx, mut connections) = watch::channel((0u64, false));
        let (cmd_tx, commands) = mpsc::channel(16);
        let sub_client = client.clone();
        let poller = tokio::spawn(async move {
            let mut leaving = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub_client.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce);
                        conn_tx.send_modify(|(n, up)| {
                            *n += 1;
                            *up = true;
                        });
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        match codec::decode::<Command>(&p.payload) {
                            Ok(cmd) => {
                                let _ = cmd_tx.send(cmd).await;
                            }
                            Err(error) => tracing::warn!(%error, "device refused a command"),
                        }
                    }
                    // Handled after everything queued before it. Polled on until the broker
                    // closes the connection: dropped earlier, the DISCONNECT might not be
                    // written, and the broker would publish the last will as well.
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                        conn_tx.send_modify(|(_, up)| *up = false);
                        leaving = true;
                    }
                    Ok(_) => {}
                    Err(_) if leaving => break,
                    Err(error) => {
                        conn_tx.send_modify(|(_, up)| *up = false);
                        tracing::debug!(%error, "device connection lost");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            connections.wait_for(|(n, _)| *n > 0),
        )
        .await
        .context("device could not connect to the broker within 10 s")?
        .context("device connection task ended")?;
        Ok(Self {
            device: virtual_device,
            client,
            connections,
            seen_connections: 0,
            commands,
            prefix: link.prefix.clone(),
            household: link.household.clone(),
            poller,
        })
    }

    /// Its id.
    pub fn id(&self) -> &DeviceId {
        &self.device.id
    }

    /// The appliance itself.
    pub fn device(&self) -> &VirtualDevice {
        &self.device
    }

    /// The appliance itself, to use it.
    pub fn device_mut(&mut self) -> &mut VirtualDevice {
        &mut self.device
    }

    /// The slot with this id.
    pub fn slot_mut(&mut self, slot: &str) -> Option<&mut SimSlot> {
        self.device.slot_mut(slot)
    }

    /// Counts one use on a counter slot (a brew).
    pub fn count_use(&mut self, slot: &str, now: UnixMs) {
        self.device.count_use(slot, now);
    }

    /// Runs the sensors (see [`VirtualDevice::sample`]).
    pub fn sample(&mut self, now: UnixMs) {
        self.device.sample(now);
    }

    /// Handles commands from the agent and publishes everything queued. Returns how many
    /// messages were published.
    pub async fn flush(&mut self, now: UnixMs) -> anyhow::Result<u64> {
        let (connections, up) = *self.connections.borrow();
        let new_connection = up && connections != self.seen_connections;
        if new_connection {
            self.seen_connections = connections;
        }
        self.device.link(up, new_connection, now);
        while let Ok(command) = self.commands.try_recv() {
            self.device.handle_command(&command, now);
        }
        let mut published = 0;
        while let Some((out, payload)) = self.device.next_outgoing()? {
            let topic = topic::build(&self.prefix, &self.household, &self.device.id, out.channel);
            self.client
                .publish(topic, QoS::AtLeastOnce, out.retain, payload)
                .await?;
            self.device.confirm_sent(&out);
            published += 1;
        }
        Ok(published)
    }

    /// Whether the MQTT connection is up now.
    pub fn is_online(&self) -> bool {
        self.connections.borrow().1
    }

    /// Says `offline` (the retained status its last will would have said), then disconnects:
    /// how a device that is switched off properly leaves.
    pub async fn go_offline(self) {
        if self.is_online()
            && let Ok(payload) = encode(&self.device.runtime.last_will(), self.device.encoding)
        {
            let topic = topic::build(
                &self.prefix,
                &self.household,
                &self.device.id,
                Channel::Status,
            );
            let _ = self
                .client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await;
        }
        self.disconnect().await;
    }

    /// Disconnects cleanly.
    pub async fn disconnect(self) {
        let mut poller = self.poller;
        // What was queued goes out first; the poller ends once the DISCONNECT is written.
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut poller).await;
        }
        poller.abort();
    }
}

impl VirtualDevice {
    /// The appliance `device` made of `parts` (see [`Appliance::coffee_maker`],
    /// [`Appliance::fridge`]), its clock at `now`.
    pub fn new(
        device: &str,
        parts: (Birth, Vec<SimSlot>, Encoding),
        seed: u64,
        now: UnixMs,
    ) -> anyhow::Result<Self> {
        let (birth, slots, encoding) = parts;
        Ok(Self {
            id: id(device)?,
            slots,
            runtime: boot(birth, now)?,
            encoding,
            rng: ChaCha8Rng::seed_from_u64(seed),
            wifi: true,
            powered: true,
        })
    }

    /// Brings the runtime's link state in line with the transport (`transport_up`, and
    /// `new_connection` after a reconnection) and the device's own Wi-Fi and power: a link
    /// that goes down keeps reports in the runtime's buffer; one that comes back sends the
    /// birth first, then what was buffered.
    pub fn link(&mut self, transport_up: bool, new_connection: bool, now: UnixMs) {
        let up = transport_up && self.wifi && self.powered;
        if !up {
            if self.runtime.is_connected() {
                self.runtime.disconnected();
            }
        } else if new_connection || !self.runtime.is_connected() {
            self.runtime.connected(now);
        }
    }

    /// Turns its Wi-Fi on or off (see [`Self::link`]).
    pub fn set_wifi(&mut self, on: bool) {
        self.wifi = on;
    }

    /// Cuts or restores its power. Off, it neither measures nor sends; back on, it boots
    /// again: a new boot number, and the reports in its RAM buffer are gone, as on a real one.
    pub fn set_power(&mut self, on: bool, now: UnixMs) -> anyhow::Result<()> {
        if on && !self.powered {
            let mut birth = self.runtime.birth().clone();
            birth.boot = birth.boot.wrapping_add(1);
            self.runtime = boot(birth, now)?;
            // Its sensors start from what they see now.
            for slot in &mut self.slots {
                slot.sampled = None;
            }
        }
        self.powered = on;
        Ok(())
    }

    /// Whether it could reach the broker: it has power and Wi-Fi.
    pub fn reachable(&self) -> bool {
        self.powered && self.wifi
    }

    /// Whether it has power.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Its boot number.
    pub fn boot(&self) -> u32 {
        self.runtime.boot()
    }

    /// Reports waiting in its buffer.
    pub fn pending_reports(&self) -> usize {
        self.runtime.pending_reports()
    }

    /// Tells the runtime it is connected (its birth goes first), as a transport would.
    pub fn connected(&mut self, now: UnixMs) {
        self.runtime.connected(now);
    }

    /// The next message to send, with its payload, until [`Self::confirm_sent`] takes it off.
    pub fn next_outgoing(&self) -> anyhow::Result<Option<(Outgoing, Vec<u8>)>> {
        match self.runtime.peek() {
            Some(out) => {
                let payload = encode(&out, self.encoding)?;
                Ok(Some((out, payload)))
            }
            None => Ok(None),
        }
    }

    /// `out` was sent.
    pub fn confirm_sent(&mut self, out: &Outgoing) {
        self.runtime.confirm_sent(out);
    }

    /// Carries out a command from the agent (tare, calibrate; the runtime answers the rest).
    pub fn handle_command(&mut self, command: &Command, now: UnixMs) {
        match self.runtime.handle_command(command, now) {
            CommandAction::Tare { id, slot } => {
                let result = self
                    .monitor(&slot)
                    .map(|m| m.tare().map_err(|e| e.to_string()));
                self.runtime
                    .complete_command(id, result.unwrap_or_else(|| Err("no such slot".into())));
            }
            CommandAction::Calibrate { id, slot, known } => {
                let result = self
                    .monitor(&slot)
                    .map(|m| m.calibrate(known).map_err(|e| e.to_string()));
                self.runtime
                    .complete_command(id, result.unwrap_or_else(|| Err("no such slot".into())));
            }
            _ => {}
        }
    }

    /// The slot with this id.
    pub fn slot_mut(&mut self, slot: &str) -> Option<&mut SimSlot> {
        self.slots.iter_mut().find(|s| s.spec.id.as_str() == slot)
    }

    /// Counts one use on a counter slot (a brew); an appliance without power counts nothing.
    pub fn count_use(&mut self, slot: &str, now: UnixMs) {
        if !self.powered {
            return;
        }
        let Some(s) = self.slots.iter_mut().find(|s| s.spec.id.as_str() == slot) else {
            return;
        };
        s.amount += 1.0;
        if let Sensor::Counter(counter) = &mut s.sensor
            && let Some(body) = counter.record_use()
            && let Err(error) = self.runtime.report(body, now)
        {
            tracing::warn!(%error, "report refused by the runtime");
        }
    }

    /// Runs the sensors: a burst of samples on every slot whose contents changed, and the
    /// periodic level heartbeat.
    pub fn sample(&mut self, now: UnixMs) {
        if !self.powered {
            return;
        }
        for slot in &mut self.slots {
            let amount = slot.amount + slot.bias;
            if slot.stuck || slot.sampled == Some(amount) {
                continue;
            }
            slot.sampled = Some(amount);
            let mut bodies = Vec::new();
            match &mut slot.sensor {
                Sensor::LoadCell {
                    cell,
                    monitor,
                    container,
                } => {
                    for _ in 0..SAMPLES_PER_BURST {
                        match cell.read(monitor.calibration(), amount + *container) {
                            Ok(raw) => bodies.extend(monitor.sample_raw(raw)),
                            Err(error) => tracing::warn!(%error, "load cell read failed"),
                        }
                    }
                }
                Sensor::Amount { monitor, noise } => {
                    for _ in 0..SAMPLES_PER_BURST {
                        let n = if *noise > 0.0 {
                            self.rng.random_range(-*noise..*noise)
                        } else {
                            0.0
                        };
                        bodies.extend(monitor.sample_amount((amount + n) as f32));
                    }
                }
                Sensor::Counter(_) => {}
            }
            for body in bodies {
                if let Err(error) = self.runtime.report(body, now) {
                    tracing::warn!(%error, "report refused by the runtime");
                }
            }
        }
        if self.runtime.level_report_due(now) {
            for slot in &self.slots {
                let body = match &slot.sensor {
                    Sensor::LoadCell { monitor, .. } | Sensor::Amount { monitor, .. } => {
                        monitor.level_report()
                    }
                    Sensor::Counter(_) => None,
                };
                if let Some(body) = body {
                    let _ = self.runtime.report(body, now);
                }
            }
            self.runtime.mark_levels_reported(now);
        }
    }

    fn monitor(&mut self, slot: &Id) -> Option<&mut SlotMonitor> {
        self.slots
            .iter_mut()
            .find(|s| &s.spec.id == slot)
            .and_then(|s| match &mut s.sensor {
                Sensor::LoadCell { monitor, .. } | Sensor::Amount { monitor, .. } => Some(monitor),
                Sensor::Counter(_) => None,
            })
    }
}

/// A device runtime starting at `now` for `birth` (its boot number new).
fn boot(birth: Birth, now: UnixMs) -> anyhow::Result<DeviceRuntime<BUFFERED_REPORTS>> {
    let mut runtime = DeviceRuntime::new(
        birth,
        RuntimeConfig {
            report_interval_ms: 6 * 3_600_000,
            ..Default::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("birth refused: {e}"))?;
    runtime.set_time(now, now);
    Ok(runtime)
}

fn birth(model: &str, slots: &[SimSlot], seed: u64) -> anyhow::Result<Birth> {
    let mut specs = heapless::Vec::new();
    for slot in slots {
        specs
            .push(slot.spec.clone())
            .map_err(|_| anyhow::anyhow!("too many slots"))?;
    }
    Ok(Birth {
        model: id(model)?,
        firmware: heapless::String::try_from(env!("CARGO_PKG_VERSION"))
            .map_err(|_| anyhow::anyhow!("version too long"))?,
        boot: (seed as u32) | 1,
        slots: specs,
        // Set by the firmware runtime to its buffer size.
        buffer: None,
        usage: None,
    })
}

fn encode(out: &Outgoing, encoding: Encoding) -> anyhow::Result<Vec<u8>> {
    let bytes = match &out.message {
        replenish_firmware::runtime::OutgoingMessage::Status(s) => codec::encode(s, encoding),
        replenish_firmware::runtime::OutgoingMessage::Report(r) => codec::encode(r, encoding),
        replenish_firmware::runtime::OutgoingMessage::Ack(a) => codec::encode(a, encoding),
    };
    bytes.map_err(|e| anyhow::anyhow!("cannot encode: {e}"))
}
