//! A household's appliances without a network: the household acts, the scenario's events
//! happen, the sensors and firmware run, and what the appliances would publish is handed to
//! the caller. The loop `bench appliances` times and the scenario tests watch.

use replenish_agent::clock::UnixMs;
use replenish_firmware::runtime::Outgoing;

use crate::appliance::VirtualDevice;
use crate::devices::{Stocked, act};
use crate::household::{Planned, Schedule};
use crate::loadcell::Fidelity;
use crate::scenario::HouseholdScript;

/// One household's appliances, stepped by the caller.
pub struct HeadlessHome {
    /// What happens to it.
    pub script: HouseholdScript,
    schedule: Schedule,
    /// Its appliances, in the scenario's order.
    pub devices: Vec<VirtualDevice>,
    /// Refills by hand per appliance.
    pub refills: Vec<u64>,
}

impl HeadlessHome {
    /// The household of `script` with `seed`, its appliances connected at `start`, their load
    /// cells read as `fidelity` says.
    pub fn new(
        script: HouseholdScript,
        seed: u64,
        start: UnixMs,
        fidelity: Fidelity,
    ) -> anyhow::Result<Self> {
        let mut devices = script.devices(seed, start, fidelity)?;
        for device in &mut devices {
            device.link(true, true, start);
        }
        Ok(Self {
            schedule: script.schedule(seed, start),
            refills: vec![0; devices.len()],
            devices,
            script,
        })
    }

    /// Moves from `since` to `now`: the household's actions due by then, the scenario's
    /// conditions at `now`, the sensors; `sent(appliance, message, payload)` sees each message
    /// an appliance sends (an appliance offline keeps them). Returns the actions carried out.
    pub fn step(
        &mut self,
        since: UnixMs,
        now: UnixMs,
        mut sent: impl FnMut(usize, &Outgoing, &[u8]),
    ) -> anyhow::Result<Vec<Planned>> {
        let due = self.schedule.due(now);
        let mut stocked: Vec<Stocked<'_>> = self
            .devices
            .iter_mut()
            .zip(&mut self.refills)
            .map(|(device, refills)| Stocked { device, refills })
            .collect();
        for planned in &due {
            act(planned.clone(), &mut stocked);
        }
        for (n, device) in self.devices.iter_mut().enumerate() {
            self.script.apply(device, since, now)?;
            device.link(true, false, now);
            device.sample(now);
            while let Some((out, payload)) = device.next_outgoing()? {
                sent(n, &out, &payload);
                device.confirm_sent(&out);
            }
        }
        Ok(due)
    }
}
