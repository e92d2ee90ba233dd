//! Words a household reads: every sentence the page, notifications, approval prompts and Home
//! Assistant show a person, built from engine state with display names, units and money
//! formatted for the household's locale. Engineers' figures (quantiles, risk) stay in the
//! order's `reason`, the API and the logs.
//!
//! Pure: the engine and the HTTP edge both speak through [`Words`]. docs/words.md lists every
//! sentence, checked against [`catalog`] by a test.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use replenish_commerce::{Catalog, Currency, Fulfilment, FulfilmentOption, Money};
use replenish_protocol::Unit;
use serde::{Deserialize, Serialize};

use super::events::NoticeKind;
use super::household::to_zoned;
use super::inventory::SlotState;
use super::order::{Order, OrderItem, OrderState};
use super::shopping::ShopInfo;
use crate::clock::{DAY_MS, UnixMs};

/// How numbers, money and dates are written for the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    /// English: `€1,234.50`, `1.5 kg`.
    #[default]
    En,
    /// German: `1.234,50 €`, `1,5 kg`.
    De,
}

impl Locale {
    /// Every locale, for forms.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::De];

    /// The code (`en`, `de`), as in `lang` attributes.
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
        }
    }

    /// Its name, in its own language.
    pub fn name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::De => "Deutsch",
        }
    }

    fn decimal(self) -> char {
        match self {
            Locale::En => '.',
            Locale::De => ',',
        }
    }

    fn grouping(self) -> char {
        match self {
            Locale::En => ',',
            Locale::De => '.',
        }
    }
}

/// What a reorder was decided on, kept with each order line so that people can be told in
/// words: when the slot was expected to run empty and how long delivery takes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Outlook {
    /// When the slot was expected to run empty (median forecast), if within the horizon.
    pub empty_at: Option<UnixMs>,
    /// The early end (P10) of that.
    pub empty_earliest: Option<UnixMs>,
    /// The late end (P90) of that.
    pub empty_latest: Option<UnixMs>,
    /// Fewest milliseconds from ordering to arrival (P10 of the lead time).
    pub lead_min_ms: UnixMs,
    /// Most milliseconds from ordering to arrival (P90 of the lead time).
    pub lead_max_ms: UnixMs,
    /// For an order that bridges the days before another on its way: when that one arrives.
    #[serde(default)]
    pub bridges_until: Option<UnixMs>,
}

impl Outlook {
    /// The outlook of a slot's forecast and a shop's lead time.
    pub fn of(forecast: &super::forecast::Forecast, lead: &super::lead_time::LeadTime) -> Self {
        Self {
            empty_at: forecast.empty_at,
            empty_earliest: forecast.empty_earliest,
            empty_latest: forecast.empty_latest,
            lead_min_ms: lead.p10(),
            lead_max_ms: lead.p90().max(lead.p10()),
            bridges_until: None,
        }
    }
}

/// How likely a slot is to run out before an order arrives, as a person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Even the median forecast empties it before the earliest arrival.
    LikelyShort,
    /// The early end of the forecast empties it before the latest arrival.
    MaybeShort,
    /// It should last.
    InTime,
}

/// Why a person must decide on an order, whatever the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// The household set the consumable to ask before ordering.
    ModeAsks {
        /// The consumable's id.
        consumable: String,
    },
    /// The order would go over the monthly budget (minor units of the home currency).
    OverBudget {
        /// Spent this month so far.
        spent: u64,
        /// The budget.
        budget: u64,
        /// This order.
        total: u64,
    },
    /// A monthly budget is set and the order is priced in another currency than the
    /// household's: it cannot be weighed against the budget (no exchange rates here).
    OtherCurrency {
        /// The order's total.
        total: replenish_commerce::Money,
        /// The household's currency, the budget's.
        home: Currency,
    },
    /// None of the household's chosen products is in stock anywhere: this is another one.
    OtherProduct {
        /// The consumable's id.
        consumable: String,
    },
    /// It costs more per unit than the price guard allows without asking.
    Dearer {
        /// How much more than usual, in whole percent.
        percent: u32,
        /// How much more the household allows without asking, in whole percent.
        allowed: u32,
    },
    /// An earlier order has waited uncollected at a pickup point.
    Uncollected {
        /// Where it waits.
        place: String,
        /// For how many days.
        days: u64,
    },
}

