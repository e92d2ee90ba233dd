//! Faults the sandbox shop injects (`replenish-sim shop --faults SPEC --seed N`), so that an
//! agent can be tested against a shop that fails the ways real ones do. Seeded: the same spec
//! and seed give the same faults for the same sequence of requests.
//!
//! A spec is comma-separated `kind=share` pairs, or `all=share` to spread one share evenly
//! over every kind: `5xx=0.1,timeout=0.05,slow_ms=1500`. Kinds:
//!
//! | kind | on | what happens |
//! | --- | --- | --- |
//! | `5xx` | every request | `503`, nothing done |
//! | `slow` | every request | answered after `slow_ms` (default 1500 ms) |
//! | `out_of_stock` | a new order | `422` insufficient stock, nothing done |
//! | `timeout` | a new or replayed order | the order is taken, the answer never comes (the client times out) |
//! | `reset` | a new or replayed order | the order is taken, the connection is cut mid-answer |
//! | `cancel` | a new order | taken and answered, then cancelled by the shop |
//! | `substitute` | a new order | taken with another product of the same consumable for its first line (if in stock) |
//! | `duplicate_delivery` | reading a delivered order | the delivery is reported again, later |

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `503`, nothing done.
    #[serde(rename = "5xx")]
    ServerError,
    /// Answered late.
    Slow,
    /// `422` insufficient stock for a new order.
    OutOfStock,
    /// The order is taken; the answer never comes.
    Timeout,
    /// The order is taken; the connection is cut mid-answer.
    Reset,
    /// The order is taken and answered, then cancelled by the shop.
    Cancel,
    /// The order is taken with another product for its first line.
    Substitute,
    /// A delivered order's delivery is reported again.
    DuplicateDelivery,
}

impl FaultKind {
    /// Every kind, in spec order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::ServerError,
        FaultKind::Slow,
        FaultKind::OutOfStock,
        FaultKind::Timeout,
        FaultKind::Reset,
        FaultKind::Cancel,
        FaultKind::Substitute,
        FaultKind::DuplicateDelivery,
    ];

    /// The name in specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerError => "5xx",
            FaultKind::Slow => "slow",
            FaultKind::OutOfStock => "out_of_stock",
            FaultKind::Timeout => "timeout",
            FaultKind::Reset => "reset",
            FaultKind::Cancel => "cancel",
            FaultKind::Substitute => "substitute",
            FaultKind::DuplicateDelivery => "duplicate_delivery",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Where a request is in the shop, for choosing which faults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Reading the catalog or orders (a delivered one: `delivered`).
    Read {
        /// Whether the order read is delivered.
        delivered: bool,
    },
    /// Placing an order (`replay`: its key was seen before).
    Place {
        /// Whether the key was seen before.
        replay: bool,
    },
}

/// What a spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Share of applicable requests that get each kind.
    pub shares: BTreeMap<FaultKind, f64>,
    /// How late a slow answer is.
    pub slow_ms: u64,
}

