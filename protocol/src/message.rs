//! Messages of protocol v1 and their validation rules.
//!
//! Numbers are amounts in the slot's [`Unit`]; times are milliseconds since the Unix epoch, with
//! `0` meaning "the device does not know the time yet" (the agent then uses the receive time).

use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Most slots a device may announce.
pub const MAX_SLOTS: usize = 8;
/// Most slots a birth may declare the use of ([`Birth::usage`]).
pub const MAX_DECLARED: usize = 4;
/// Longest free-text detail in a fault or an ack, in bytes.
pub const MAX_DETAIL_LEN: usize = 64;

/// A short free-text field.
pub type Detail = heapless::String<MAX_DETAIL_LEN>;

/// The unit a slot is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Grams (beans, flour).
    G,
    /// Millilitres (milk, water, detergent).
    Ml,
    /// Pieces (eggs, pods, tablets).
    Count,
}

impl Unit {
    /// The unit's symbol as written in messages and on screen.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::G => "g",
            Unit::Ml => "ml",
            Unit::Count => "count",
        }
    }
}

/// How a slot learns what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// The sensor measures what remains (a load cell, a level sensor, a tray count).
    Level,
    /// The device counts uses and reports amounts consumed (a brew counter, a flow meter).
    Usage,
    /// The consumable wears out with use or time (a water filter).
    Lifespan,
}

/// One place on a device that holds a consumable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// The slot's identifier, unique on its device (`beans`, `milk`).
    pub id: Id,
    /// What the slot holds, as the agent's catalog names it (`coffee_beans`).
    pub consumable: Id,
    /// The unit of every amount reported for this slot.
    pub unit: Unit,
    /// The most the slot can hold, in `unit`.
    pub capacity: f32,
    /// How the slot is measured.
    pub sensor: SensorKind,
}

impl SlotSpec {
    /// A slot measured by its level (a load cell, a distance or level sensor).
    pub fn level(id: Id, consumable: Id, unit: Unit, capacity: f32) -> Self {
        Self {
            id,
            consumable,
            unit,
            capacity,
            sensor: SensorKind::Level,
        }
    }
}

/// What one use of a driven slot is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverMeasure {
    /// The driving slot's amount, in its unit (millilitres through a filter).
    Amount,
    /// The driving slot's uses (brews).
    Uses,
}

/// One use of a slot per so much of another slot of the same device (a descaler tablet every
/// 200 brews).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDriver {
    /// The driving slot, on the same device.
    pub slot: Id,
    /// How much of it makes one use.
    pub every: f32,
    /// What `every` counts.
    pub counts: DriverMeasure,
}

/// How a slot is used, as the appliance's maker knows it: the agent's forecast starts from it
/// (the household's own settings override it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotUse {
    /// The slot, one of the birth's.
    pub slot: Id,
    /// Days between uses the maker expects (a descaler: 30). Optional in JSON.
    #[serde(default)]
    pub every_days: Option<f32>,
    /// One use per so much of another slot. Optional in JSON.
    #[serde(default)]
    pub per: Option<SlotDriver>,
}

/// A device's birth message: published retained on `status` when it connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Birth {
    /// The appliance model (`coffee-maker`).
    pub model: Id,
    /// The firmware version (`0.1.0`).
    pub firmware: heapless::String<32>,
    /// A number that changes on every boot; with `seq` it identifies a report.
    pub boot: u32,
    /// The slots this device measures.
    pub slots: heapless::Vec<SlotSpec, MAX_SLOTS>,
    /// How many reports the device keeps while offline (its store-and-forward buffer), so the
    /// agent can recognise a late report from a long offline flush. Optional in JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u16>,
    /// How some slots are used, as the maker knows it (a descaler every 200 brews). Optional
    /// in JSON; comes after `buffer` and needs it (both trail the binary layout, in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<heapless::Vec<SlotUse, MAX_DECLARED>>,
}

impl Birth {
    /// The birth of a `model` running `firmware` on boot `boot`, announcing `slots`, with no
    /// offline buffer and no usage declared.
    pub fn new(
        model: Id,
        firmware: heapless::String<32>,
        boot: u32,
        slots: heapless::Vec<SlotSpec, MAX_SLOTS>,
    ) -> Self {
        Self {
            model,
            firmware,
            boot,
            slots,
            buffer: None,
            usage: None,
        }
    }
}

