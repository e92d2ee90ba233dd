//! The household: members and their roles, the rules that decide which orders need a person,
//! and the audit trail. Pure: the engine asks [`Household::route`] what to do with an order the
//! policy wants, and checks [`Household::authorize`] before any change a person asks for.
//!
//! Tokens never reach this module: the HTTP adapter hashes the bearer token (SHA-256) and the
//! engine compares hashes, so the store holds nothing that would let a thief log in.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use serde::{Deserialize, Serialize};

use replenish_commerce::Money;

use crate::clock::{HOUR_MS, UnixMs};

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Approves, rejects, edits and snoozes orders.
    Member,
    /// Everything a member may, and changes rules, members and devices.
    Owner,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "member" => Ok(Role::Member),
            other => Err(format!("unknown role {other:?}: use owner or member")),
        }
    }
}

/// A person of the household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable id (`m-000001`).
    pub id: String,
    /// Display name, unique in the household.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// SHA-256 of their API token, hex.
    pub token_hash: String,
    /// When they were added.
    pub created_at: UnixMs,
}

/// Who asks for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A member, by id.
    Member(String),
    /// Home Assistant, through its MQTT buttons and selects (trusted as an owner: whoever can
    /// publish on the broker controls the house anyway).
    HomeAssistant,
    /// The agent itself (an expired approval taking its default, a cancel window closing).
    Agent,
    /// Someone at the gateway's console (`replenish-agent household add-member`).
    Console,
}

/// How orders of a consumable are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Ordered at once (unless it breaks the monthly budget).
    Auto,
    /// Waits for a member's approval (unless cheaper than the auto-approve limit).
    Approve,
    /// Ordered after a cancel window; the household is told and may cancel meanwhile.
    Notify,
    /// Never ordered; forecasts still shown.
    Off,
}

impl Mode {
    /// Every mode, in the order a form lists them.
    pub const ALL: [Mode; 4] = [Mode::Auto, Mode::Approve, Mode::Notify, Mode::Off];

    /// How much a person is involved: off > approve > notify > auto. A bundle follows its
    /// strictest line.
    pub fn strictness(self) -> u8 {
        match self {
            Mode::Auto => 0,
            Mode::Notify => 1,
            Mode::Approve => 2,
            Mode::Off => 3,
        }
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::Notify => "notify",
            Mode::Off => "off",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?}: use auto, approve, notify or off"))
    }
}

/// What a pending approval turns into when nobody answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryDefault {
    /// Place the order.
    Order,
    /// Drop it; the policy proposes again when the forecast still says so.
    Skip,
}

/// A daily span of local time in which nobody is prompted, e.g. 22:00 to 07:00; written
/// `"22:00-07:00"` in configuration and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight (before `start_minute` when it spans midnight).
    pub end_minute: u16,
}

impl QuietHours {
    /// Parses `22:00-07:00`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let minute = |part: &str| -> Result<u16, String> {
            let (h, m) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not HH:MM"))?;
            let h: u16 = h.parse().map_err(|_| format!("{part:?} is not HH:MM"))?;
            let m: u16 = m.parse().map_err(|_| format!("{part:?} is not HH:MM"))?;
            if h > 23 || m > 59 {
                return Err(format!("{part:?} is not a time of day"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("quiet hours {text:?} must look like 22:00-07:00"))?;
        let quiet = QuietHours {
            start_minute: minute(start)?,
            end_minute: minute(end)?,
        };
        if quiet.start_minute == quiet.end_minute {
            return Err("quiet hours must not start and end at the same time".into());
        }
        Ok(quiet)
    }

    /// Whether a local minute of the day falls inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

impl TryFrom<String> for QuietHours {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        QuietHours::parse(&text)
    }
}

impl From<QuietHours> for String {
    fn from(quiet: QuietHours) -> Self {
        quiet.to_string()
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, e) = (self.start_minute, self.end_minute);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

/// Settings of one consumable that override the household's. Read from a JSON object only
/// (serde's derive would also take a list of the fields in order).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumableRules {
    /// Its mode; the household's default when unset.
    pub mode: Option<Mode>,
    /// Its acceptable chance of running out, above 0 and below 0.5; the policy's when unset.
    pub risk: Option<f64>,
}

impl<'de> Deserialize<'de> for ConsumableRules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(default, deny_unknown_fields)]
        #[derive(Default)]
        struct Fields {
            mode: Option<Mode>,
            risk: Option<f64>,
        }
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let fields: Fields = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(serde::de::Error::custom)?;
        Ok(Self {
            mode: fields.mode,
            risk: fields.risk,
        })
    }
}

/// The largest amount of money a rule may name (10 billion in the currency's major unit): a
/// bound that no household reaches and every integer type holds.
pub const MAX_MONEY_MINOR: u64 = 1_000_000_000_000;

