//! The HTTP API's own types for what it shows and takes of the engine's: their JSON and their
//! OpenAPI schemas live here, at the edge, and each converts to and from the engine's type, so
//! the engine carries no schema annotations and the published API changes only when these do.
//! They keep the engine types' names, so the OpenAPI document names them as before. An enum's
//! conversions match every variant both ways: a variant added on one side and not the other
//! does not compile.

mod status;
pub mod whole;

pub use status::{
    DeviceView, OrderLineView, OrderView, SlotView, StatusPage, StatusTotals, StatusView,
    status_page, status_view,
};

use std::collections::BTreeMap;

use replenish_commerce::Currency;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::UnixMs;
use crate::engine::household::{self, QuietHours};
use crate::engine::{inventory, words};

/// An enum of the API and its engine twin, with conversions both ways.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident = $engine:path {
            $($(#[$variant_meta:meta])* $variant:ident,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl From<$engine> for $name {
            fn from(value: $engine) -> Self {
                use $engine as E;
                match value {
                    $(E::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$name> for $engine {
            fn from(value: $name) -> Self {
                use $engine as E;
                match value {
                    $($name::$variant => E::$variant,)+
                }
            }
        }
    };
}

wire_enum! {
    /// What a member may do.
    Role = household::Role {
        /// Approves, rejects, edits and snoozes orders.
        Member,
        /// Everything a member may, and changes rules, members and devices.
        Owner,
    }
}

wire_enum! {
    /// How orders of a consumable are handled.
    Mode = household::Mode {
        /// Ordered at once (unless it breaks the monthly budget).
        Auto,
        /// Waits for a member's approval (unless cheaper than the auto-approve limit).
        Approve,
        /// Ordered after a cancel window; the household is told and may cancel meanwhile.
        Notify,
        /// Never ordered; forecasts still shown.
        Off,
    }
}

wire_enum! {
    /// What a pending approval turns into when nobody answers in time.
    ExpiryDefault = household::ExpiryDefault {
        /// Place the order.
        Order,
        /// Drop it; the policy proposes again when the forecast still says so.
        Skip,
    }
}

wire_enum! {
    /// Why a person rejected a proposal; it shapes the next one.
    RejectReason = household::RejectReason {
        /// The sensor misses some stock: wait `still_have_some_delay_hours` before proposing again.
        StillHaveSome,
        /// Not wanted any more for now: wait a week.
        NotNeeded,
        /// Too expensive: wait a day (prices and packs may change).
        TooExpensive,
        /// Anything else: wait a day.
        Other,
    }
}

wire_enum! {
    /// Whether a device is connected, as far as the agent knows.
    Presence = inventory::Presence {
        /// Not heard from since the agent started: neither a birth nor a last will read yet.
        Unknown,
        /// Its birth is the latest status seen.
        Online,
        /// Its last will (or goodbye) is the latest status seen.
        Offline,
    }
}

wire_enum! {
    /// How numbers, money and dates are written for the household.
    Locale = words::Locale {
        /// English: `€1,234.50`, `1.5 kg`.
        En,
        /// German: `1.234,50 €`, `1,5 kg`.
        De,
    }
}

/// Settings of one consumable that override the household's. Read from a JSON object only
/// (serde's derive would also take a list of the fields in order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumableRules {
    /// Its mode; the household's default when unset.
    pub mode: Option<Mode>,
    /// Its acceptable chance of running out, above 0 and below 0.5; the policy's when unset.
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 0.5)]
    pub risk: Option<f64>,
}

impl<'de> Deserialize<'de> for ConsumableRules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
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

impl From<household::ConsumableRules> for ConsumableRules {
    fn from(rules: household::ConsumableRules) -> Self {
        Self {
            mode: rules.mode.map(Mode::from),
            risk: rules.risk,
        }
    }
}

impl From<ConsumableRules> for household::ConsumableRules {
    fn from(rules: ConsumableRules) -> Self {
        Self {
            mode: rules.mode.map(household::Mode::from),
            risk: rules.risk,
        }
    }
}

/// The household's rules. Owners change them; every change is audited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Mode of consumables without their own.
    pub default_mode: Mode,
    /// Per consumable id.
    pub consumables: BTreeMap<String, ConsumableRules>,
    /// The currency of `auto_approve_below_cents` and `monthly_budget_cents`: the household's
    /// (its first shop's, EUR before a catalog is known). Always given in answers; in a
    /// request it may be left out, and when given it must be the household's (a client
    /// cannot set a budget in another currency, 422).
    #[schema(value_type = Option<String>, pattern = "^[A-Z]{3}$", example = "EUR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// In `approve` mode, orders cheaper than this (minor units of `currency`: cents) are
    /// placed without asking (0: always ask).
    #[schema(maximum = 1_000_000_000_000_u64)]
    #[serde(deserialize_with = "whole::u64")]
    pub auto_approve_below_cents: u64,
    /// Spending limit per calendar month (household time, minor units of `currency`); an order
    /// that would exceed it, or is priced in another currency, waits for approval whatever
    /// the mode, and never places itself on expiry.
    #[schema(maximum = 1_000_000_000_000_u64)]
    #[serde(deserialize_with = "whole::option_u64")]
    pub monthly_budget_cents: Option<u64>,
    /// Nobody is prompted in these hours (`"22:00-07:00"`, household time); prompts wait
    /// until they end.
    #[schema(
        value_type = Option<String>,
        example = "22:00-07:00",
        pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
    )]
    pub quiet_hours: Option<QuietHours>,
    /// Time zone of the household (IANA name), for quiet hours and budget months.
    pub timezone: String,
    /// How numbers, money and dates are written for the household.
    pub locale: Locale,
    /// How long a prompt waits for an answer, 1 to 336 hours.
    #[schema(minimum = 1, maximum = 336)]
    #[serde(deserialize_with = "whole::u32")]
    pub approval_timeout_hours: u32,
    /// What an unanswered prompt turns into.
    pub on_expiry: ExpiryDefault,
    /// In `notify` mode, how long the household may cancel before the order is placed.
    #[schema(maximum = 72)]
    #[serde(deserialize_with = "whole::u32")]
    pub cancel_window_hours: u32,
    /// After a rejection because "we still have some", how long before the next proposal (0
    /// to 720 hours).
    #[schema(maximum = 720)]
    #[serde(deserialize_with = "whole::u32")]
    pub still_have_some_delay_hours: u32,
}

