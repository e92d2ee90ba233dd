//! What the agent knows of devices and their slots: what a device announced (kept in the
//! engine's own [`Announcement`], not the wire's fixed-size `Birth`), presence, levels, use
//! history, the cupboard, use sizes and what a driven slot knows of its driver.
//! De-duplication is in [`dedup`](super::dedup).

use replenish_protocol::{Birth, DeviceId, Id, SensorKind, SlotSpec, SlotUse};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::dedup::Dedup;
use super::forecast::linked::LinkState;
use super::forecast::{Forecast, UsageHistory, day_of};
use crate::clock::UnixMs;

/// The de-duplication state of agents before 0.2, read once and carried into [`Dedup`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacySeqWindow {
    /// The boot the window belonged to.
    pub boot: u32,
    /// Highest sequence number accepted in that boot.
    pub highest: Option<u32>,
    /// Bit i set: `highest - i` was accepted.
    pub seen: u64,
}

/// Whether a device is connected, as far as the agent knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Not heard from since the agent started: neither a birth nor a last will read yet.
    #[default]
    Unknown,
    /// Its birth is the latest status seen.
    Online,
    /// Its last will (or goodbye) is the latest status seen.
    Offline,
}

/// What a device announced in its latest birth, as the engine keeps it.
///
/// The same fields and the same serialized form as the wire's [`Birth`], whose lists and
/// strings have the fixed capacity a device without a heap needs: 1,200 bytes whatever they
/// hold, against about 120 here plus the slots announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// The appliance model (`coffee-maker`).
    pub model: Id,
    /// The firmware version (`0.1.0`).
    pub firmware: String,
    /// The boot it was announced in.
    pub boot: u32,
    /// The slots the device measures.
    pub slots: Vec<SlotSpec>,
    /// How many reports the device keeps while offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u16>,
    /// How some slots are used, as the maker declares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Vec<SlotUse>>,
}

impl From<Birth> for Announcement {
    fn from(birth: Birth) -> Self {
        Self {
            model: birth.model,
            firmware: birth.firmware.as_str().to_owned(),
            boot: birth.boot,
            slots: birth.slots.into_iter().collect(),
            buffer: birth.buffer,
            usage: birth.usage.map(|usage| usage.into_iter().collect()),
        }
    }
}

/// A device as the agent knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Its id (the topic segment).
    pub id: DeviceId,
    /// Its latest birth.
    pub birth: Announcement,
    /// Whether it is connected. Not stored: after a restart it is unknown until the device
    /// speaks or its retained status is read again.
    #[serde(skip)]
    pub presence: Presence,
    /// When anything was last heard from it.
    pub last_seen: UnixMs,
    /// De-duplication state.
    #[serde(default)]
    pub dedup: Dedup,
    /// De-duplication state as agents before 0.2 stored it; moved into `dedup` on load.
    #[serde(default, rename = "window", skip_serializing)]
    pub legacy_window: Option<LegacySeqWindow>,
    /// Whether an owner accepted it (or pairing is open); reports are refused until then.
    #[serde(default = "accepted_by_default")]
    pub accepted: bool,
    /// When it last asked to join (a notice to the household), while waiting.
    #[serde(default)]
    pub pairing_asked_at: Option<UnixMs>,
}

/// Devices stored before pairing existed were all accepted.
fn accepted_by_default() -> bool {
    true
}

impl DeviceState {
    /// A device first heard of now.
    pub fn new(id: DeviceId, birth: Announcement, now: UnixMs) -> Self {
        Self {
            id,
            birth,
            presence: Presence::Online,
            last_seen: now,
            dedup: Dedup::default(),
            legacy_window: None,
            accepted: true,
            pairing_asked_at: None,
        }
    }

    /// Connected as far as the agent knows.
    pub fn online(&self) -> bool {
        self.presence == Presence::Online
    }

    /// Moves de-dup state stored by an older agent into `dedup`.
    pub fn migrate(&mut self) {
        if let Some(old) = self.legacy_window.take()
            && self.dedup.boots.is_empty()
        {
            self.dedup = Dedup::from_legacy(old.boot, old.highest, old.seen);
            self.dedup.set_buffer(self.birth.buffer);
        }
    }
}