/// The household's rules. Owners change them; every change is audited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Mode of consumables without their own.
    pub default_mode: Mode,
    /// Per consumable id.
    pub consumables: BTreeMap<String, ConsumableRules>,
    /// In `approve` mode, orders cheaper than this (minor units of the household's currency,
    /// [`super::Engine::home_currency`]) are placed without asking (0: always ask).
    pub auto_approve_below_cents: u64,
    /// Spending limit per calendar month (household time, minor units of the household's
    /// currency); an order that would exceed it, or is priced in another currency, waits for
    /// approval whatever the mode, and never places itself on expiry.
    pub monthly_budget_cents: Option<u64>,
    /// Nobody is prompted in these hours (`"22:00-07:00"`, household time); prompts wait
    /// until they end.
    pub quiet_hours: Option<QuietHours>,
    /// Time zone of the household (IANA name), for quiet hours and budget months.
    pub timezone: String,
    /// How numbers, money and dates are written for the household.
    pub locale: super::words::Locale,
    /// How long a prompt waits for an answer, 1 to 336 hours.
    pub approval_timeout_hours: u32,
    /// What an unanswered prompt turns into.
    pub on_expiry: ExpiryDefault,
    /// In `notify` mode, how long the household may cancel before the order is placed.
    pub cancel_window_hours: u32,
    /// After a rejection because "we still have some", how long before the next proposal (0
    /// to 720 hours).
    pub still_have_some_delay_hours: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            default_mode: Mode::Auto,
            consumables: BTreeMap::new(),
            auto_approve_below_cents: 0,
            monthly_budget_cents: None,
            quiet_hours: None,
            timezone: "UTC".into(),
            locale: super::words::Locale::En,
            approval_timeout_hours: 24,
            on_expiry: ExpiryDefault::Skip,
            cancel_window_hours: 2,
            still_have_some_delay_hours: 72,
        }
    }
}

/// Rules that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rule {field}: {problem}")]
pub struct InvalidRules {
    /// The field.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl Rules {
    /// Checks values a person could get wrong.
    pub fn validate(&self) -> Result<(), InvalidRules> {
        let bad = |field, problem: String| Err(InvalidRules { field, problem });
        if TimeZone::get(&self.timezone).is_err() {
            return bad(
                "timezone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Europe/Berlin)",
                    self.timezone
                ),
            );
        }
        if !(1..=24 * 14).contains(&self.approval_timeout_hours) {
            return bad(
                "approval_timeout_hours",
                "must be 1 to 336 (two weeks)".into(),
            );
        }
        if self.auto_approve_below_cents > MAX_MONEY_MINOR
            || self
                .monthly_budget_cents
                .is_some_and(|b| b > MAX_MONEY_MINOR)
        {
            return bad(
                "monthly_budget_cents",
                format!("amounts must be at most {MAX_MONEY_MINOR} cents"),
            );
        }
        if self.cancel_window_hours > 72 {
            return bad("cancel_window_hours", "must be 0 to 72".into());
        }
        if self.still_have_some_delay_hours > 24 * 30 {
            return bad("still_have_some_delay_hours", "must be 0 to 720".into());
        }
        for (id, c) in &self.consumables {
            if let Err(e) = replenish_protocol::Id::new(id) {
                return bad(
                    "consumables",
                    format!(
                        "{id:?} is not a consumable id ({e}): lower-case letters, digits, - and _"
                    ),
                );
            }
            if let Some(risk) = c.risk
                && !(risk > 0.0 && risk < 0.5)
            {
                return bad(
                    "consumables.risk",
                    format!("{id}: risk {risk} must be above 0 and below 0.5"),
                );
            }
        }
        Ok(())
    }

    /// The mode of a consumable.
    pub fn mode_of(&self, consumable: &str) -> Mode {
        self.consumables
            .get(consumable)
            .and_then(|c| c.mode)
            .unwrap_or(self.default_mode)
    }

    /// The household's time zone.
    pub fn zone(&self) -> TimeZone {
        // Validated when set; UTC if a stored value is somehow unknown to this build.
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// The calendar month (household time) of an instant, as `(year, month)`.
    pub fn month_of(&self, at: UnixMs) -> (i16, i8) {
        let date = local_date(at, &self.zone());
        (date.year(), date.month())
    }

    /// When a prompt due at `at` may go out: at once, or when quiet hours end.
    pub fn prompt_time(&self, at: UnixMs) -> UnixMs {
        let Some(quiet) = self.quiet_hours else {
            return at;
        };
        let zone = self.zone();
        let Some(zoned) = to_zoned(at, &zone) else {
            return at;
        };
        let minute = (zoned.hour() as u16) * 60 + zoned.minute() as u16;
        if !quiet.contains(minute) {
            return at;
        }
        // The next local end time, found on the calendar rather than by counting minutes, so a
        // daylight-saving change inside the quiet hours cannot end them an hour early or late.
        let end = civil::time(
            (quiet.end_minute / 60) as i8,
            (quiet.end_minute % 60) as i8,
            0,
            0,
        );
        let mut end_at = zoned.date().to_datetime(end);
        if end_at <= zoned {
            let Ok(tomorrow) = zoned.date().tomorrow() else {
                return at;
            };
            end_at = tomorrow.to_datetime(end);
        }
        zone.to_ambiguous_timestamp(end_at)
            .compatible()
            .ok()
            .and_then(|t| UnixMs::try_from(t.as_millisecond()).ok())
            .map_or(at, |t| t.max(at))
    }
}