impl Default for Rules {
    fn default() -> Self {
        household::Rules::default().into()
    }
}

impl Rules {
    /// The household's rules as the API shows them, their money in `currency`.
    pub fn in_currency(rules: household::Rules, currency: Currency) -> Self {
        Self {
            currency: Some(currency),
            ..rules.into()
        }
    }
}

impl From<household::Rules> for Rules {
    fn from(rules: household::Rules) -> Self {
        Self {
            currency: None,
            default_mode: rules.default_mode.into(),
            consumables: rules
                .consumables
                .into_iter()
                .map(|(id, c)| (id, c.into()))
                .collect(),
            auto_approve_below_cents: rules.auto_approve_below_cents,
            monthly_budget_cents: rules.monthly_budget_cents,
            quiet_hours: rules.quiet_hours,
            timezone: rules.timezone,
            locale: rules.locale.into(),
            approval_timeout_hours: rules.approval_timeout_hours,
            on_expiry: rules.on_expiry.into(),
            cancel_window_hours: rules.cancel_window_hours,
            still_have_some_delay_hours: rules.still_have_some_delay_hours,
        }
    }
}

impl From<Rules> for household::Rules {
    fn from(rules: Rules) -> Self {
        Self {
            default_mode: rules.default_mode.into(),
            consumables: rules
                .consumables
                .into_iter()
                .map(|(id, c)| (id, c.into()))
                .collect(),
            auto_approve_below_cents: rules.auto_approve_below_cents,
            monthly_budget_cents: rules.monthly_budget_cents,
            quiet_hours: rules.quiet_hours,
            timezone: rules.timezone,
            locale: rules.locale.into(),
            approval_timeout_hours: rules.approval_timeout_hours,
            on_expiry: rules.on_expiry.into(),
            cancel_window_hours: rules.cancel_window_hours,
            still_have_some_delay_hours: rules.still_have_some_delay_hours,
        }
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl From<household::AuditEntry> for AuditEntry {
    fn from(entry: household::AuditEntry) -> Self {
        Self {
            seq: entry.seq,
            at: entry.at,
            who: entry.who,
            action: entry.action,
            subject: entry.subject,
            detail: entry.detail,
        }
    }
}

/// A change to a proposed order made while approving it; it applies to the order's first line
/// (the consumable that triggered it), bundled lines stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderEdit {
    /// Another number of packs (1 to 99).
    #[serde(default, deserialize_with = "whole::option_u32")]
    #[schema(minimum = 1, maximum = 99)]
    pub packs: Option<u32>,
    /// Another product of the same consumable from the (chosen) shop's catalog.
    pub sku: Option<String>,
    /// Another shop (its id, as in `GET /api/v1/orders/{id}/options`). Bundled lines the
    /// shop does not sell (by the same product id) are left out; they are ordered on their own
    /// when they need it.
    pub shop: Option<String>,
    /// Another fulfilment option of the (chosen) shop (its id: home delivery, click and
    /// collect).
    pub fulfilment: Option<String>,
}

impl From<OrderEdit> for crate::engine::OrderEdit {
    fn from(edit: OrderEdit) -> Self {
        Self {
            packs: edit.packs,
            sku: edit.sku,
            shop: edit.shop,
            fulfilment: edit.fulfilment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_and_write_as_the_engine_stores_them() {
        let mut engine = household::Rules {
            default_mode: household::Mode::Approve,
            monthly_budget_cents: Some(12_000),
            ..household::Rules::default()
        };
        engine.consumables.insert(
            "milk".into(),
            household::ConsumableRules {
                mode: Some(household::Mode::Off),
                risk: Some(0.05),
            },
        );
        let wire = Rules::from(engine.clone());
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::to_value(&engine).unwrap()
        );
        let back: household::Rules =
            serde_json::from_value::<Rules>(serde_json::to_value(&engine).unwrap())
                .unwrap()
                .into();
        assert_eq!(back, engine);
        // The API says which currency the amounts are in.
        let shown = serde_json::to_value(Rules::in_currency(engine, Currency::EUR)).unwrap();
        assert_eq!(shown["currency"], "EUR");
        assert_eq!(shown["monthly_budget_cents"], 12_000);
    }

    #[test]
    fn enums_name_their_values_as_the_engine_does() {
        for mode in household::Mode::ALL {
            assert_eq!(
                serde_json::to_value(Mode::from(mode)).unwrap(),
                serde_json::to_value(mode).unwrap()
            );
            assert_eq!(household::Mode::from(Mode::from(mode)), mode);
        }
        for reason in household::RejectReason::ALL {
            assert_eq!(
                serde_json::to_value(RejectReason::from(reason)).unwrap(),
                serde_json::to_value(reason).unwrap()
            );
        }
    }
}