/// Display names by id (consumables, devices) from configuration; others are derived from the
/// id (`coffee_beans` → `Coffee beans`).
pub type Names = BTreeMap<String, String>;

/// Speaks for one household at one moment.
pub struct Words<'a> {
    /// How numbers, money and dates are written.
    pub locale: Locale,
    /// The household's time zone.
    pub zone: TimeZone,
    /// Now, for "in 3 days" and "tomorrow".
    pub now: UnixMs,
    /// Configured display names.
    pub names: &'a Names,
    /// The shops, for their names.
    pub shops: &'a [ShopInfo],
    /// The shops' catalogs, for product names.
    pub catalogs: &'a BTreeMap<super::shopping::ShopId, Catalog>,
}

impl Words<'_> {
    /// The display name of a consumable or device id.
    pub fn name(&self, id: &str) -> String {
        display_name(self.names, id)
    }

    /// The shop's name, else its id.
    pub fn shop(&self, id: &str) -> String {
        self.shops
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }

    /// The product's name at the shop, else at any shop, else its SKU.
    pub fn product(&self, shop: &str, sku: &str) -> String {
        self.catalogs
            .get(shop)
            .and_then(|c| c.offer(sku))
            .or_else(|| self.catalogs.values().find_map(|c| c.offer(sku)))
            .map_or_else(|| sku.to_string(), |o| o.name.clone())
    }

    /// An amount of money in its currency, as [`Words::money`] writes it.
    pub fn price(&self, amount: Money) -> String {
        self.money(amount.minor, amount.currency)
    }

    /// Money: `€12.40` (en), `12,40 €` (de); currencies without a common symbol by code
    /// (`CHF 12.40`, `12,40 CHF`).
    pub fn money(&self, minor: u64, currency: Currency) -> String {
        let digits = currency.minor_digits();
        let scale = 10u64.pow(digits);
        let mut number = group(minor / scale, self.locale.grouping());
        if digits > 0 {
            number.push(self.locale.decimal());
            number.push_str(&format!(
                "{:0width$}",
                minor % scale,
                width = digits as usize
            ));
        }
        // CLDR's short forms in en and de: a symbol only where the symbol is what people
        // write; otherwise the ISO code.
        let symbol = match currency.code() {
            "EUR" => Some("€"),
            "GBP" => Some("£"),
            "USD" => Some("$"),
            "JPY" => Some("¥"),
            _ => None,
        };
        match (self.locale, symbol) {
            (Locale::En, Some(s)) => format!("{s}{number}"),
            (Locale::En, None) => format!("{} {number}", currency.code()),
            (Locale::De, Some(s)) => format!("{number}\u{a0}{s}"),
            (Locale::De, None) => format!("{number}\u{a0}{}", currency.code()),
        }
    }

    /// A plain number with at most `decimals` decimals, trailing zeros dropped: `1.5`, `1,5`.
    pub fn number(&self, value: f64, decimals: usize) -> String {
        let text = format!("{value:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        };
        let text = if text == "-0" { "0".to_string() } else { text };
        match self.locale {
            Locale::En => text,
            Locale::De => text.replace('.', ","),
        }
    }

    /// An amount in the unit people use for it: `1.5 kg`, `700 ml`, `3 l`, `5` (pieces).
    pub fn amount(&self, value: f64, unit: Unit) -> String {
        match unit {
            Unit::G if value.abs() >= 1000.0 => format!("{} kg", self.number(value / 1000.0, 2)),
            Unit::Ml if value.abs() >= 1000.0 => format!("{} l", self.number(value / 1000.0, 2)),
            Unit::Count => self.number(value, 1),
            other if value.abs() < 10.0 => format!("{} {}", self.number(value, 1), other.symbol()),
            other => format!("{} {}", self.number(value, 0), other.symbol()),
        }
    }

    /// A whole number of days: `less than a day`, `1 day`, `3 days`.
    pub fn days(&self, ms: UnixMs) -> String {
        let days = (ms as f64 / DAY_MS as f64).round() as u64;
        match days {
            0 => "less than a day".into(),
            1 => "1 day".into(),
            n => format!("{n} days"),
        }
    }

    /// `in 2–4 days`, `in 2 days`, `within a day`, `today`: a range of whole days ahead.
    fn days_range(&self, low: UnixMs, high: UnixMs) -> String {
        let (lo, hi) = (
            (low as f64 / DAY_MS as f64).round() as u64,
            (high as f64 / DAY_MS as f64).round() as u64,
        );
        match (lo, hi) {
            (_, 0) => "today".into(),
            (0, 1) => "within a day".into(),
            (0, hi) => format!("within {hi} days"),
            (lo, hi) if lo >= hi => format!("in {}", self.days(high)),
            (lo, hi) => format!("in {lo}–{hi} days"),
        }
    }

    /// The household's wall-clock time: `Tue 24 Nov, 14:00`.
    pub fn when(&self, at: UnixMs) -> String {
        to_zoned(at, &self.zone).map_or_else(
            || "-".into(),
            |time| time.strftime("%a %-d %b, %H:%M").to_string(),
        )
    }

    /// A day as people say it: `today`, `tomorrow`, `Thursday` (within a week), `Thu 10 Dec`.
    pub fn day(&self, at: UnixMs) -> String {
        let (Some(then), Some(today)) = (to_zoned(at, &self.zone), to_zoned(self.now, &self.zone))
        else {
            return "-".into();
        };
        let apart = (then.date() - today.date()).get_days();
        match apart {
            i32::MIN..=-1 => then.strftime("%a %-d %b").to_string(),
            0 => "today".into(),
            1 => "tomorrow".into(),
            2..=6 => then.strftime("%A").to_string(),
            _ => then.strftime("%a %-d %b").to_string(),
        }
    }

    /// Whether any shop sells the consumable: what none sells (tap water) is watched, never
    /// ordered.
    pub fn orderable(&self, consumable: &str) -> bool {
        self.catalogs
            .values()
            .any(|c| c.offers.iter().any(|o| o.consumable == consumable))
    }

    /// `Coffee beans: about 3 days left (2 to 4)`; `Milk: 700 ml left` without a forecast;
    /// `Coffee brews: 6 counted so far, about 3 a day` for what is only counted.
    pub fn days_left(&self, slot: &SlotState) -> String {
        let name = self.name(slot.spec.consumable.as_str());
        if slot.spec.sensor == replenish_protocol::SensorKind::Usage && slot.level.is_none() {
            return match slot.forecast.as_ref().filter(|f| f.rate_per_day > 0.0) {
                Some(f) => format!(
                    "{name}: {} counted so far, about {} a day",
                    slot.uses,
                    self.amount(f.rate_per_day, slot.spec.unit)
                ),
                None => format!("{name}: {} counted so far", slot.uses),
            };
        }
        let left = |t: UnixMs| t.saturating_sub(self.now) as f64 / DAY_MS as f64;
        match (slot.level, slot.forecast.as_ref()) {
            (Some(level), _) if level <= 0.0 => format!("{name}: empty"),
            (Some(_), Some(f)) => match (f.empty_at, f.empty_earliest, f.empty_latest) {
                (Some(mid), early, late) => {
                    let mid = left(mid);
                    if mid < 1.0 {
                        return format!("{name}: less than a day left");
                    }
                    let range = match (early, late) {
                        (Some(e), Some(l)) => {
                            let (e, l) = (left(e).floor() as u64, left(l).ceil() as u64);
                            if e == l {
                                String::new()
                            } else {
                                format!(" ({e} to {l})")
                            }
                        }
                        _ => String::new(),
                    };
                    let mid = mid.round() as u64;
                    let unit = if mid == 1 { "day" } else { "days" };
                    format!("{name}: about {mid} {unit} left{range}")
                }
                _ => format!("{name}: more than a year left at this rate"),
            },
            (Some(level), None) => {
                format!("{name}: {} left", self.amount(level, slot.spec.unit))
            }
            (None, _) => format!("{name}: no reading yet"),
        }
    }

    /// `Arrives in 1–2 days`, `Ready to collect within a day`.
    pub fn arrival(&self, outlook: &Outlook, pickup: bool) -> String {
        let verb = if pickup {
            "Ready to collect"
        } else {
            "Arrives"
        };
        format!(
            "{verb} {}",
            self.days_range(outlook.lead_min_ms, outlook.lead_max_ms)
        )
    }

    /// Whether the slot may run out before an order placed now arrives.
    pub fn timing(&self, outlook: &Outlook) -> Timing {
        let earliest = self.now.saturating_add(outlook.lead_min_ms);
        let latest = self.now.saturating_add(outlook.lead_max_ms);
        match (outlook.empty_at, outlook.empty_earliest) {
            (Some(mid), _) if mid <= earliest => Timing::LikelyShort,
            (_, Some(early)) if early <= latest => Timing::MaybeShort,
            _ => Timing::InTime,
        }
    }

    /// `Likely to run out before it arrives` and its milder forms.
    pub fn timing_sentence(&self, outlook: &Outlook) -> &'static str {
        match self.timing(outlook) {
            Timing::LikelyShort => "Likely to run out before it arrives",
            Timing::MaybeShort => "Could run out before it arrives",
            Timing::InTime => "Should arrive before it runs out",
        }
    }

    /// One line of an order: `1 kg of Coffee beans (2 × 500 g)`, `30 Dishwasher tablets`.
    pub fn line(&self, line: &OrderItem) -> String {
        let name = self.name(line.consumable.as_str());
        let total = f64::from(line.packs) * line.pack_size;
        let packs = if line.packs > 1 {
            format!(
                " ({} × {})",
                line.packs,
                self.amount(line.pack_size, line.unit)
            )
        } else {
            String::new()
        };
        match line.unit {
            Unit::Count => format!("{} {name}{packs}", self.amount(total, line.unit)),
            unit => format!("{} of {name}{packs}", self.amount(total, unit)),
        }
    }

    /// Every line of an order, joined: `1 kg of Coffee beans (2 × 500 g) and 1 l of Milk`.
    pub fn lines(&self, order: &Order) -> String {
        let lines: Vec<String> = order.lines().iter().map(|l| self.line(l)).collect();
        join_and(&lines)
    }

    /// When an order comes: `arriving Thursday`, `arriving Thursday or Friday`, `ready to
    /// collect tomorrow`; from the shop's expected date once placed.
    pub fn arriving(&self, order: &Order) -> String {
        let pickup = is_pickup(order.fulfilment.as_ref());
        let verb = if pickup {
            "ready to collect"
        } else {
            "arriving"
        };
        if let Some(at) = order.expected_delivery_at {
            return format!("{verb} {}", self.day(at));
        }
        let from = self.now.max(order.created_at);
        let outlook = order.first_line().outlook.unwrap_or_default();
        format!(
            "{verb} {}",
            self.days_between(
                from.saturating_add(outlook.lead_min_ms),
                from.saturating_add(outlook.lead_max_ms)
            )
        )
    }

    /// Two days as a span: `Thursday`, `today or tomorrow`, `between Thursday and Monday`.
    pub fn days_between(&self, early: UnixMs, late: UnixMs) -> String {
        let (first, last) = (self.day(early), self.day(late));
        let apart = match (to_zoned(early, &self.zone), to_zoned(late, &self.zone)) {
            (Some(a), Some(b)) => (b.date() - a.date()).get_days(),
            _ => 0,
        };
        match apart {
            0 => first,
            1 => format!("{first} or {last}"),
            _ => format!("between {first} and {last}"),
        }
    }

    /// The order in one sentence, as it stands:
    /// `Order 1 kg of Coffee beans (2 × 500 g) from Shop A for €12.40, arriving Thursday`,
    /// `1 kg of Coffee beans (2 × 500 g) from Shop A is on its way, arriving Thursday`.
    pub fn order(&self, order: &Order) -> String {
        let what = self.lines(order);
        let shop = self.shop(&order.shop);
        let money = self.price(order.total());
        let pickup = is_pickup(order.fulfilment.as_ref());
        let done = if pickup { "collected" } else { "delivered" };
        match order.state {
            OrderState::Proposed => format!(
                "Order {what} from {shop} for {money}, {}",
                self.arriving(order)
            ),
            OrderState::Approved => {
                format!("{} from {shop} for {money} is being ordered", cap(&what))
            }
            OrderState::Placed => format!(
                "Ordered {what} from {shop} for {money}, {}",
                self.arriving(order)
            ),
            OrderState::Shipped => match order.fulfilment.as_ref().map(|f| &f.method) {
                Some(Fulfilment::Pickup(point)) => format!(
                    "{} from {shop} is ready to collect at {}, {} (open {})",
                    cap(&what),
                    point.name,
                    point.address,
                    point.opening_hours
                ),
                _ => format!(
                    "{} from {shop} is on its way, {}",
                    cap(&what),
                    self.arriving(order)
                ),
            },
            OrderState::Delivered => match order.delivered_at {
                Some(at) => format!("{} from {shop} was {done} {}", cap(&what), self.day(at)),
                None => format!("{} from {shop} was {done}", cap(&what)),
            },
            OrderState::Cancelled => format!("{} from {shop} was cancelled", cap(&what)),
            OrderState::Failed => format!("{} from {shop} could not be ordered", cap(&what)),
        }
    }

    /// A short title for an order: `Coffee beans from BigBox`.
    pub fn order_title(&self, order: &Order) -> String {
        format!(
            "{} from {}",
            order_names(self.names, order),
            self.shop(&order.shop)
        )
    }

    /// Where an order stands, in words: `waiting for your approval`, `on its way`.
    pub fn state(&self, order: &Order) -> String {
        let pickup = is_pickup(order.fulfilment.as_ref());
        match order.state {
            OrderState::Proposed => "waiting for your approval".into(),
            OrderState::Approved => "being sent to the shop".into(),
            OrderState::Placed => "ordered".into(),
            OrderState::Shipped if pickup => "ready to collect".into(),
            OrderState::Shipped => "on its way".into(),
            OrderState::Delivered => match order.delivered_at {
                Some(at) if pickup => format!("collected {}", self.day(at)),
                Some(at) => format!("delivered {}", self.day(at)),
                None => "delivered".into(),
            },
            OrderState::Cancelled => "cancelled".into(),
            OrderState::Failed => "could not be ordered".into(),
        }
    }

    /// How an order comes: `Delivered by BigBox (Standard delivery)`, `Collect at Corner Shop
    /// Mitte, Hauptstraße 1 (open Mon–Sat 08:00–20:00)`.
    pub fn fulfilment(&self, order: &Order) -> String {
        let shop = self.shop(&order.shop);
        match order.fulfilment.as_ref() {
            Some(FulfilmentOption {
                method: Fulfilment::Pickup(point),
                ..
            }) => format!(
                "Collect at {}, {} (open {})",
                point.name, point.address, point.opening_hours
            ),
            Some(option) => format!("Delivered by {shop} ({})", option.name),
            None => format!("Delivered by {shop}"),
        }
    }

    /// The household's own currency (budgets, approval limits): the first shop's.
    pub fn home_currency(&self) -> Currency {
        super::shopping::home_currency(self.shops, self.catalogs)
    }

    /// Why a person must decide: `You asked to approve orders of Coffee beans`.
    pub fn ask(&self, ask: &Ask) -> String {
        match ask {
            Ask::ModeAsks { consumable } => {
                format!("You asked to approve orders of {}", self.name(consumable))
            }
            Ask::OverBudget {
                spent,
                budget,
                total,
            } => {
                let c = self.home_currency();
                format!(
                    "It would go over your monthly budget: {} of {} spent, this order {}",
                    self.money(*spent, c),
                    self.money(*budget, c),
                    self.money(*total, c)
                )
            }
            Ask::OtherCurrency { total, home } => format!(
                "It costs {}, in another currency than your monthly budget ({home}), so it is not counted against the budget",
                self.price(*total)
            ),
            Ask::OtherProduct { consumable } => format!(
                "None of your chosen products for {} is in stock anywhere, so this is another one",
                self.name(consumable)
            ),
            Ask::Dearer { percent, allowed } => {
                format!("It costs {percent}% more than usual (you allow {allowed}% without asking)")
            }
            Ask::Uncollected { place, days } => format!(
                "An earlier order has waited at {place} for {days} days without being collected"
            ),
        }
    }

    /// Why this order, for a person: how long the slot lasts, how long delivery takes, and
    /// whether that is in time: `Coffee beans: about 3 days left (2 to 4). Arrives in 1–2
    /// days. Could run out before it arrives.` A bridge says so, and when the order it
    /// bridges to comes.
    pub fn why(&self, line: &OrderItem, slot: Option<&SlotState>, pickup: bool) -> String {
        self.why_of(line.consumable.as_str(), line.outlook, slot, pickup)
    }

    /// [`Words::why`] of an order's first line (the slot that triggered it), `slot` being that
    /// line's slot if it is still there.
    pub fn order_why(&self, order: &Order, slot: Option<&SlotState>) -> String {
        self.why_of(
            order.first_line().consumable.as_str(),
            order.first_line().outlook,
            slot,
            is_pickup(order.fulfilment.as_ref()),
        )
    }

    fn why_of(
        &self,
        consumable: &str,
        outlook: Option<Outlook>,
        slot: Option<&SlotState>,
        pickup: bool,
    ) -> String {
        let Some(outlook) = outlook else {
            return String::new();
        };
        let left = match slot {
            Some(slot) => self.days_left(slot),
            None => format!("{}: running low", self.name(consumable)),
        };
        let bridge = outlook.bridges_until.map_or_else(String::new, |at| {
            format!(
                " The order already on its way comes {}, likely too late: this one fills the gap.",
                self.day(at)
            )
        });
        format!(
            "{left}. {}. {}.{bridge}",
            self.arrival(&outlook, pickup),
            self.timing_sentence(&outlook)
        )
    }
}

