//! `replenish-sim load`: a fleet of virtual devices speaking the real protocol to a broker as
//! fast as it takes (or at a fixed rate), for load tests and the ingest benchmark.
//!
//! Each device (a coffee maker: a brew counter, a bean hopper and a water tank) announces itself
//! with a retained birth (declaring its buffer), then sends usage reports on its `brews` slot
//! and every fifth report a level of `beans` or `water`, numbered per boot like the firmware
//! runtime does. Options add what real fleets do: reboots (a new boot id and birth),
//! offline flushes delivered out of order, and duplicates (a QoS 1 resend). Several devices
//! share one MQTT connection (a gateway) or each has its own.
//!
//! Payloads are built by [`FleetPlan::messages`], a pure function of the plan and its seed, so
//! the expected totals are known before anything is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replenish_protocol::{
    Birth, Channel, DeviceId, Encoding, HouseholdId, Id, Report, ReportBody, SensorKind, SlotSpec,
    Status, Unit, codec, topic,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// The reports a device keeps while offline, as its birth declares.
pub const DEVICE_BUFFER: u16 = 512;

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPlan {
    /// Topic prefix.
    pub prefix: String,
    /// The household.
    pub household: String,
    /// Device ids are this, a dash and a five-digit number.
    pub device_prefix: String,
    /// Devices.
    pub devices: usize,
    /// Devices sharing one MQTT connection (1: one connection each).
    pub per_connection: usize,
    /// Reports per device.
    pub reports_per_device: u32,
    /// A device reboots after this many reports (new boot id, new birth); 0: never.
    pub reboot_every: u32,
    /// Reports are sent in shuffled blocks of this size, as an offline flush out of order
    /// would (1: in order).
    pub reorder_block: usize,
    /// Share of reports sent twice.
    pub duplicate_share: f64,
    /// JSON or binary payloads.
    pub encoding: Encoding,
    /// The `ts` of reports (0: the device does not know the time).
    pub ts: u64,
    /// Seed of shuffles and duplicates.
    pub seed: u64,
}

impl Default for FleetPlan {
    fn default() -> Self {
        Self {
            prefix: replenish_protocol::DEFAULT_PREFIX.into(),
            household: "home".into(),
            device_prefix: "load".into(),
            devices: 100,
            per_connection: 50,
            reports_per_device: 100,
            reboot_every: 0,
            reorder_block: 1,
            duplicate_share: 0.0,
            encoding: Encoding::Binary,
            ts: 0,
            seed: 1,
        }
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Retained (births).
    pub retain: bool,
}

/// What a plan sends, counted before sending.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetTotals {
    /// Births (one per device and boot).
    pub births: u64,
    /// Reports, each counted once.
    pub reports: u64,
    /// Usage reports, each counted once: the uses the agent must end up with.
    pub uses: u64,
    /// Reports sent a second time.
    pub duplicates: u64,
}

impl FleetTotals {
    /// Every message published.
    pub fn published(&self) -> u64 {
        self.births + self.reports + self.duplicates
    }
}

/// The id of device `i` of the default plan.
pub fn device_id(i: usize) -> String {
    format!("load-{i:05}")
}

fn birth(boot: u32) -> anyhow::Result<Status> {
    let slot = |id: &str, consumable: &str, unit, capacity, sensor| -> anyhow::Result<SlotSpec> {
        Ok(SlotSpec {
            id: Id::new(id)?,
            consumable: Id::new(consumable)?,
            unit,
            capacity,
            sensor,
        })
    };
    let mut slots = heapless::Vec::new();
    for spec in [
        slot(
            "brews",
            "coffee_brews",
            Unit::Count,
            100_000.0,
            SensorKind::Usage,
        )?,
        slot("beans", "coffee_beans", Unit::G, 1000.0, SensorKind::Level)?,
        slot("water", "water", Unit::Ml, 1500.0, SensorKind::Level)?,
    ] {
        slots
            .push(spec)
            .map_err(|_| anyhow::anyhow!("too many slots"))?;
    }
    Ok(Status::Online(Birth {
        model: Id::new("load-device")?,
        firmware: heapless::String::try_from("load").map_err(|_| anyhow::anyhow!("name"))?,
        boot,
        slots,
        buffer: Some(DEVICE_BUFFER),
        usage: None,
    }))
}

