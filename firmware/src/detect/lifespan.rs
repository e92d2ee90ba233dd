//! Lifespan slots: a consumable that wears out with use or with time, whichever comes first
//! (a water filter good for 150 litres or 60 days).

use replenish_protocol::{Id, ReportBody};

/// Tracks what is left of a consumable's life and produces level and refill reports.
///
/// What is left is expressed in the slot's unit as a share of the rated amount: a filter rated
/// 150 000 ml that has filtered 30 000 ml has 120 000 ml left, unless its days run out sooner;
/// then the days decide (halfway through its 60 days it has at most 75 000 ml left).
///
/// ```
/// use replenish_firmware::LifespanTracker;
/// use replenish_protocol::{Id, ReportBody};
///
/// const DAY: u64 = 86_400_000;
/// let mut filter = LifespanTracker::new(Id::new("filter").unwrap(), 150_000.0, 60 * DAY, 0);
/// filter.record_use(30_000.0);
/// assert_eq!(filter.remaining(DAY), 120_000.0);
/// assert_eq!(filter.remaining(30 * DAY), 75_000.0);
/// assert!(matches!(filter.replaced(30 * DAY), ReportBody::Refill { after: 150_000.0, .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LifespanTracker {
    slot: Id,
    rated_amount: f32,
    rated_ms: u64,
    installed_at_ms: u64,
    used: f32,
    reported: Option<f32>,
    report_step: f32,
}

impl LifespanTracker {
    /// A new consumable rated for `rated_amount` (slot unit) or `rated_ms`, installed at
    /// `installed_at_ms`. Reports when what is left moved by 1% of the rated amount.
    pub fn new(slot: Id, rated_amount: f32, rated_ms: u64, installed_at_ms: u64) -> Self {
        let rated_amount = if rated_amount.is_finite() {
            rated_amount.max(0.0)
        } else {
            0.0
        };
        Self {
            slot,
            rated_amount,
            rated_ms: rated_ms.max(1),
            installed_at_ms,
            used: 0.0,
            reported: None,
            report_step: rated_amount * 0.01,
        }
    }

    /// The slot's id.
    pub fn slot(&self) -> &Id {
        &self.slot
    }

    /// Counts use (millilitres through a filter, from the flow meter). Negative or non-finite
    /// amounts are ignored.
    pub fn record_use(&mut self, amount: f32) {
        if amount.is_finite() && amount > 0.0 {
            self.used += amount;
        }
    }

    /// What is left at `now_ms`, in the slot's unit: the lesser of the use left and the time
    /// left (as a share of the rated amount), never below zero.
    pub fn remaining(&self, now_ms: u64) -> f32 {
        let by_use = self.rated_amount - self.used;
        let elapsed = now_ms.saturating_sub(self.installed_at_ms) as f32;
        let by_time = self.rated_amount * (1.0 - elapsed / self.rated_ms as f32);
        by_use.min(by_time).max(0.0)
    }

    /// A level report when what is left moved by at least the report step since the last one
    /// (or none was sent yet); `None` otherwise.
    pub fn poll(&mut self, now_ms: u64) -> Option<ReportBody> {
        let remaining = self.remaining(now_ms);
        let moved = self
            .reported
            .is_none_or(|last| (last - remaining).abs() >= self.report_step);
        if !moved {
            return None;
        }
        self.reported = Some(remaining);
        Some(ReportBody::Level {
            slot: self.slot.clone(),
            remaining,
        })
    }

    /// A new one was fitted at `now_ms`: life starts over, reported as a refill.
    pub fn replaced(&mut self, now_ms: u64) -> ReportBody {
        let before = self.remaining(now_ms);
        self.used = 0.0;
        self.installed_at_ms = now_ms;
        self.reported = Some(self.rated_amount);
        ReportBody::Refill {
            slot: self.slot.clone(),
            before,
            after: self.rated_amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn filter() -> LifespanTracker {
        LifespanTracker::new(Id::new("filter").unwrap(), 150_000.0, 60 * DAY, 1_000)
    }

    #[test]
    fn use_or_time_whichever_runs_out_first() {
        let mut f = filter();
        f.record_use(100_000.0);
        assert_eq!(f.remaining(1_000 + DAY), 50_000.0, "use decides");
        let idle = filter();
        assert_eq!(idle.remaining(1_000 + 45 * DAY), 37_500.0, "time decides");
        assert_eq!(idle.remaining(1_000 + 90 * DAY), 0.0, "never negative");
    }

    #[test]
    fn reports_only_when_life_moved_by_a_percent() {
        let mut f = filter();
        assert!(
            matches!(f.poll(1_000), Some(ReportBody::Level { remaining, .. }) if remaining == 150_000.0)
        );
        f.record_use(1_000.0);
        assert_eq!(f.poll(1_000), None, "0.7% is not worth a report");
        f.record_use(600.0);
        assert!(f.poll(1_000).is_some());
    }

    #[test]
    fn bad_amounts_are_ignored_and_replacement_starts_over() {
        let mut f = filter();
        f.record_use(f32::NAN);
        f.record_use(-5.0);
        assert_eq!(f.remaining(1_000), 150_000.0);
        f.record_use(150_000.0);
        let report = f.replaced(1_000 + DAY);
        assert!(
            matches!(report, ReportBody::Refill { before, after, .. } if before == 0.0 && after == 150_000.0)
        );
        assert_eq!(f.remaining(1_000 + DAY), 150_000.0);
    }
}