/// The wall-clock time in `zone` at an instant.
pub fn to_zoned(at: UnixMs, zone: &TimeZone) -> Option<civil::DateTime> {
    let ms = i64::try_from(at).ok()?;
    let instant = Timestamp::from_millisecond(ms).ok()?;
    Some(zone.to_offset(instant).to_datetime(instant))
}

fn local_date(at: UnixMs, zone: &TimeZone) -> civil::Date {
    to_zoned(at, zone).map_or(civil::date(1970, 1, 1), |z| z.date())
}

/// Why a person rejected a proposal; it shapes the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The sensor misses some stock: wait `still_have_some_delay_hours` before proposing again.
    StillHaveSome,
    /// Not wanted any more for now: wait a week.
    NotNeeded,
    /// Too expensive: wait a day (prices and packs may change).
    TooExpensive,
    /// Anything else: wait a day.
    Other,
}

impl RejectReason {
    /// Every reason, in the order a form lists them.
    pub const ALL: [RejectReason; 4] = [
        RejectReason::StillHaveSome,
        RejectReason::NotNeeded,
        RejectReason::TooExpensive,
        RejectReason::Other,
    ];

    /// The reason's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::StillHaveSome => "still_have_some",
            RejectReason::NotNeeded => "not_needed",
            RejectReason::TooExpensive => "too_expensive",
            RejectReason::Other => "other",
        }
    }

    /// How long the consumable gets no new proposal.
    pub fn pause_ms(self, rules: &Rules) -> UnixMs {
        match self {
            RejectReason::StillHaveSome => u64::from(rules.still_have_some_delay_hours) * HOUR_MS,
            RejectReason::NotNeeded => 7 * 24 * HOUR_MS,
            RejectReason::TooExpensive | RejectReason::Other => 24 * HOUR_MS,
        }
    }
}

impl std::str::FromStr for RejectReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RejectReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown reason {s:?}: use still_have_some, not_needed, too_expensive or other"
                )
            })
    }
}

/// What an order the policy wants turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Approved at once.
    Place,
    /// Waits for a person; `why` says why it was not placed at once.
    Ask {
        /// Why approval is needed.
        why: super::words::Ask,
        /// Whether it may place itself when nobody answers.
        on_expiry: ExpiryDefault,
    },
    /// Placed when the cancel window closes, unless cancelled.
    Hold {
        /// When it is placed.
        until: UnixMs,
    },
    /// Not ordered at all (mode `off`).
    Skip,
}

/// What a proposed order is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    /// A person's approval.
    Approval,
    /// The end of a cancel window (`notify` mode).
    CancelWindow,
}

/// The household side of a proposed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// What it waits for.
    pub kind: PendingKind,
    /// Why, in a sentence.
    pub why: String,
    /// When to prompt (after quiet hours or a snooze).
    pub prompt_at: UnixMs,
    /// When the prompt went out.
    pub prompted_at: Option<UnixMs>,
    /// When it takes its default.
    pub expires_at: Option<UnixMs>,
    /// The default.
    pub on_expiry: ExpiryDefault,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When.
    pub at: UnixMs,
    /// Who (`alice (owner)`, `home-assistant`, `agent`).
    pub who: String,
    /// What kind of change (`approve`, `rules`, `add_member`, ...).
    pub action: String,
    /// What it was about (an order id, a member, a device).
    pub subject: String,
    /// What changed, in a sentence.
    pub detail: String,
}

/// What an actor asks to do, for [`Household::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Approve, reject, edit or snooze an order.
    DecideOrders,
    /// Change rules, members or devices.
    ChangeSettings,
}

/// The actor may not do this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The member id is unknown (removed meanwhile).
    #[error("member {0} is not part of the household")]
    UnknownMember(String),
    /// The role does not allow it.
    #[error("{who} is a {role} and only owners may change settings", role = role.as_str())]
    NotOwner {
        /// The member's name.
        who: String,
        /// Their role.
        role: Role,
    },
}