/// What a device publishes retained on its `status` topic.
// Boxing the birth would need `alloc`, which small devices may not have; a status is built
// once per connection, so its size costs nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The device is up; its description follows.
    Online(Birth),
    /// The device went away: its last will, or a clean goodbye.
    Offline,
}

/// A report from a device, on its `report` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The boot number from the device's birth.
    pub boot: u32,
    /// Increases by one with every report within a boot; used to drop duplicates.
    pub seq: u32,
    /// When the device observed it (ms since the Unix epoch), `0` if unknown.
    pub ts: u64,
    /// What happened.
    pub body: ReportBody,
}

/// The kinds of report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReportBody {
    /// What remains in a slot, after settling.
    Level {
        /// The slot measured.
        slot: Id,
        /// What remains, in the slot's unit.
        remaining: f32,
    },
    /// Something was consumed (a brew took 9 g of beans).
    Usage {
        /// The slot consumed from.
        slot: Id,
        /// The amount consumed, in the slot's unit.
        amount: f32,
        /// How many uses this report covers (brews, pods); at least one.
        uses: u16,
    },
    /// The slot was refilled.
    Refill {
        /// The slot refilled.
        slot: Id,
        /// What it held before.
        before: f32,
        /// What it holds now.
        after: f32,
    },
    /// Something is wrong with the device or a sensor.
    Fault {
        /// The slot concerned, if any.
        slot: Option<Id>,
        /// What kind of fault.
        code: FaultCode,
        /// A short human-readable detail.
        detail: Detail,
    },
}

impl ReportBody {
    /// The slot this report is about, if any.
    pub fn slot(&self) -> Option<&Id> {
        match self {
            ReportBody::Level { slot, .. }
            | ReportBody::Usage { slot, .. }
            | ReportBody::Refill { slot, .. } => Some(slot),
            ReportBody::Fault { slot, .. } => slot.as_ref(),
        }
    }
}

/// Kinds of device fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultCode {
    /// A sensor did not answer.
    SensorUnavailable,
    /// A reading lies outside what the slot can hold.
    OutOfRange,
    /// The slot needs calibrating.
    CalibrationNeeded,
    /// Reports were dropped while offline because the buffer was full.
    BufferOverflow,
    /// Anything else; see the detail.
    Other,
}

/// A command from the agent, on the device's `cmd` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Chosen by the agent; echoed in the [`Ack`].
    pub id: u32,
    /// What to do.
    pub body: CommandBody,
}

/// The commands a device understands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandBody {
    /// Take the slot's current reading as zero (empty container in place).
    Tare {
        /// The slot to tare.
        slot: Id,
    },
    /// The slot now holds a known amount: use it as the second calibration point.
    Calibrate {
        /// The slot to calibrate.
        slot: Id,
        /// The known amount now in the slot, in its unit.
        known: f32,
    },
    /// Report levels at least this often.
    ReportInterval {
        /// Seconds between periodic level reports.
        seconds: u32,
    },
    /// Set the device clock.
    TimeSync {
        /// The current time, ms since the Unix epoch.
        unix_ms: u64,
    },
}

/// A device's answer to a [`Command`], on its `ack` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The id of the command answered.
    pub id: u32,
    /// Whether the command was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    pub error: Option<Detail>,
}

/// A rule a decoded message breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A number is NaN or infinite.
    #[error("{0} must be a finite number")]
    NotFinite(&'static str),
    /// An amount is negative.
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// A capacity or a calibration amount is zero or negative.
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
    /// A birth announces no slot.
    #[error("a birth must announce at least one slot")]
    NoSlots,
    /// A birth announces the same slot twice.
    #[error("slot ids must be unique on a device")]
    DuplicateSlot,
    /// A usage report covers zero uses.
    #[error("uses must be at least 1")]
    ZeroUses,
    /// A report interval of zero seconds.
    #[error("report interval must be at least one second")]
    ZeroInterval,
    /// A birth declares `usage` without `buffer` (the binary layout needs both, in order).
    #[error("a birth that declares usage must also state its buffer")]
    UsageWithoutBuffer,
    /// A declared use names a slot the birth does not announce, or a slot driving itself.
    #[error("a declared use names an unknown slot, or a slot driving itself")]
    UnknownDeclaredSlot,
    /// A declared interval or amount per use outside its range.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// A failed ack without a reason, or a successful one with an error.
    #[error("an ack carries an error exactly when ok is false")]
    AckErrorMismatch,
}

