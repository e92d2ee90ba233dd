//! Which shop, which product and which way to get it: the candidates for a slot (every shop's
//! in-stock offers of its consumable, each with every fulfilment option the household allows)
//! and the choice among those the policy would order now.
//!
//! The rule (docs/operations.md, "Choosing a shop"): among the candidates that arrive before
//! the slot may run out (the early end of its forecast), the lowest cost per unit, delivery
//! fees included, less what bundling saves at that shop (below); then the fewest orders (the
//! shop that takes more of the other lines); then the earliest arrival; then the shop listed
//! first. When none arrives in time, the one that arrives first. A household that prefers pickup
//! gets pickup whenever one qualifies.
//!
//! Bundling across shops, where it pays: another slot that would need ordering within
//! `policy.bundle_days` joins an order at a shop when buying it there, without a fee of its own,
//! costs no more per unit than ordering it on its own later at its best shop with that shop's
//! fee. What the lines that join save counts for the shop in the choice above, so a shop a little
//! dearer for the slot that triggers the order wins when the order it makes saves more.

use std::collections::BTreeMap;

use replenish_commerce::{Catalog, Fulfilment, FulfilmentOption, Offer};
use serde::{Deserialize, Serialize};

use super::lead_time::LeadTime;
use super::policy::ReorderDecision;
use crate::clock::{DAY_MS, UnixMs};

/// A shop's id in configuration and on orders (`corner`, `shop-a`): letters, digits, `-` and
/// `_`, 1 to 64 of them. Reads as its text wherever text is expected. The empty id (the
/// `Default`) is what orders stored before agents had several shops read as: the engine gives
/// them its first shop when it starts; [`ShopId::parse`] never makes one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopId(String);

impl ShopId {
    /// `text` as a shop id, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        valid.then(|| Self(text.to_string()))
    }

    /// The id of the one shop of an agent configured with `[commerce]` alone
    /// ([`DEFAULT_SHOP`](super::DEFAULT_SHOP)).
    pub fn default_shop() -> Self {
        Self(super::DEFAULT_SHOP.to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShopId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        match Self::parse(&text) {
            Some(id) => Ok(id),
            None => Err(format!(
                "{text:?} is not a shop id (1 to 64 letters, digits, '-' and '_')"
            )),
        }
    }
}

text_id!(ShopId);

/// Test shorthand: `"corner".into()`, which panics on a malformed id.
#[cfg(test)]
impl From<&str> for ShopId {
    #[allow(clippy::expect_used)] // tests: a malformed id is the test's own mistake
    fn from(text: &str) -> Self {
        Self::parse(text).expect("a valid shop id")
    }
}

/// When the household collects orders itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickupPreference {
    /// Always delivered (the default: nobody is sent to a shop without saying so).
    #[default]
    Never,
    /// Pickup competes with delivery: chosen when it arrives in time and costs less, or is the
    /// only way to arrive in time.
    WhenSooner,
    /// Pickup whenever a pickup option arrives in time.
    Prefer,
}

/// A shop the agent buys from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopInfo {
    /// Its id in configuration and on orders.
    pub id: ShopId,
    /// Its name as the household knows it.
    pub name: String,
}

/// One way to restock a slot: a shop's offer, fulfilled one way.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The shop's id.
    pub shop: ShopId,
    /// The product.
    pub offer: Offer,
    /// How it comes; `None` where the shop states no options (it delivers).
    pub fulfilment: Option<FulfilmentOption>,
    /// How long it takes, learned or as the shop states.
    pub lead: LeadTime,
}

impl Candidate {
    /// Whether the household collects it.
    pub fn is_pickup(&self) -> bool {
        self.fulfilment
            .as_ref()
            .is_some_and(|f| matches!(f.method, Fulfilment::Pickup(_)))
    }

    /// The key lead times are learned under: shop and fulfilment method.
    pub fn lead_key(&self) -> String {
        lead_key(&self.shop, self.fulfilment.as_ref())
    }