/// The sentences of notices a person receives (prompts, and what needs their attention),
/// composed from an order's story (`Words::order`, with a full stop) and its why.
impl Words<'_> {
    /// An approval prompt: `Approve? Order … . You asked to approve orders of Milk. Milk: about
    /// 3 days left (1 to 8). … If nobody answers by Thu 8 Jan, 08:25, it is skipped.`
    pub fn prompt(
        &self,
        story: &str,
        ask: &str,
        why: &str,
        expires: UnixMs,
        ordered: bool,
    ) -> String {
        let then = if ordered { "ordered" } else { "skipped" };
        format!(
            "Approve? {story} {ask}. {why} If nobody answers by {}, it is {then}.",
            self.when(expires)
        )
    }

    /// An order held for a cancel window.
    pub fn scheduled(&self, story: &str, at: UnixMs, why: &str) -> String {
        format!(
            "{story} It is ordered by itself at {} unless you cancel it. {why}",
            self.when(at)
        )
    }

    /// The shop refused an order for good.
    pub fn failed(&self, story: &str, error: &str) -> String {
        format!("{story} The shop said: {error}. It is ordered again when it is needed.")
    }

    /// `your order of 1 kg of Coffee beans (2 × 500 g) for €17.98`.
    fn your_order(&self, order: &Order) -> String {
        format!(
            "your order of {} for {}",
            self.lines(order),
            self.price(order.total())
        )
    }

    /// The shop cancelled an order by itself.
    pub fn cancelled_by_shop(&self, order: &Order) -> String {
        format!(
            "{} cancelled {}. It is ordered again when it is needed.",
            cap(&self.shop(&order.shop)),
            self.your_order(order)
        )
    }

    /// The shop cancelled an order as the household asked.
    pub fn cancel_done(&self, order: &Order) -> String {
        format!(
            "{} cancelled {}, as you asked.",
            cap(&self.shop(&order.shop)),
            self.your_order(order)
        )
    }

    /// The shop answered that it is too late to cancel.
    pub fn cancel_refused(&self, order: &Order) -> String {
        let shop = self.shop(&order.shop);
        format!(
            "{} did not cancel {}: it is too late to cancel. Refuse it at the door or contact {shop} if it must not come.",
            cap(&shop),
            self.your_order(order)
        )
    }

    /// The shop could not be asked to cancel.
    pub fn cancel_unreachable(&self, order: &Order, why: &str) -> String {
        let shop = self.shop(&order.shop);
        format!(
            "{} could not be asked to cancel {} ({why}). Try again, or contact {shop} if it must not come.",
            cap(&shop),
            self.your_order(order)
        )
    }

    /// The shop sent other products than ordered: those the household's rules allow are
    /// accepted, the others to be refused.
    pub fn substituted(&self, order: &Order, accepted: &[String], refused: &[String]) -> String {
        let shop = self.shop(&order.shop);
        let mut text = format!(
            "{} is sending other products for {}.",
            cap(&shop),
            self.your_order(order)
        );
        if !accepted.is_empty() {
            text.push_str(&format!(
                " Accepted, as your rules allow: {}.",
                join_and(accepted)
            ));
        }
        if !refused.is_empty() {
            text.push_str(&format!(
                " Not as your rules allow: {}. Refuse it at the door or contact {shop}.",
                join_and(refused)
            ));
        }
        text
    }

    /// A click-and-collect order still waiting at its pickup point.
    pub fn pickup_waiting(&self, order: &Order, place: &str, waited_ms: UnixMs) -> String {
        format!(
            "{} from {} has been waiting at {place} for {}. Collect it, or say so if you have.",
            cap(&self.lines(order)),
            self.shop(&order.shop),
            self.days(waited_ms)
        )
    }

    /// A slot needs ordering and no shop has any of it: `(shop id, product name)` of each.
    pub fn nothing_in_stock(&self, consumable: &str, sold: &[(String, String)]) -> String {
        let names: Vec<String> = sold
            .iter()
            .map(|(shop, product)| format!("{product} at {}", self.shop(shop)))
            .collect();
        format!(
            "{} needs ordering, but none is in stock: {} {} out. Buy some elsewhere; it is ordered as soon as a shop has it again.",
            self.name(consumable),
            join_and(&names),
            if names.len() == 1 { "is" } else { "are all" }
        )
    }
}

