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

    /// Three weighted delivery times that stand for the distribution: (weight, time).
    pub fn scenarios(&self) -> [(f64, UnixMs); 3] {
        [(0.25, self.p10()), (0.5, self.p50()), (0.25, self.p90())]
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
    }
}