/// Members, rules and what rejections taught; stored as one record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Household {
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// The rules.
    pub rules: Rules,
    /// Per consumable id, no new proposal before this time (taught by rejections).
    pub paused_until: BTreeMap<String, UnixMs>,
    /// Number of the next member.
    pub next_member_no: u64,
    /// Number of the next audit entry.
    pub next_audit_no: u64,
    /// Devices an owner gave an MQTT login, by device id (the login's user name).
    #[serde(default)]
    pub device_logins: BTreeMap<String, DeviceLogin>,
}

/// A device's MQTT login: the password is shown once when issued and kept only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogin {
    /// SHA-256 of the password, lower-case hex.
    pub password_hash: String,
    /// When it was issued.
    pub issued_at: UnixMs,
}

impl Household {
    /// The member with this token hash.
    pub fn member_by_token_hash(&self, token_hash: &str) -> Option<&Member> {
        self.members.values().find(|m| m.token_hash == token_hash)
    }

    /// How the actor is named in the audit trail.
    pub fn who(&self, actor: &Actor) -> String {
        match actor {
            Actor::Member(id) => match self.members.get(id) {
                Some(m) => format!("{} ({})", m.name, m.role.as_str()),
                None => format!("removed member {id}"),
            },
            Actor::HomeAssistant => "home-assistant".into(),
            Actor::Agent => "agent".into(),
            Actor::Console => "console".into(),
        }
    }

    /// Whether the actor may do this.
    pub fn authorize(&self, actor: &Actor, permission: Permission) -> Result<(), Denied> {
        let Actor::Member(id) = actor else {
            return Ok(());
        };
        let member = self
            .members
            .get(id)
            .ok_or_else(|| Denied::UnknownMember(id.clone()))?;
        match (permission, member.role) {
            (Permission::DecideOrders, _) | (Permission::ChangeSettings, Role::Owner) => Ok(()),
            (Permission::ChangeSettings, role) => Err(Denied::NotOwner {
                who: member.name.clone(),
                role,
            }),
        }
    }

    /// Whether proposals for the consumable are paused by an earlier rejection.
    pub fn paused(&self, consumable: &str, now: UnixMs) -> bool {
        self.paused_until
            .get(consumable)
            .is_some_and(|&until| now < until)
    }

    /// Decides what to do with an order the policy wants for `consumables` (a bundle has
    /// several; its strictest mode applies): `total` for it, with `spent` already committed
    /// this month in the household's currency (the budget's and the approval limit's). An
    /// order in another currency is never weighed against those: with a budget set, a person
    /// decides; the approval limit does not place it by itself.
    pub fn route(&self, consumables: &[&str], total: Money, spent: Money, now: UnixMs) -> Route {
        let rules = &self.rules;
        let Some(consumable) = consumables
            .iter()
            .copied()
            .max_by_key(|c| rules.mode_of(c).strictness())
        else {
            return Route::Skip;
        };
        let mode = rules.mode_of(consumable);
        if mode == Mode::Off {
            return Route::Skip;
        }
        let home = total.currency == spent.currency;
        if let Some(budget) = rules.monthly_budget_cents {
            let why = if !home {
                Some(super::words::Ask::OtherCurrency {
                    total,
                    home: spent.currency,
                })
            } else if spent.minor.saturating_add(total.minor) > budget {
                Some(super::words::Ask::OverBudget {
                    spent: spent.minor,
                    budget,
                    total: total.minor,
                })
            } else {
                None
            };
            if let Some(why) = why {
                return Route::Ask {
                    why,
                    on_expiry: ExpiryDefault::Skip,
                };
            }
        }
        match mode {
            Mode::Auto => Route::Place,
            Mode::Approve if home && total.minor < rules.auto_approve_below_cents => Route::Place,
            Mode::Approve => Route::Ask {
                why: super::words::Ask::ModeAsks {
                    consumable: consumable.to_string(),
                },
                on_expiry: rules.on_expiry,
            },
            Mode::Notify => Route::Hold {
                until: now + u64::from(rules.cancel_window_hours) * HOUR_MS,
            },
            Mode::Off => Route::Skip,
        }
    }
}

/// Cents as `EUR 12.34` (the sandbox shop prices in euros).
pub fn money(cents: u64) -> String {
    amount(replenish_commerce::Money::new(
        cents,
        replenish_commerce::Currency::EUR,
    ))
}

/// An amount as the audit trail writes it: `EUR 12.34`, `CHF 5.00`, `JPY 1240`.
pub fn amount(money: replenish_commerce::Money) -> String {
    let digits = money.currency.minor_digits();
    let scale = 10u64.pow(digits);
    let code = money.currency.code();
    let major = money.minor / scale;
    match digits {
        0 => format!("{code} {major}"),
        _ => format!(
            "{code} {major}.{:0width$}",
            money.minor % scale,
            width = digits as usize
        ),
    }
}

#[cfg(test)]
mod tests;