/// One slot as the agent knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotState {
    /// The device.
    pub device: DeviceId,
    /// The slot as the device announced it.
    pub spec: SlotSpec,
    /// Latest known level, in the slot unit.
    pub level: Option<f64>,
    /// When the level was reported.
    pub level_at: UnixMs,
    /// Uses counted (brews, pods).
    pub uses: u64,
    /// Consumption per day.
    pub history: UsageHistory,
    /// The latest forecast.
    pub forecast: Option<Forecast>,
    /// Since when the slot has been empty, if it is.
    pub empty_since: Option<UnixMs>,
    /// Total time spent empty, in ms.
    pub empty_ms: UnixMs,
    /// When the slot was last refilled.
    pub last_refill_at: Option<UnixMs>,
    /// Delivered but not yet loaded into the appliance (unopened packs in the cupboard).
    #[serde(default)]
    pub cupboard: f64,
    /// Refilled beyond what the cupboard held: bought elsewhere, or a delivery the agent has not
    /// yet heard of (a later delivery is matched against it first).
    #[serde(default)]
    pub unattributed_refill: f64,
    /// Sizes of single uses seen (a pour, a brew), for the policy's look one use ahead.
    #[serde(default)]
    pub use_sizes: UseSizes,
    /// The last level seen on each of the recent days (day number → level), for charts.
    #[serde(default)]
    pub daily_levels: BTreeMap<i64, f64>,
    /// What a slot driven by another's consumption knows of its driver (a descaler's brews);
    /// `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
}

/// Recency-weighted count and moments of the size of one use.
///
/// Demand that comes in lumps jumps past any reorder point: a check after one 200 ml
/// breakfast pour can find the chance of running out moved from 1% to 80%. The policy looks
/// one use ahead (see [`UseSizes::next_use`]); a 9 g brew hardly matters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UseSizes {
    /// Decayed sum of sizes.
    pub sum: f64,
    /// Decayed sum of squared sizes.
    pub sum_sq: f64,
    /// Decayed count of uses (absent in records written before it was kept).
    #[serde(default)]
    pub count: f64,
}

impl UseSizes {
    /// Weight kept by past uses at each new one: about the last 50 uses count.
    const DECAY: f64 = 0.98;

    /// Records one use of `size`.
    pub fn record(&mut self, size: f64) {
        if size > 0.0 && size.is_finite() {
            self.sum = self.sum * Self::DECAY + size;
            self.sum_sq = self.sum_sq * Self::DECAY + size * size;
            self.count = self.count * Self::DECAY + 1.0;
        }
    }

    /// The expected size of the next use, `E[X]`; zero before any use. Records kept before
    /// the count give `E[X²] / E[X]` (the size of the use that crosses a level, never less
    /// than the mean).
    pub fn next_use(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else if self.sum > 0.0 {
            self.sum_sq / self.sum
        } else {
            0.0
        }
    }
}

/// A slot counts as empty below this share of its capacity.
pub const EMPTY_SHARE: f64 = 0.02;

impl SlotState {
    /// A slot first seen in a birth.
    pub fn new(device: DeviceId, spec: SlotSpec) -> Self {
        Self {
            device,
            spec,
            level: None,
            level_at: 0,
            uses: 0,
            history: UsageHistory::default(),
            forecast: None,
            empty_since: None,
            empty_ms: 0,
            last_refill_at: None,
            cupboard: 0.0,
            unattributed_refill: 0.0,
            use_sizes: UseSizes::default(),
            daily_levels: BTreeMap::new(),
            link: None,
        }
    }

    /// Days of levels kept for charts.
    pub const LEVEL_DAYS: i64 = 35;

    fn remember_level(&mut self, at: UnixMs) {
        let Some(level) = self.level else { return };
        let day = day_of(at);
        self.daily_levels.insert(day, level);
        while self
            .daily_levels
            .first_key_value()
            .is_some_and(|(&first, _)| first <= day - Self::LEVEL_DAYS)
        {
            self.daily_levels.pop_first();
        }
    }

    /// The storage key and API name: `device/slot`.
    pub fn key(&self) -> SlotKey {
        slot_key(&self.device, &self.spec.id)
    }

    /// Applies a new level: a drop is consumption (for level sensors), a rise a refill.
    /// Returns the consumption recorded.
    pub fn set_level(&mut self, level: f64, at: UnixMs) -> f64 {
        let consumed = match self.level {
            Some(previous) if previous > level && self.spec.sensor == SensorKind::Level => {
                let used = previous - level;
                self.history.record(at, used);
                self.use_sizes.record(used);
                if let Some(link) = &mut self.link {
                    link.used();
                }
                used
            }
            _ => {
                self.history.observe(at);
                0.0
            }
        };
        self.level = Some(level);
        self.level_at = self.level_at.max(at);
        self.track_empty(at);
        self.remember_level(at);
        consumed
    }