impl FaultSpec {
    /// Parses a spec (see the module header). The shares of the kinds that can hit one request
    /// must add up to at most 1.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut shares = BTreeMap::new();
        let mut slow_ms = 1500;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected kind=share"))?;
            if name == "slow_ms" {
                slow_ms = value
                    .parse()
                    .map_err(|_| format!("slow_ms={value:?}: expected milliseconds"))?;
                continue;
            }
            let share: f64 = value
                .parse()
                .ok()
                .filter(|s: &f64| (0.0..=1.0).contains(s))
                .ok_or_else(|| format!("{part:?}: the share must be between 0 and 1"))?;
            if name == "all" {
                for kind in FaultKind::ALL {
                    shares.insert(kind, share / FaultKind::ALL.len() as f64);
                }
                continue;
            }
            let kind = FaultKind::parse(name).ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "{name:?} is no fault kind; kinds: {}, all",
                    names.join(", ")
                )
            })?;
            shares.insert(kind, share);
        }
        let spec = Self { shares, slow_ms };
        for call in [
            Call::Place { replay: false },
            Call::Place { replay: true },
            Call::Read { delivered: true },
        ] {
            let total: f64 = spec.applicable(call).map(|(_, s)| s).sum();
            if total > 1.0 + 1e-9 {
                return Err(format!(
                    "the shares that can hit one request add up to {total:.2}, more than 1"
                ));
            }
        }
        Ok(spec)
    }

    /// The shares that apply to `call`, in spec order.
    fn applicable(&self, call: Call) -> impl Iterator<Item = (FaultKind, f64)> + '_ {
        self.shares
            .iter()
            .map(|(k, s)| (*k, *s))
            .filter(move |(kind, _)| match kind {
                FaultKind::ServerError | FaultKind::Slow => true,
                FaultKind::OutOfStock | FaultKind::Cancel | FaultKind::Substitute => {
                    call == Call::Place { replay: false }
                }
                FaultKind::Timeout | FaultKind::Reset => matches!(call, Call::Place { .. }),
                FaultKind::DuplicateDelivery => call == Call::Read { delivered: true },
            })
    }
}

/// The faults of a running shop: the spec, its random numbers and what was injected.
#[derive(Debug)]
pub struct Faults {
    spec: FaultSpec,
    rng: ChaCha8Rng,
    injected: BTreeMap<FaultKind, u64>,
}

impl Faults {
    /// Faults per `spec`, seeded.
    pub fn new(spec: FaultSpec, seed: u64) -> Self {
        Self {
            spec,
            rng: ChaCha8Rng::seed_from_u64(seed),
            injected: BTreeMap::new(),
        }
    }

    /// The fault for this request, if any (and counts it).
    pub fn draw(&mut self, call: Call) -> Option<FaultKind> {
        let roll: f64 = self.rng.random();
        let mut edge = 0.0;
        let chosen = self.spec.applicable(call).find_map(|(kind, share)| {
            edge += share;
            (roll < edge).then_some(kind)
        })?;
        *self.injected.entry(chosen).or_insert(0) += 1;
        Some(chosen)
    }

    /// How late a slow answer is.
    pub fn slow_ms(&self) -> u64 {
        self.spec.slow_ms
    }

    /// Faults injected so far, by kind name.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.injected.iter().map(|(k, n)| (k.name(), *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let spec = FaultSpec::parse("5xx=0.1, timeout=0.05,slow_ms=200").unwrap();
        assert_eq!(spec.shares[&FaultKind::ServerError], 0.1);
        assert_eq!(spec.slow_ms, 200);
        let all = FaultSpec::parse("all=0.35").unwrap();
        assert_eq!(all.shares.len(), 8);
        assert!((all.shares.values().sum::<f64>() - 0.35).abs() < 1e-9);
        assert!(FaultSpec::parse("fire=0.1").unwrap_err().contains("kinds:"));
        assert!(FaultSpec::parse("5xx=2").is_err());
        assert!(FaultSpec::parse("5xx").is_err());
        assert!(
            FaultSpec::parse("5xx=0.6,timeout=0.6")
                .unwrap_err()
                .contains("more than 1")
        );
    }

    #[test]
    fn faults_hit_at_their_share_only_where_they_apply_and_repeat_with_the_seed() {
        let spec = FaultSpec::parse("5xx=0.2,out_of_stock=0.1,duplicate_delivery=0.3").unwrap();
        let mut faults = Faults::new(spec.clone(), 7);
        let n = 20_000;
        for _ in 0..n {
            faults.draw(Call::Place { replay: true });
        }
        let injected = faults.injected();
        let server = injected["5xx"] as f64 / n as f64;
        assert!((server - 0.2).abs() < 0.02, "{server}");
        assert!(!injected.contains_key("out_of_stock"), "never on a replay");
        assert!(!injected.contains_key("duplicate_delivery"));
        let draws = |seed| {
            let mut f = Faults::new(spec.clone(), seed);
            (0..50)
                .map(|_| f.draw(Call::Place { replay: false }))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
    }
}
