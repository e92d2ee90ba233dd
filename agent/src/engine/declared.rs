//! What is declared about how a slot is used, before the household's own data says more: days
//! between uses, or one use per so much of another slot. The household's config for the
//! consumable comes first; otherwise what the device's birth declares for the slot
//! (`usage`, docs/protocol.md).

use replenish_protocol::{DeviceId, DriverMeasure, Id, SlotSpec, SlotUse};

use super::Engine;
use super::forecast::linked::Measure;
use super::forecast::sparse::UsePrior;
use super::inventory::DeviceState;

/// Whose consumption drives a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver<'a> {
    /// The slot of the same device holding this consumable (the household's config).
    Consumable(&'a str),
    /// This slot of the same device (the device's birth).
    Slot(&'a Id),
}

/// One use of a slot per `every` of its driver's `measure`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Link<'a> {
    pub every: f64,
    pub measure: Measure,
    pub driver: Driver<'a>,
}

impl Driver<'_> {
    /// Whether the slot `spec` is this driver.
    pub fn is(&self, spec: &SlotSpec) -> bool {
        match self {
            Driver::Consumable(consumable) => spec.consumable.as_str() == *consumable,
            Driver::Slot(slot) => spec.id == **slot,
        }
    }
}

impl Engine {
    /// The declared link of slot `spec` on `device`, if any.
    pub(super) fn link_of<'a>(
        &'a self,
        device: Option<&'a DeviceState>,
        spec: &SlotSpec,
    ) -> Option<Link<'a>> {
        if let Some(link) = self
            .config
            .consumables
            .get(spec.consumable.as_str())
            .and_then(|c| c.driven_by.as_ref())
        {
            return Some(Link {
                every: link.every,
                measure: link.measure,
                driver: Driver::Consumable(&link.consumable),
            });
        }
        let per = declared_by_device(device?, spec)?.per.as_ref()?;
        Some(Link {
            every: f64::from(per.every),
            measure: match per.counts {
                DriverMeasure::Amount => Measure::Amount,
                DriverMeasure::Uses => Measure::Uses,
            },
            driver: Driver::Slot(&per.slot),
        })
    }

    /// The declared days between uses of slot `spec` on `device`, if any.
    pub(super) fn prior_of(
        &self,
        device: Option<&DeviceState>,
        spec: &SlotSpec,
    ) -> Option<UsePrior> {
        let every_days = match self
            .config
            .consumables
            .get(spec.consumable.as_str())
            .and_then(|c| c.use_every_days)
        {
            Some(days) => days,
            None => f64::from(declared_by_device(device?, spec)?.every_days?),
        };
        Some(UsePrior { every_days })
    }

    /// Whether anything at all declares a link, in config or in `device`'s birth: reports
    /// need not look for slots to drive otherwise.
    pub(super) fn may_drive(&self, device: &DeviceId) -> bool {
        self.config.any_driven()
            || self.devices.get(device).is_some_and(|d| {
                d.birth
                    .usage
                    .as_ref()
                    .is_some_and(|u| u.iter().any(|s| s.per.is_some()))
            })
    }
}

/// What `device`'s birth declares about slot `spec`.
fn declared_by_device<'a>(device: &'a DeviceState, spec: &SlotSpec) -> Option<&'a SlotUse> {
    device
        .birth
        .usage
        .as_ref()?
        .iter()
        .find(|u| u.slot == spec.id)
}