impl FleetPlan {
    /// The messages of one connection (devices `first..first + count`), in sending order, and
    /// what they add up to.
    pub fn messages(
        &self,
        first: usize,
        count: usize,
    ) -> anyhow::Result<(Vec<Message>, FleetTotals)> {
        let household = HouseholdId::new(&self.household)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (first as u64).wrapping_mul(0x9e37));
        let mut totals = FleetTotals::default();
        let encode = |bytes: Result<Vec<u8>, replenish_protocol::EncodeError>| {
            bytes.map_err(|e| anyhow::anyhow!("encoding: {e}"))
        };
        // Per device: its reports grouped by boot, each boot led by its birth.
        let mut per_device: Vec<Vec<Message>> = Vec::with_capacity(count);
        for i in first..first + count {
            let device = DeviceId::new(&format!("{}-{i:05}", self.device_prefix))?;
            let status_topic = topic::build(&self.prefix, &household, &device, Channel::Status);
            let report_topic = topic::build(&self.prefix, &household, &device, Channel::Report);
            let mut out = Vec::new();
            let mut boot = 1u32;
            let mut seq = 0u32;
            let mut boot_reports: Vec<Message> = Vec::new();
            let mut level = 1000.0f32;
            let flush =
                |out: &mut Vec<Message>, boot_reports: &mut Vec<Message>, rng: &mut ChaCha8Rng| {
                    if self.reorder_block > 1 {
                        for block in boot_reports.chunks_mut(self.reorder_block) {
                            block.shuffle(rng);
                        }
                    }
                    out.append(boot_reports);
                };
            out.push(Message {
                topic: status_topic.clone(),
                payload: encode(codec::encode(&birth(boot)?, self.encoding))?,
                retain: true,
            });
            totals.births += 1;
            for n in 0..self.reports_per_device {
                if self.reboot_every > 0 && n > 0 && n.is_multiple_of(self.reboot_every) {
                    flush(&mut out, &mut boot_reports, &mut rng);
                    boot += 1;
                    seq = 0;
                    out.push(Message {
                        topic: status_topic.clone(),
                        payload: encode(codec::encode(&birth(boot)?, self.encoding))?,
                        retain: true,
                    });
                    totals.births += 1;
                }
                seq += 1;
                let body = if seq.is_multiple_of(5) {
                    // Every fifth report a level, of the beans and the water in turn.
                    level = if level < 100.0 { 1000.0 } else { level - 9.0 };
                    let slot = if seq.is_multiple_of(10) {
                        "beans"
                    } else {
                        "water"
                    };
                    ReportBody::Level {
                        slot: Id::new(slot)?,
                        remaining: level,
                    }
                } else {
                    totals.uses += 1;
                    ReportBody::Usage {
                        slot: Id::new("brews")?,
                        amount: 1.0,
                        uses: 1,
                    }
                };
                let report = Report {
                    boot,
                    seq,
                    ts: self.ts,
                    body,
                };
                let message = Message {
                    topic: report_topic.clone(),
                    payload: encode(codec::encode(&report, self.encoding))?,
                    retain: false,
                };
                totals.reports += 1;
                if self.duplicate_share > 0.0 && rng.random_bool(self.duplicate_share.min(1.0)) {
                    boot_reports.push(message.clone());
                    totals.duplicates += 1;
                }
                boot_reports.push(message);
            }
            flush(&mut out, &mut boot_reports, &mut rng);
            per_device.push(out);
        }
        // Interleave devices: each sends its next message in turn, as a gateway would.
        let mut messages = Vec::with_capacity(per_device.iter().map(Vec::len).sum());
        let mut cursors: Vec<std::vec::IntoIter<Message>> =
            per_device.into_iter().map(Vec::into_iter).collect();
        loop {
            let mut any = false;
            for cursor in &mut cursors {
                if let Some(m) = cursor.next() {
                    messages.push(m);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        Ok((messages, totals))
    }

    /// The connections: (first device, devices) of each.
    pub fn connections(&self) -> Vec<(usize, usize)> {
        let per = self.per_connection.max(1);
        (0..self.devices)
            .step_by(per)
            .map(|first| (first, per.min(self.devices - first)))
            .collect()
    }
}

/// Where to send, and how fast.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Messages per second over all connections; `None`: as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Client id prefix.
    pub client_prefix: String,
    /// User name and password every connection presents (a fleet shares one account: on the
    /// embedded broker, the agent's).
    pub login: Option<(String, String)>,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadOutcome {
    /// What the plan sends.
    pub totals: FleetTotals,
    /// Messages the broker acknowledged (PUBACK).
    pub acked: u64,
    /// Seconds from the first publish to the last PUBACK.
    pub seconds: f64,
    /// Messages per second.
    pub rate: f64,
    /// When each message was handed to the client, in order, per connection (seconds since
    /// the start), kept only when asked for (latency runs).
    #[serde(skip)]
    pub sent_at: Vec<Vec<f64>>,
    /// The instant `sent_at` counts from.
    #[serde(skip)]
    pub started: Option<Instant>,
}

/// Live counters of a run, for progress.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Messages acknowledged by the broker so far.
    pub acked: AtomicU64,
}

/// The uses `agent` has stored of the fleet's brew counters (every device's `brews` slot): what
/// a run's usage reports added up to, once each.
pub async fn stored_uses(agent: &replenish_agent::Agent) -> anyhow::Result<u64> {
    let uses = agent
        .handle()
        .read(|engine, _| {
            engine
                .slots()
                .filter(|s| s.spec.id.as_str() == "brews")
                .map(|s| s.uses)
                .sum::<u64>()
        })
        .await?;
    Ok(uses)
}

/// Sends the plan to the broker; returns when the broker has acknowledged every message.
pub async fn run(
    plan: &FleetPlan,
    target: &LoadTarget,
    progress: Arc<LoadProgress>,
    keep_send_times: bool,
) -> anyhow::Result<LoadOutcome> {
    let connections = plan.connections();
    let mut batches = Vec::with_capacity(connections.len());
    let mut totals = FleetTotals::default();
    for &(first, count) in &connections {
        let (messages, t) = plan.messages(first, count)?;
        totals.births += t.births;
        totals.reports += t.reports;
        totals.uses += t.uses;
        totals.duplicates += t.duplicates;
        batches.push(messages);
    }
    let per_connection_rate = target.rate.map(|r| r / connections.len().max(1) as f64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (n, messages) in batches.into_iter().enumerate() {
        let client_id = format!("{}-{n}", target.client_prefix);
        let target = target.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            publish_all(
                &client_id,
                &target,
                messages,
                per_connection_rate,
                start,
                progress,
                keep_send_times,
            )
            .await
        }));
    }
    let mut acked = 0;
    let mut sent_at = Vec::new();
    for task in tasks {
        let (n, times) = task.await.context("a publisher task failed")??;
        acked += n;
        sent_at.push(times);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(LoadOutcome {
        totals,
        acked,
        seconds,
        rate: acked as f64 / seconds.max(1e-9),
        sent_at,
        started: Some(start),
    })
}