/// An audit entry's action as the audit page says it: `approved`, `changed the rules`.
pub fn audit_action(action: &str) -> &str {
    match action {
        "approve" => "approved",
        "reject" => "rejected",
        "cancel" => "asked the shop to cancel",
        "cancelled" => "cancelled",
        "cancel refused" => "did not cancel",
        "collected" => "collected",
        "snooze" => "asked to be reminded later about",
        "substituted" => "sent other products for",
        "asked" => "asked a person about",
        "alternative" => "took another product for",
        "rules" => "changed",
        "add_member" => "added the member",
        "remove_member" => "removed the member",
        "accept_device" => "accepted the appliance",
        "remove_device" => "removed the appliance",
        "issue_device_login" => "gave a network login to the appliance",
        "command" => "sent a command to",
        other => other,
    }
}

/// Whether the household collects it.
pub fn is_pickup(option: Option<&FulfilmentOption>) -> bool {
    option.is_some_and(|f| matches!(f.method, Fulfilment::Pickup(_)))
}

/// The display name of a consumable or device id: configured in `names`, else made from the
/// id.
pub fn display_name(names: &Names, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| name_from_id(id))
}

/// What an order holds, by display names: `Coffee beans and Milk`.
pub fn order_names(names: &Names, order: &Order) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in order.lines() {
        let name = display_name(names, line.consumable.as_str());
        if !parts.contains(&name) {
            parts.push(name);
        }
    }
    join_and(&parts)
}