    /// Applies a usage report: counted always; for usage sensors it also lowers the level.
    /// Returns the consumption recorded (none for level sensors: their levels tell it).
    pub fn record_usage(&mut self, amount: f64, uses: u16, at: UnixMs) -> f64 {
        self.uses += u64::from(uses);
        if self.spec.sensor == SensorKind::Level {
            return 0.0;
        }
        self.history.record(at, amount);
        if amount > 0.0
            && let Some(link) = &mut self.link
        {
            link.used();
        }
        if let Some(level) = self.level {
            self.level = Some((level - amount).max(0.0));
            self.level_at = self.level_at.max(at);
        }
        self.track_empty(at);
        self.remember_level(at);
        amount
    }

    /// Applies a refill reported by the device: what was loaded comes out of the cupboard first;
    /// the rest was bought elsewhere (or delivered without the agent knowing yet).
    pub fn refill(&mut self, before: f64, after: f64, at: UnixMs) {
        let loaded = (after - before).max(0.0);
        let from_cupboard = loaded.min(self.cupboard);
        self.cupboard -= from_cupboard;
        self.unattributed_refill += loaded - from_cupboard;
        self.history.observe(at);
        self.level = Some(after);
        self.level_at = self.level_at.max(at);
        self.last_refill_at = Some(at);
        self.track_empty(at);
        self.remember_level(at);
    }

    /// A delivery of `amount` arrived: it goes to the cupboard, less what was already loaded
    /// before the agent heard of it.
    pub fn delivered(&mut self, amount: f64) {
        let loaded_already = amount.min(self.unattributed_refill);
        self.unattributed_refill -= loaded_already;
        self.cupboard += amount - loaded_already;
    }

    fn track_empty(&mut self, at: UnixMs) {
        let empty = self
            .level
            .is_some_and(|l| l <= self.spec.capacity as f64 * EMPTY_SHARE);
        match (empty, self.empty_since) {
            (true, None) => {
                self.empty_since = Some(at);
                self.history.mark_starved(at);
            }
            (true, Some(_)) => self.history.mark_starved(at),
            (false, Some(since)) => {
                self.empty_ms += at.saturating_sub(since);
                self.empty_since = None;
            }
            (false, None) => {}
        }
    }

    /// Time spent empty up to `now`, including a current stretch.
    pub fn empty_ms_until(&self, now: UnixMs) -> UnixMs {
        self.empty_ms
            + self
                .empty_since
                .map_or(0, |since| now.saturating_sub(since))
    }
}

/// A slot's key, `device/slot`, as the API, storage and notices name it. Made from a device
/// id and a slot id (or parsed into them), so it is always two ids and one slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SlotKey(String);

