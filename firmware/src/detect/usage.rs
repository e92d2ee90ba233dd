//! Usage slots: the device knows what each use consumes (a brew, a wash, a dispense).

use replenish_protocol::{Id, ReportBody};

/// Counts uses of a usage slot and produces [`ReportBody::Usage`].
///
/// ```
/// use replenish_firmware::UsageCounter;
/// use replenish_protocol::{Id, ReportBody};
///
/// let mut beans = UsageCounter::new(Id::new("beans").unwrap(), 9.0);
/// let report = beans.record_use().unwrap();
/// assert!(matches!(report, ReportBody::Usage { amount: 9.0, uses: 1, .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct UsageCounter {
    slot: Id,
    per_use: f32,
    total_uses: u64,
    total_amount: f64,
}

impl UsageCounter {
    /// A counter for `slot` where one use consumes `per_use` (in the slot's unit).
    pub fn new(slot: Id, per_use: f32) -> Self {
        Self {
            slot,
            per_use,
            total_uses: 0,
            total_amount: 0.0,
        }
    }

    /// The slot's id.
    pub fn slot(&self) -> &Id {
        &self.slot
    }

    /// What one use consumes.
    pub fn per_use(&self) -> f32 {
        self.per_use
    }

    /// Changes what one use consumes (a stronger recipe).
    pub fn set_per_use(&mut self, per_use: f32) {
        self.per_use = per_use;
    }

    /// One use at the configured amount. `None` if that amount is not a finite, non-negative
    /// number.
    pub fn record_use(&mut self) -> Option<ReportBody> {
        self.record(1, self.per_use)
    }

    /// `uses` uses that together consumed `amount` (a measured dispense, several brews at once).
    /// `None`, and nothing counted, when `uses` is zero or `amount` is negative or not finite.
    pub fn record(&mut self, uses: u16, amount: f32) -> Option<ReportBody> {
        if uses == 0 || !amount.is_finite() || amount < 0.0 {
            return None;
        }
        self.total_uses += u64::from(uses);
        self.total_amount += f64::from(amount);
        Some(ReportBody::Usage {
            slot: self.slot.clone(),
            amount,
            uses,
        })
    }

    /// Uses counted since start.
    pub fn total_uses(&self) -> u64 {
        self.total_uses
    }

    /// Amount counted since start.
    pub fn total_amount(&self) -> f64 {
        self.total_amount
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_uses_and_amounts() {
        let slot = Id::new("pods").unwrap();
        let mut c = UsageCounter::new(slot.clone(), 1.0);
        assert_eq!(
            c.record_use(),
            Some(ReportBody::Usage {
                slot: slot.clone(),
                amount: 1.0,
                uses: 1
            })
        );
        assert_eq!(
            c.record(3, 3.0),
            Some(ReportBody::Usage {
                slot: slot.clone(),
                amount: 3.0,
                uses: 3
            })
        );
        assert_eq!(c.record(0, 1.0), None);
        assert_eq!(c.record(1, -1.0), None);
        assert_eq!(c.record(1, f32::NAN), None);
        c.set_per_use(f32::INFINITY);
        assert_eq!(c.record_use(), None);
        assert_eq!((c.total_uses(), c.total_amount()), (4, 4.0));
        c.set_per_use(2.0);
        assert_eq!(c.per_use(), 2.0);
        assert_eq!(c.slot(), &slot);
    }
}