/// The first line of a notification (a push title): `Approve a reorder of Coffee beans?`.
/// `what` is what the order holds ([`order_names`]), when the notice is about an order.
pub fn announcement_title(kind: NoticeKind, what: Option<&str>) -> String {
    let what = what.unwrap_or("an order");
    match kind {
        NoticeKind::OrderScheduled => format!("Reorder of {what} scheduled"),
        NoticeKind::ApprovalRequested => format!("Approve a reorder of {what}?"),
        NoticeKind::NothingInStock => "Out of stock at every shop".to_string(),
        NoticeKind::PickupReady => format!("Ready to collect: {what}"),
        NoticeKind::CancelledByShop => format!("The shop cancelled {what}"),
        NoticeKind::SubstitutedByShop => format!("The shop replaced products in {what}"),
        NoticeKind::CancelRefused => format!("The shop did not cancel {what}"),
        _ => format!("Could not order {what}"),
    }
}

/// An id as a name: `coffee_beans` → `Coffee beans`, `coffee-maker` → `Coffee maker`.
pub fn name_from_id(id: &str) -> String {
    cap(&id.replace(['_', '-'], " "))
}

/// The first letter in upper case.
pub fn cap(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `1234567` → `1,234,567` with `separator`.
fn group(value: u64, separator: char) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
