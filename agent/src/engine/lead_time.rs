//! Delivery time, learned per product from delivered orders: a distribution, not a constant.

use serde::{Deserialize, Serialize};

use crate::clock::UnixMs;

/// Observed deliveries kept per product.
const KEEP: usize = 20;
/// Weight of the configured prior, in observations.
const PRIOR_WEIGHT: usize = 2;

/// What is known of one product's delivery time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadTime {
    /// The configured expectation, used before (and blended with) observations.
    pub prior_ms: UnixMs,
    /// Observed placement-to-delivery times, newest last.
    pub observed_ms: Vec<UnixMs>,
}

impl LeadTime {
    /// Only the prior.
    pub fn prior(prior_ms: UnixMs) -> Self {
        Self {
            prior_ms,
            observed_ms: Vec::new(),
        }
    }

    /// The same distribution with every time passed through `f`, which keeps their order (a
    /// pickup point's open time laid over its hours from a given instant).
    pub fn map(&self, f: impl Fn(UnixMs) -> UnixMs) -> Self {
        Self {
            prior_ms: f(self.prior_ms),
            observed_ms: self.observed_ms.iter().map(|&t| f(t)).collect(),
        }
    }

    /// Records a delivery that took `ms`.
    pub fn observe(&mut self, ms: UnixMs) {
        self.observed_ms.push(ms);
        if self.observed_ms.len() > KEEP {
            self.observed_ms.remove(0);
        }
    }

    /// The sample: observations plus the prior counted [`PRIOR_WEIGHT`] times, sorted.
    fn sample(&self) -> Vec<UnixMs> {
        let mut sample: Vec<UnixMs> = self.observed_ms.clone();
        sample.extend(std::iter::repeat_n(self.prior_ms, PRIOR_WEIGHT));
        sample.sort_unstable();
        sample
    }

    /// The `q` quantile (nearest rank).
    pub fn quantile(&self, q: f64) -> UnixMs {
        let sample = self.sample();
        let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
        sample[rank - 1]
    }

    /// 10th percentile.
    pub fn p10(&self) -> UnixMs {
        self.quantile(0.1)
    }

    /// Median.
    pub fn p50(&self) -> UnixMs {
        self.quantile(0.5)
    }

    /// 90th percentile.
    pub fn p90(&self) -> UnixMs {
        self.quantile(0.9)
    }

    /// The distribution as weighted delivery times, (weight, time): every distinct time of the
    /// sample (observations and the prior) with its share, shortest first.
    pub fn scenarios(&self) -> Vec<(f64, UnixMs)> {
        let sample = self.sample();
        let share = 1.0 / sample.len() as f64;
        let mut out: Vec<(f64, UnixMs)> = Vec::new();
        for t in sample {
            match out.last_mut() {
                Some((weight, last)) if *last == t => *weight += share,
                _ => out.push((share, t)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;

    #[test]
    fn the_prior_gives_way_to_observations() {
        let mut lead = LeadTime::prior(2 * DAY_MS);
        assert_eq!(
            (lead.p10(), lead.p50(), lead.p90()),
            (2 * DAY_MS, 2 * DAY_MS, 2 * DAY_MS)
        );
        for _ in 0..8 {
            lead.observe(5 * DAY_MS);
        }
        assert_eq!(lead.p50(), 5 * DAY_MS);
        assert_eq!(lead.p10(), 2 * DAY_MS, "the prior still widens the low end");
    }

    #[test]
    fn spread_shows_in_the_quantiles() {
        let mut lead = LeadTime::prior(2 * DAY_MS);
        for d in [1, 2, 2, 3, 4, 6, 2, 3] {
            lead.observe(d * DAY_MS);
        }
        assert!(lead.p10() < lead.p50() && lead.p50() < lead.p90());
        assert!(lead.observed_ms.len() <= KEEP);
        // Ten in the sample (the prior twice): 1 once, 2 five times, 3 twice, 4 and 6 once.
        let days: Vec<(f64, u64)> = lead
            .scenarios()
            .into_iter()
            .map(|(w, t)| ((w * 10.0).round(), t / DAY_MS))
            .collect();
        assert_eq!(days, [(1.0, 1), (5.0, 2), (2.0, 3), (1.0, 4), (1.0, 6)]);
        let total: f64 = lead.scenarios().iter().map(|s| s.0).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mapping_the_times_maps_the_quantiles() {
        let mut lead = LeadTime::prior(DAY_MS);
        lead.observe(DAY_MS / 2);
        let waited = lead.map(|t| t + DAY_MS);
        assert_eq!(
            (waited.p10(), waited.p90()),
            (DAY_MS + DAY_MS / 2, 2 * DAY_MS)
        );
    }
}