    /// Cost of one unit (g, ml, piece) in minor currency units, the fulfilment fee spread
    /// over `packs`.
    pub fn cost_per_unit(&self, packs: u32) -> f64 {
        let packs = f64::from(packs.max(1));
        let fee = self
            .fulfilment
            .as_ref()
            .and_then(|f| f.price)
            .map_or(0.0, |p| p.minor as f64);
        (self.offer.price.minor as f64 * packs + fee) / (packs * self.offer.pack_size)
    }
}

/// The household's currency, in which its budget and approval limit are written: the first
/// shop's (by its catalog), euros before any catalog is known.
pub fn home_currency(
    shops: &[ShopInfo],
    catalogs: &BTreeMap<ShopId, Catalog>,
) -> replenish_commerce::Currency {
    shops
        .iter()
        .filter_map(|s| catalogs.get(&s.id))
        .find_map(|c| c.offers.first())
        .map_or(replenish_commerce::Currency::EUR, |o| o.price.currency)
}

/// The key of learned lead times for `shop` fulfilling by `fulfilment`.
pub fn lead_key(shop: &str, fulfilment: Option<&FulfilmentOption>) -> String {
    format!(
        "{shop}/{}",
        fulfilment.map_or("delivery", |f| f.id.as_str())
    )
}

/// The lead time a fulfilment option states, as a prior: the middle of its range, and for a
/// pickup at least a day, however fast the shop is: someone has to go and collect it, and an
/// order for today would send them at once.
pub fn stated_lead_ms(fulfilment: &FulfilmentOption) -> Option<UnixMs> {
    let (min, max) = fulfilment.lead_days?;
    let middle = (u64::from(min) + u64::from(max)) * DAY_MS / 2;
    let least = match fulfilment.method {
        Fulfilment::Pickup(_) => DAY_MS,
        Fulfilment::Delivery => 2 * 3_600_000,
    };
    Some(middle.max(least))
}

/// Every candidate for a consumable (in `unit`) across `shops` (in their listed order):
/// offers in stock, times each fulfilment option `pickup` allows.
pub fn candidates(
    shops: &[ShopInfo],
    catalogs: &BTreeMap<ShopId, Catalog>,
    consumable: &str,
    unit: replenish_protocol::Unit,
    pickup: PickupPreference,
    lead_of: impl Fn(&str, Option<&FulfilmentOption>) -> LeadTime,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for shop in shops {
        let Some(catalog) = catalogs.get(&shop.id) else {
            continue;
        };
        let options: Vec<Option<&FulfilmentOption>> = if catalog.fulfilment.is_empty() {
            vec![None]
        } else {
            catalog
                .fulfilment
                .iter()
                .filter(|f| {
                    pickup != PickupPreference::Never || !matches!(f.method, Fulfilment::Pickup(_))
                })
                .map(Some)
                .collect()
        };
        for offer in catalog.offers.iter().filter(|o| {
            o.consumable == consumable && o.unit == unit && o.pack_size > 0.0 && o.stock > 0
        }) {
            for fulfilment in &options {
                out.push(Candidate {
                    shop: shop.id.clone(),
                    offer: offer.clone(),
                    fulfilment: fulfilment.cloned(),
                    lead: lead_of(&shop.id, *fulfilment),
                });
            }
        }
    }
    out
}

/// What ordering at one shop would bring along: the other lines that would join the order there
/// and what they save against ordering each on its own (minor currency units).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bundling {
    /// Lines that would join.
    pub lines: usize,
    /// What they save together (never negative: a line that would cost more does not join).
    pub saving: f64,
}

/// [`Bundling`] per shop id; a shop not in it brings nothing along.
pub type Bundles = BTreeMap<ShopId, Bundling>;

/// What [`choose`] picked, and why in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Index into the candidates given.
    pub index: usize,
    /// What to order from it.
    pub decision: ReorderDecision,
    /// Whether it arrives before the slot may run out.
    pub in_time: bool,
    /// The explanation's shop part, for the order's reason.
    pub why: String,
}