impl SlotKey {
    /// The key of `slot` on `device`.
    pub fn new(device: &DeviceId, slot: &Id) -> Self {
        // Built by hand: a report makes several keys, and `format!` was 7% of the engine's
        // time per report.
        let (device, slot) = (device.as_str(), slot.as_str());
        let mut key = String::with_capacity(device.len() + 1 + slot.len());
        key.push_str(device);
        key.push('/');
        key.push_str(slot);
        Self(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The device and slot ids of `text`, if it is a key.
    pub fn parse(text: &str) -> Option<(Id, Id)> {
        let (device, slot) = text.split_once('/')?;
        Some((Id::new(device).ok()?, Id::new(slot).ok()?))
    }
}

impl TryFrom<String> for SlotKey {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        match Self::parse(&text) {
            Some(_) => Ok(Self(text)),
            None => Err(format!("{text:?} is not a slot key (device/slot)")),
        }
    }
}

text_id!(SlotKey);

/// The key of a slot: `device/slot`.
pub fn slot_key(device: &DeviceId, slot: &Id) -> SlotKey {
    SlotKey::new(device, slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_protocol::Unit;

    #[test]
    fn level_drops_are_consumption_and_rises_are_not() {
        let spec = SlotSpec {
            id: Id::new("beans").unwrap(),
            consumable: Id::new("coffee_beans").unwrap(),
            unit: Unit::G,
            capacity: 500.0,
            sensor: SensorKind::Level,
        };
        let mut slot = SlotState::new(DeviceId::new("coffee").unwrap(), spec);
        assert_eq!(slot.set_level(400.0, 1), 0.0);
        assert_eq!(slot.set_level(391.0, 2), 9.0);
        assert_eq!(slot.set_level(450.0, 3), 0.0);
        assert_eq!(slot.set_level(5.0, 10), 445.0);
        assert_eq!(slot.empty_since, Some(10));
        slot.refill(5.0, 500.0, 40);
        assert_eq!((slot.empty_since, slot.empty_ms), (None, 30));
    }

    #[test]
    fn a_slot_key_is_two_ids_and_one_slash() {
        let key = slot_key(
            &DeviceId::new("coffee").unwrap(),
            &Id::new("beans").unwrap(),
        );
        assert_eq!((key.as_str(), &*key), ("coffee/beans", "coffee/beans"));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, "\"coffee/beans\"");
        assert_eq!(serde_json::from_str::<SlotKey>(&json).unwrap(), key);
        for bad in [
            "\"coffee\"",
            "\"coffee/beans/x\"",
            "\"Coffee/beans\"",
            "\"/beans\"",
        ] {
            assert!(serde_json::from_str::<SlotKey>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_next_use_is_the_mean_use_and_older_records_still_read() {
        let mut brews = UseSizes::default();
        let mut pours = UseSizes::default();
        for _ in 0..20 {
            brews.record(9.0);
            pours.record(30.0);
            pours.record(200.0);
        }
        assert!((brews.next_use() - 9.0).abs() < 1e-9);
        // The mean of 30 and 200 ml, the later uses weighing a little more.
        assert!(
            (pours.next_use() - 115.0).abs() < 2.0,
            "{}",
            pours.next_use()
        );
        assert_eq!(UseSizes::default().next_use(), 0.0);
        // A record kept before the count: the size of the use that crosses a level,
        // E[X²]/E[X] = (30² + 200²)/2 / 115 ≈ 177.8 ml.
        let older = UseSizes {
            count: 0.0,
            ..pours
        };
        assert!(
            (older.next_use() - 177.8).abs() < 2.0,
            "{}",
            older.next_use()
        );
        let json = r#"{"sum":230.0,"sum_sq":40900.0}"#;
        let read: UseSizes = serde_json::from_str(json).unwrap();
        assert!((read.next_use() - 177.8).abs() < 0.1);
    }

    #[test]
    fn refills_draw_on_the_cupboard_and_late_deliveries_reconcile() {
        let spec = SlotSpec {
            id: Id::new("milk").unwrap(),
            consumable: Id::new("milk").unwrap(),
            unit: Unit::Ml,
            capacity: 3000.0,
            sensor: SensorKind::Level,
        };
        let mut slot = SlotState::new(DeviceId::new("fridge").unwrap(), spec);
        slot.delivered(2000.0);
        slot.refill(500.0, 1500.0, 1);
        assert_eq!((slot.cupboard, slot.unattributed_refill), (1000.0, 0.0));
        // Loaded before the agent heard of the delivery: not counted twice.
        slot.refill(1500.0, 2500.0, 2);
        slot.refill(2500.0, 3000.0, 3);
        assert_eq!((slot.cupboard, slot.unattributed_refill), (0.0, 500.0));
        slot.delivered(1000.0);
        assert_eq!((slot.cupboard, slot.unattributed_refill), (500.0, 0.0));
    }

    #[test]
    fn an_announcement_reads_and_writes_as_the_birth_it_came_from() {
        use replenish_protocol::{DriverMeasure, SlotDriver};
        let spec = |slot: &str, consumable: &str| SlotSpec {
            id: Id::new(slot).unwrap(),
            consumable: Id::new(consumable).unwrap(),
            unit: Unit::Count,
            capacity: 10.0,
            sensor: SensorKind::Usage,
        };
        let bare = Birth {
            model: Id::new("coffee-maker").unwrap(),
            firmware: "0.3.1".try_into().unwrap(),
            boot: 7,
            slots: [spec("pods", "coffee_pods")].into_iter().collect(),
            buffer: None,
            usage: None,
        };
        let mut declared = bare.clone();
        declared.slots.push(spec("descaler", "descaler")).unwrap();
        declared.buffer = Some(500);
        declared.usage = Some(
            [SlotUse {
                slot: Id::new("descaler").unwrap(),
                every_days: Some(30.0),
                per: Some(SlotDriver {
                    slot: Id::new("pods").unwrap(),
                    every: 200.0,
                    counts: DriverMeasure::Uses,
                }),
            }]
            .into_iter()
            .collect(),
        );
        for birth in [bare, declared] {
            let kept = Announcement::from(birth.clone());
            let json = serde_json::to_string(&birth).unwrap();
            assert_eq!(serde_json::to_string(&kept).unwrap(), json);
            assert_eq!(serde_json::from_str::<Announcement>(&json).unwrap(), kept);
            assert_eq!(
                rmp_serde::to_vec_named(&kept).unwrap(),
                rmp_serde::to_vec_named(&birth).unwrap()
            );
        }
        // A field no birth has is refused, as the wire type refuses it.
        assert!(
            serde_json::from_str::<Announcement>(
                r#"{"model":"m","firmware":"1","boot":1,"slots":[],"colour":"red"}"#
            )
            .is_err()
        );
    }
}