/// Checks the rules serde cannot express. Every decoded message passes through it.
pub trait Validate {
    /// How many optional fields, added after the message's first binary layout, end it: a
    /// binary payload that stops before them is read with them absent.
    const TRAILING_OPTIONS: usize = 0;

    /// `Ok` when the message keeps every rule of the protocol.
    fn validate(&self) -> Result<(), ValidationError>;
}

fn amount(field: &'static str, value: f32) -> Result<(), ValidationError> {
    if !value.is_finite() {
        Err(ValidationError::NotFinite(field))
    } else if value < 0.0 {
        Err(ValidationError::Negative(field))
    } else {
        Ok(())
    }
}

fn positive(field: &'static str, value: f32) -> Result<(), ValidationError> {
    amount(field, value)?;
    if value > 0.0 {
        Ok(())
    } else {
        Err(ValidationError::NotPositive(field))
    }
}

impl Validate for Status {
    const TRAILING_OPTIONS: usize = 2;
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Status::Offline => Ok(()),
            Status::Online(birth) => {
                if birth.slots.is_empty() {
                    return Err(ValidationError::NoSlots);
                }
                for (i, slot) in birth.slots.iter().enumerate() {
                    positive("capacity", slot.capacity)?;
                    if birth.slots[..i].iter().any(|other| other.id == slot.id) {
                        return Err(ValidationError::DuplicateSlot);
                    }
                }
                let Some(usage) = &birth.usage else {
                    return Ok(());
                };
                if birth.buffer.is_none() {
                    return Err(ValidationError::UsageWithoutBuffer);
                }
                let known = |id: &Id| birth.slots.iter().any(|s| &s.id == id);
                for (i, declared) in usage.iter().enumerate() {
                    if !known(&declared.slot) || usage[..i].iter().any(|d| d.slot == declared.slot)
                    {
                        return Err(ValidationError::UnknownDeclaredSlot);
                    }
                    if let Some(days) = declared.every_days
                        && !(1.0..=3650.0).contains(&days)
                    {
                        return Err(ValidationError::OutOfRange("every_days"));
                    }
                    if let Some(per) = &declared.per {
                        if !known(&per.slot) || per.slot == declared.slot {
                            return Err(ValidationError::UnknownDeclaredSlot);
                        }
                        if !(per.every.is_finite() && per.every >= 1.0) {
                            return Err(ValidationError::OutOfRange("every"));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

impl Validate for Report {
    fn validate(&self) -> Result<(), ValidationError> {
        match &self.body {
            ReportBody::Level { remaining, .. } => amount("remaining", *remaining),
            ReportBody::Usage {
                amount: used, uses, ..
            } => {
                amount("amount", *used)?;
                if *uses == 0 {
                    return Err(ValidationError::ZeroUses);
                }
                Ok(())
            }
            ReportBody::Refill { before, after, .. } => {
                amount("before", *before)?;
                amount("after", *after)
            }
            ReportBody::Fault { .. } => Ok(()),
        }
    }
}

impl Validate for Command {
    fn validate(&self) -> Result<(), ValidationError> {
        match &self.body {
            CommandBody::Tare { .. } | CommandBody::TimeSync { .. } => Ok(()),
            CommandBody::Calibrate { known, .. } => positive("known", *known),
            CommandBody::ReportInterval { seconds } => {
                if *seconds == 0 {
                    Err(ValidationError::ZeroInterval)
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl Validate for Ack {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.ok == self.error.is_some() {
            Err(ValidationError::AckErrorMismatch)
        } else {
            Ok(())
        }
    }
}