/// Chooses among `candidates` (in shop order, each with the policy's decision if it would
/// order now) by the rule in the module header. `deadline`: when the slot may run out (the
/// early end of its forecast), if within the forecast's horizon.
///
/// A candidate with a long lead time wants ordering first; the others are compared with it
/// for the same amount. `None`: nothing wants ordering yet, or the best candidate that still
/// arrives in time does not yet (wait for it: ordering later holds less stock). `bundles`: what
/// an order at each shop would bring along.
///
/// `usable`: how much of the consumable the household is expected to use within a year beyond
/// what it has, in its unit (`None`: no limit). Units an order brings beyond that earn
/// nothing, so a pack of three filters costs its price over the filters a year will use, and
/// wins over a single one only when it is cheaper per filter actually used.
pub fn choose(
    candidates: &[(Candidate, Option<ReorderDecision>)],
    shops: &[ShopInfo],
    pickup: PickupPreference,
    now: UnixMs,
    deadline: Option<UnixMs>,
    bundles: &Bundles,
    usable: Option<f64>,
) -> Option<Choice> {
    // The amount needed: the most any candidate that wants ordering asks for.
    let (wanted, trigger) = candidates
        .iter()
        .filter_map(|(c, d)| {
            d.as_ref()
                .map(|d| (f64::from(d.packs) * c.offer.pack_size, d))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let packs_of = |i: usize| -> u32 {
        let (candidate, decision) = &candidates[i];
        match decision {
            Some(d) => d.packs,
            None => ((wanted / candidate.offer.pack_size).ceil() as u32).max(1),
        }
    };
    let arrival = |i: usize| now.saturating_add(candidates[i].0.lead.p90());
    let in_time = |i: usize| deadline.is_none_or(|d| arrival(i) <= d);
    let mut pool: Vec<usize> = (0..candidates.len()).filter(|&i| in_time(i)).collect();
    let on_time = !pool.is_empty();
    if !on_time {
        // Nothing can arrive in time: the soonest (the cheapest of those equally soon).
        let soonest = (0..candidates.len()).map(arrival).min()?;
        pool = (0..candidates.len())
            .filter(|&i| arrival(i) == soonest)
            .collect();
    }
    if pickup == PickupPreference::Prefer && pool.iter().any(|&i| candidates[i].0.is_pickup()) {
        pool.retain(|&i| candidates[i].0.is_pickup());
    }
    let bundle = |i: usize| {
        bundles
            .get(&candidates[i].0.shop)
            .copied()
            .unwrap_or_default()
    };
    let cost = |i: usize| {
        let units = f64::from(packs_of(i).max(1)) * candidates[i].0.offer.pack_size;
        let used = usable.map_or(units, |u| units.min(u.max(f64::MIN_POSITIVE)));
        candidates[i].0.cost_per_unit(packs_of(i)) * units / used
    };
    // What the order costs per unit of this slot once the lines it brings along have saved.
    let net_cost = |i: usize| {
        let units = f64::from(packs_of(i).max(1)) * candidates[i].0.offer.pack_size;
        cost(i) - bundle(i).saving / units
    };
    let index = pool.into_iter().min_by(|&a, &b| {
        cmp_money(net_cost(a), net_cost(b))
            .then(bundle(b).lines.cmp(&bundle(a).lines))
            .then(arrival(a).cmp(&arrival(b)))
            .then(a.cmp(&b))
    })?;
    let (candidate, decision) = &candidates[index];
    let decision = match decision {
        Some(decision) => decision.clone(),
        // The best in time does not want ordering yet: wait for it.
        None if on_time => return None,
        None => ReorderDecision {
            packs: packs_of(index),
            reason: trigger.reason.clone(),
        },
    };
    let shop_name = shops
        .iter()
        .find(|s| s.id == candidate.shop)
        .map_or(candidate.shop.as_str(), |s| s.name.as_str());
    let how = match &candidate.fulfilment {
        Some(FulfilmentOption {
            method: Fulfilment::Pickup(point),
            ..
        }) => format!("to collect at {}", point.name),
        Some(option) => option.name.to_lowercase(),
        None => "delivered".to_string(),
    };
    let days = candidate.lead.p90() as f64 / DAY_MS as f64;
    // Per kilogram or litre: a gram of beans costs a fraction of a cent.
    let (per, scale) = match candidate.offer.unit {
        replenish_protocol::Unit::G => ("kg", 1000.0),
        replenish_protocol::Unit::Ml => ("l", 1000.0),
        replenish_protocol::Unit::Count => ("piece", 1.0),
    };
    let cost_text = format!("{:.2} per {per} with fees", cost(index) * scale / 100.0);
    let along = bundle(index);
    let together = match along.lines {
        0 => String::new(),
        n => format!(
            "; {n} other item{} join{} this order{}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            if along.saving >= 0.5 {
                format!(", saving {:.2}", along.saving / 100.0)
            } else {
                String::new()
            }
        ),
    };
    let why = if on_time {
        let options = (0..candidates.len()).filter(|&i| in_time(i)).count();
        let cheapest = if options > 1 {
            format!(", the lowest of {options} options that arrive in time")
        } else {
            String::new()
        };
        format!(
            "from {shop_name}, {how}: arrives within {days:.1} days, before it may run out; {cost_text}{cheapest}{together}"
        )
    } else {
        format!(
            "from {shop_name}, {how}: no option arrives before it may run out; this one is the soonest ({days:.1} days); {cost_text}{together}"
        )
    };
    Some(Choice {
        index,
        decision,
        in_time: on_time,
        why,
    })
}

/// Compares two costs, equal when they differ only by rounding (a saving spread over units).
fn cmp_money(a: f64, b: f64) -> std::cmp::Ordering {
    if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0) {
        std::cmp::Ordering::Equal
    } else {
        a.total_cmp(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_ids_are_checked_and_old_orders_without_one_still_read() {
        for good in ["shop", "shop-a", "Big_Box2"] {
            let id = ShopId::parse(good).unwrap();
            assert_eq!(id, good);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<ShopId>(&json).unwrap(), id);
        }
        for bad in ["", "shop a", "shop/a", "ä", &"x".repeat(65)] {
            assert!(ShopId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(serde_json::from_str::<ShopId>("\"shop a\"").is_err());
        // Orders stored before agents had several shops: the engine gives them its first.
        let legacy: ShopId = serde_json::from_str("\"\"").unwrap();
        assert!(legacy.is_empty());
    }
    use replenish_commerce::{Currency, Money};
    use replenish_protocol::Unit;

    fn offer(sku: &str, pack: f64, cents: u64) -> Offer {
        Offer {
            sku: sku.into(),
            name: sku.into(),
            consumable: "coffee_beans".into(),
            pack_size: pack,
            unit: Unit::G,
            price: Money::new(cents, Currency::EUR),
            stock: 10,
        }
    }

    use crate::engine::tests::fulfilment_option as option;

    fn shops() -> Vec<ShopInfo> {
        ["a", "b"]
            .map(|id| ShopInfo {
                id: id.into(),
                name: format!("Shop {}", id.to_uppercase()),
            })
            .to_vec()
    }

    fn lead(days: f64) -> LeadTime {
        LeadTime::prior((days * DAY_MS as f64) as UnixMs)
    }

    fn candidate(
        shop: &str,
        offer: Offer,
        fulfilment: Option<FulfilmentOption>,
        days: f64,
    ) -> Candidate {
        Candidate {
            shop: shop.into(),
            offer,
            fulfilment,
            lead: lead(days),
        }
    }

    fn decided(c: Candidate, packs: u32) -> (Candidate, Option<ReorderDecision>) {
        (
            c,
            Some(ReorderDecision {
                packs,
                reason: "running low".into(),
            }),
        )
    }

    fn waiting(c: Candidate) -> (Candidate, Option<ReorderDecision>) {
        (c, None)
    }

    /// `choose` among `list` at time 0 for the two shops, nothing bundled, no cap on use.
    fn pick(
        list: &[(Candidate, Option<ReorderDecision>)],
        pickup: PickupPreference,
        deadline: Option<UnixMs>,
    ) -> Option<Choice> {
        choose(list, &shops(), pickup, 0, deadline, &Bundles::new(), None)
    }

    #[test]
    fn what_an_order_brings_along_counts_then_the_fewest_orders_win() {
        let a = candidate("a", offer("a-500", 500.0, 900), None, 1.0);
        let b = candidate("b", offer("b-500", 500.0, 950), None, 1.0);
        let list = vec![decided(a.clone(), 2), decided(b.clone(), 2)];
        let choose_with = |bundles: &Bundles| {
            choose(
                &list,
                &shops(),
                PickupPreference::Never,
                0,
                None,
                bundles,
                None,
            )
            .unwrap()
        };
        // B costs 100 more for two packs; lines saving 99 there are not enough, 101 are.
        let at_b = |lines, saving| Bundles::from([("b".into(), Bundling { lines, saving })]);
        assert_eq!(choose_with(&at_b(1, 99.0)).index, 0);
        let choice = choose_with(&at_b(1, 101.0));
        assert_eq!(choice.index, 1);
        assert!(
            choice
                .why
                .contains("1 other item joins this order, saving 1.01"),
            "{}",
            choice.why
        );
        // At the same net cost the shop that makes fewer orders wins, whatever the list order.
        let mut bundles = at_b(2, 100.0);
        bundles.insert(
            "a".into(),
            Bundling {
                lines: 1,
                saving: 0.0,
            },
        );
        assert_eq!(choose_with(&bundles).index, 1);
        bundles.insert(
            "a".into(),
            Bundling {
                lines: 2,
                saving: 0.0,
            },
        );
        assert_eq!(choose_with(&bundles).index, 0);
    }

    #[test]
    fn the_cheapest_per_unit_with_fees_wins_among_those_in_time() {
        // A: 899 per 500 g + 495 delivery; B: 949 per 500 g, free pickup. 2 packs:
        // A = (1798 + 495) / 1000 = 2.293 c/g; B = 1898 / 1000 = 1.898 c/g.
        let home = candidate(
            "a",
            offer("a-500", 500.0, 899),
            Some(option("home", false, 495, (1, 2))),
            2.0,
        );
        let pickup = candidate(
            "b",
            offer("b-500", 500.0, 949),
            Some(option("pickup", true, 0, (0, 1))),
            1.0,
        );
        let list = vec![decided(home.clone(), 2), decided(pickup.clone(), 2)];
        let choice = pick(&list, PickupPreference::WhenSooner, Some(5 * DAY_MS)).unwrap();
        assert_eq!((choice.index, choice.decision.packs), (1, 2));
        assert!(choice.in_time);
        assert!(
            choice.why.contains("Shop B") && choice.why.contains("to collect"),
            "{}",
            choice.why
        );
        // Per kilogram: a gram's price would read 0.02.
        assert!(
            choice.why.contains("18.98 per kg with fees"),
            "{}",
            choice.why
        );
        // The pickup does not want ordering yet (its lead is short): wait for it.
        let list = vec![decided(home.clone(), 2), waiting(pickup)];
        assert_eq!(
            pick(&list, PickupPreference::WhenSooner, Some(5 * DAY_MS)),
            None
        );
        // Nothing wants ordering: nothing chosen.
        assert_eq!(
            pick(&[waiting(home)], PickupPreference::WhenSooner, None),
            None
        );
    }

    #[test]
    fn a_cheaper_shop_that_arrives_too_late_loses_and_without_any_in_time_the_soonest_wins() {
        let slow_cheap = candidate("a", offer("a-500", 500.0, 500), None, 6.0);
        let fast_dear = candidate("b", offer("b-500", 500.0, 900), None, 1.0);
        let list = vec![
            decided(slow_cheap.clone(), 1),
            decided(fast_dear.clone(), 1),
        ];
        let choice = pick(&list, PickupPreference::WhenSooner, Some(3 * DAY_MS)).unwrap();
        assert_eq!(
            choice.index, 1,
            "A is cheaper but arrives after the slot may run out"
        );
        // Only the slow one wants ordering, and the fast one is still in time: wait.
        let list = vec![decided(slow_cheap.clone(), 1), waiting(fast_dear.clone())];
        assert_eq!(
            pick(&list, PickupPreference::WhenSooner, Some(3 * DAY_MS)),
            None
        );
        // Nothing can arrive in time: the soonest, now, for the amount wanted.
        let late = pick(&list, PickupPreference::WhenSooner, Some(DAY_MS / 2)).unwrap();
        assert_eq!((late.index, late.decision.packs), (1, 1));
        assert!(!late.in_time);
        assert!(late.why.contains("soonest"), "{}", late.why);
        // Equally soon and all late: the cheaper.
        let same_speed = vec![
            decided(candidate("a", offer("a-500", 500.0, 999), None, 2.0), 1),
            decided(candidate("b", offer("b-500", 500.0, 799), None, 2.0), 1),
        ];
        let late = pick(&same_speed, PickupPreference::Never, Some(DAY_MS)).unwrap();
        assert_eq!((late.index, late.in_time), (1, false));
        // No deadline within the horizon: everything is in time; the cheapest wins.
        let list = vec![decided(slow_cheap, 1), decided(fast_dear, 1)];
        assert_eq!(
            pick(&list, PickupPreference::WhenSooner, None)
                .unwrap()
                .index,
            0
        );
    }

    #[test]
    fn prefer_pickup_takes_a_dearer_pickup_that_arrives_in_time() {
        let list = vec![
            decided(
                candidate(
                    "a",
                    offer("a-500", 500.0, 500),
                    Some(option("home", false, 0, (1, 1))),
                    1.0,
                ),
                1,
            ),
            decided(
                candidate(
                    "b",
                    offer("b-500", 500.0, 900),
                    Some(option("pickup", true, 0, (0, 0))),
                    0.2,
                ),
                1,
            ),
        ];
        assert_eq!(
            pick(&list, PickupPreference::WhenSooner, None)
                .unwrap()
                .index,
            0
        );
        assert_eq!(
            pick(&list, PickupPreference::Prefer, None).unwrap().index,
            1
        );
    }

    #[test]
    fn other_pack_sizes_are_compared_for_the_amount_wanted() {
        // 2 × 500 g wanted; the 1 kg bag (1500 for 1000 g) beats 2 × 500 g at 899.
        let list = vec![
            decided(candidate("a", offer("a-500", 500.0, 899), None, 1.0), 2),
            waiting(candidate("b", offer("b-1kg", 1000.0, 1500), None, 1.0)),
        ];
        // The 1 kg bag does not want ordering yet but is in time and cheaper: wait for it.
        assert_eq!(
            pick(&list, PickupPreference::WhenSooner, Some(5 * DAY_MS)),
            None
        );
    }

    #[test]
    fn candidates_skip_out_of_stock_offers_and_pickups_a_household_never_wants() {
        let mut catalogs = BTreeMap::new();
        let mut out = offer("a-1kg", 1000.0, 1500);
        out.stock = 0;
        catalogs.insert(
            "a".into(),
            Catalog {
                offers: vec![offer("a-500", 500.0, 899), out],
                fulfilment: vec![
                    option("home", false, 495, (1, 2)),
                    option("pickup", true, 0, (0, 0)),
                ],
            },
        );
        catalogs.insert(
            "b".into(),
            Catalog {
                offers: vec![offer("b-500", 500.0, 949)],
                fulfilment: vec![],
            },
        );
        let all = candidates(
            &shops(),
            &catalogs,
            "coffee_beans",
            Unit::G,
            PickupPreference::WhenSooner,
            |_, _| lead(2.0),
        );
        let names: Vec<String> = all
            .iter()
            .map(|c| c.lead_key() + ":" + &c.offer.sku)
            .collect();
        assert_eq!(
            names,
            ["a/home:a-500", "a/pickup:a-500", "b/delivery:b-500"]
        );
        let never = candidates(
            &shops(),
            &catalogs,
            "coffee_beans",
            Unit::G,
            PickupPreference::Never,
            |_, _| lead(2.0),
        );
        assert_eq!(never.len(), 2);
        assert!(
            candidates(
                &shops(),
                &catalogs,
                "milk",
                Unit::Ml,
                PickupPreference::Prefer,
                |_, _| lead(2.0)
            )
            .is_empty()
        );
    }

    #[test]
    fn stated_lead_times_are_the_middle_of_the_range_and_a_pickup_takes_a_day_at_least() {
        assert_eq!(
            stated_lead_ms(&option("x", false, 0, (1, 3))),
            Some(2 * DAY_MS)
        );
        assert_eq!(
            stated_lead_ms(&option("x", false, 0, (0, 0))),
            Some(2 * 3_600_000)
        );
        assert_eq!(stated_lead_ms(&option("x", true, 0, (0, 0))), Some(DAY_MS));
    }
}