/// One connection: publishes its messages (paced if asked) and waits for every PUBACK.
async fn publish_all(
    client_id: &str,
    target: &LoadTarget,
    messages: Vec<Message>,
    rate: Option<f64>,
    start: Instant,
    progress: Arc<LoadProgress>,
    keep_send_times: bool,
) -> anyhow::Result<(u64, Vec<f64>)> {
    let mut options = MqttOptions::new(client_id, &target.host, target.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(200)
        .set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some((user, password)) = &target.login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let total = messages.len() as u64;
    let poller = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut failures = 0u32;
        while acked < total {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    progress.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => failures = 0,
                Err(error) => {
                    failures += 1;
                    if failures > 50 {
                        return Err(anyhow::anyhow!("broker unreachable: {error}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(acked)
    });
    let mut times = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        if let Some(rate) = rate {
            // Paced: message i leaves at i / rate.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        if keep_send_times {
            times.push(start.elapsed().as_secs_f64());
        }
        client
            .publish(
                message.topic,
                QoS::AtLeastOnce,
                message.retain,
                message.payload,
            )
            .await
            .context("queueing a publish")?;
    }
    let acked = poller
        .await
        .context("the publisher's event loop failed")??;
    let _ = client.try_disconnect();
    Ok((acked, times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_what_is_sent_once_and_twice() {
        let plan = FleetPlan {
            devices: 3,
            per_connection: 2,
            reports_per_device: 25,
            reboot_every: 10,
            reorder_block: 4,
            duplicate_share: 0.2,
            ..FleetPlan::default()
        };
        let mut sent = 0;
        let mut totals = FleetTotals::default();
        for (first, count) in plan.connections() {
            let (messages, t) = plan.messages(first, count).unwrap();
            sent += messages.len() as u64;
            totals.births += t.births;
            totals.reports += t.reports;
            totals.uses += t.uses;
            totals.duplicates += t.duplicates;
        }
        assert_eq!(plan.connections(), vec![(0, 2), (2, 1)]);
        assert_eq!(
            totals.births,
            3 * 3,
            "a birth per boot: 25 reports, reboot every 10"
        );
        assert_eq!(totals.reports, 75);
        // Per device, boots of 10, 10 and 5 reports: seq 5 and 10 are levels.
        assert_eq!(totals.uses, 75 - 3 * 5, "every fifth report is a level");
        assert!(totals.duplicates > 0);
        assert_eq!(sent, totals.published());
    }

    #[test]
    fn every_message_decodes_and_births_lead_their_boots() {
        let plan = FleetPlan {
            devices: 2,
            reports_per_device: 30,
            reboot_every: 12,
            reorder_block: 5,
            encoding: Encoding::Json,
            ..FleetPlan::default()
        };
        let (messages, _) = plan.messages(0, 2).unwrap();
        let mut boot_of_device = std::collections::HashMap::new();
        for m in &messages {
            let parsed = topic::parse(&plan.prefix, &m.topic).unwrap();
            match parsed.channel {
                Channel::Status => {
                    let Status::Online(b) = codec::decode::<Status>(&m.payload).unwrap() else {
                        panic!()
                    };
                    assert_eq!(b.buffer, Some(DEVICE_BUFFER));
                    boot_of_device.insert(parsed.device.to_string(), b.boot);
                }
                _ => {
                    let r = codec::decode::<Report>(&m.payload).unwrap();
                    assert_eq!(Some(&r.boot), boot_of_device.get(parsed.device));
                }
            }
        }
    }
}
