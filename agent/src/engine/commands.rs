//! Commands to devices and their acks: sent with an id, matched when acknowledged, sent again
//! when not (the timeout doubling) and then given up, at most a few per device; `time_sync`
//! when a device's clock is off; commands an owner asks for.

use std::collections::HashMap;

use replenish_protocol::{Ack, Command, CommandBody, DeviceId};

use super::inventory::Presence;
use super::{Effect, Engine, EngineError, NoticeKind, notice};
use crate::clock::{HOUR_MS, UnixMs};

/// Commands waiting for their ack, per device, at most; older ones are given up first.
const MAX_PENDING_COMMANDS: usize = 4;

/// A command sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCommand {
    /// The command, with its id.
    pub command: Command,
    /// Who asked for it (for the notice of its outcome); `None` when the agent chose it.
    pub asked_by: Option<String>,
    /// When it was last sent.
    pub sent_at: UnixMs,
    /// How many times it was sent.
    pub attempts: u32,
}

/// Commands under way, per device (not stored: after a restart the agent sends what it
/// needs again).
#[derive(Debug, Default)]
pub(super) struct Commands {
    pending: HashMap<DeviceId, Vec<PendingCommand>>,
    next_id: Option<u32>,
    /// When `time_sync` was last sent to each device.
    synced_at: HashMap<DeviceId, UnixMs>,
}

impl Commands {
    /// A fresh command id. The first is taken from the clock, so ids of an agent that
    /// restarted do not repeat those of its previous run.
    fn next_id(&mut self, now: UnixMs) -> u32 {
        let id = self.next_id.unwrap_or((now / 1000) as u32);
        self.next_id = Some(id.wrapping_add(1));
        id
    }

    /// Drops what waits for a device that is gone.
    pub(super) fn forget(&mut self, device: &DeviceId) {
        self.pending.remove(device);
    }

    /// Commands waiting for an ack, for the API.
    pub(super) fn pending(&self, device: &DeviceId) -> &[PendingCommand] {
        self.pending.get(device).map_or(&[], Vec::as_slice)
    }
}

impl Engine {
    /// A device's clock is wrong or unset: send it the time, unless a sync is under way or was
    /// sent within the hour.
    pub(super) fn sync_clock(&mut self, device_id: &DeviceId, now: UnixMs, fx: &mut Vec<Effect>) {
        if !self.devices.contains_key(device_id) {
            return;
        }
        if self
            .commands
            .synced_at
            .get(device_id)
            .is_some_and(|&at| now < at + HOUR_MS)
        {
            return;
        }
        self.commands.synced_at.insert(device_id.clone(), now);
        self.send_command(
            device_id,
            CommandBody::TimeSync { unix_ms: now },
            None,
            now,
            fx,
        );
    }

    /// Sends a command and waits for its ack (see [`Engine::command_tick`]).
    pub(super) fn send_command(
        &mut self,
        device_id: &DeviceId,
        body: CommandBody,
        asked_by: Option<String>,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> u32 {
        let id = self.commands.next_id(now);
        let command = Command { id, body };
        let pending = self.commands.pending.entry(device_id.clone()).or_default();
        if pending.len() >= MAX_PENDING_COMMANDS {
            pending.remove(0);
        }
        pending.push(PendingCommand {
            command: command.clone(),
            asked_by,
            sent_at: now,
            attempts: 1,
        });
        fx.push(Effect::SendCommand {
            device: device_id.clone(),
            command,
        });
        id
    }

    /// A device's ack: matched to the command it answers, which is done (and told, if a
    /// person asked for it) or failed; an ack of nothing sent is refused.
    pub(super) fn ack(
        &mut self,
        device_id: DeviceId,
        ack: Ack,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        let device = self.known_device_mut(&device_id)?;
        device.last_seen = now;
        device.presence = Presence::Online;
        let pending = self.commands.pending.entry(device_id.clone()).or_default();
        let Some(at) = pending.iter().position(|p| p.command.id == ack.id) else {
            return Err(EngineError::UnmatchedAck {
                device: device_id,
                id: ack.id,
            });
        };
        let done = pending.remove(at);
        if pending.is_empty() {
            self.commands.pending.remove(&device_id);
        }
        let what = command_name(&done.command.body);
        match (ack.ok, done.asked_by) {
            (true, None) => {
                tracing::debug!(device = %device_id, command = what, "command acknowledged")
            }
            (true, Some(_)) => {
                let text = format!("{device_id} carried out {what}");
                fx.push(notice(now, NoticeKind::CommandDone, &device_id, text));
            }
            (false, _) => {
                let why = ack.error.as_deref().unwrap_or("no reason given");
                let text = format!("{device_id} could not carry out {what}: {why}");
                fx.push(notice(now, NoticeKind::CommandFailed, &device_id, text));
            }
        }
        Ok(())
    }

    /// Sends again what was not acknowledged in time (the timeout doubling each attempt), and
    /// gives up after the last attempt.
    pub(super) fn command_tick(&mut self, now: UnixMs, fx: &mut Vec<Effect>) {
        let timeout = self.config.ingest.command_timeout_ms;
        let attempts = self.config.ingest.command_attempts.max(1);
        let mut given_up = Vec::new();
        for (device, pending) in &mut self.commands.pending {
            pending.retain_mut(|p| {
                let due = p.sent_at + (timeout << (p.attempts - 1).min(10));
                if now < due {
                    return true;
                }
                if p.attempts >= attempts {
                    given_up.push((device.clone(), p.command.body.clone()));
                    return false;
                }
                p.attempts += 1;
                p.sent_at = now;
                fx.push(Effect::SendCommand {
                    device: device.clone(),
                    command: p.command.clone(),
                });
                true
            });
        }
        self.commands.pending.retain(|_, p| !p.is_empty());
        for (device, body) in given_up {
            let text = format!(
                "{device} did not answer {} after {attempts} tries",
                command_name(&body)
            );
            fx.push(notice(now, NoticeKind::CommandFailed, &device, text));
        }
    }
}

impl Engine {
    /// An owner asks a device to do something (tare or calibrate a scale, report more often).
    pub(super) fn command_from_person(
        &mut self,
        device_id: &DeviceId,
        body: CommandBody,
        by: &super::household::Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<u32, EngineError> {
        self.household
            .authorize(by, super::household::Permission::ChangeSettings)?;
        let device = self
            .devices
            .get(device_id)
            .filter(|d| d.accepted)
            .ok_or_else(|| EngineError::UnknownDevice(device_id.clone()))?;
        let slot = match &body {
            CommandBody::Tare { slot } | CommandBody::Calibrate { slot, .. } => Some(slot),
            CommandBody::ReportInterval { .. } | CommandBody::TimeSync { .. } => None,
        };
        if let Some(slot) = slot
            && !device.birth.slots.iter().any(|s| &s.id == slot)
        {
            return Err(EngineError::UnknownSlot {
                device: device_id.clone(),
                slot: slot.clone(),
            });
        }
        replenish_protocol::Validate::validate(&Command {
            id: 0,
            body: body.clone(),
        })
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let who = self.household.who(by);
        let what = command_name(&body);
        let id = self.send_command(device_id, body, Some(who), now, fx);
        self.record(
            by,
            "command",
            device_id,
            format!("sent {what} to {device_id}"),
            now,
            fx,
        );
        Ok(id)
    }
}

/// The command's name as the protocol spells it.
pub fn command_name(body: &CommandBody) -> &'static str {
    match body {
        CommandBody::Tare { .. } => "tare",
        CommandBody::Calibrate { .. } => "calibrate",
        CommandBody::ReportInterval { .. } => "report_interval",
        CommandBody::TimeSync { .. } => "time_sync",
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::tests::{brewer, event, report};
    use super::super::household::{Actor, Mode};
    use super::super::tests::{T0, engine, id};
    use super::super::{Event, Telemetry};
    use super::*;
    use crate::clock::MINUTE_MS;
    use replenish_protocol::ReportBody;

    #[test]
    fn a_wrong_clock_gets_time_sync_and_acks_are_matched() {
        let mut engine = engine(Mode::Auto);
        let fx = engine
            .handle(
                Event::ClockOff {
                    device: id("coffee"),
                },
                T0,
            )
            .unwrap();
        let Some(Effect::SendCommand { command, .. }) = fx.first() else {
            panic!("{fx:?}")
        };
        assert_eq!(command.body, CommandBody::TimeSync { unix_ms: T0 });
        // Within the hour: not again.
        let again = engine
            .handle(
                Event::ClockOff {
                    device: id("coffee"),
                },
                T0 + MINUTE_MS,
            )
            .unwrap();
        assert!(again.is_empty());
        let ack = |id| {
            event(
                "coffee",
                Telemetry::Ack(Ack {
                    id,
                    ok: true,
                    error: None,
                }),
            )
        };
        assert!(matches!(
            engine.handle(ack(command.id + 1), T0),
            Err(EngineError::UnmatchedAck { .. })
        ));
        engine.handle(ack(command.id), T0).unwrap();
        assert!(engine.pending_commands(&id("coffee")).is_empty());
        assert!(engine.handle(ack(command.id), T0).is_err(), "acked once");
    }

    #[test]
    fn reports_without_time_get_time_sync() {
        let mut engine = brewer();
        let fx = engine
            .handle(
                event(
                    "brewer",
                    report(
                        1,
                        1,
                        0,
                        ReportBody::Usage {
                            slot: id("brews"),
                            amount: 1.0,
                            uses: 1,
                        },
                    ),
                ),
                T0,
            )
            .unwrap();
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::SendCommand { command, .. } if matches!(command.body, CommandBody::TimeSync { .. })
        )));
    }

    #[test]
    fn unanswered_commands_are_sent_again_then_given_up() {
        let mut engine = engine(Mode::Auto);
        let owner = Actor::Console;
        engine
            .handle(
                Event::Command {
                    device: id("coffee"),
                    body: CommandBody::Tare { slot: id("beans") },
                    by: owner.clone(),
                },
                T0,
            )
            .unwrap();
        let sends = |fx: &[Effect]| {
            fx.iter()
                .filter(|e| matches!(e, Effect::SendCommand { .. }))
                .count()
        };
        let timeout = engine.config().ingest.command_timeout_ms;
        // Not yet due; then due after 30 s, 60 s more, and given up after 120 s more.
        assert_eq!(
            sends(&engine.handle(Event::Tick, T0 + timeout - 1).unwrap()),
            0
        );
        assert_eq!(sends(&engine.handle(Event::Tick, T0 + timeout).unwrap()), 1);
        let second = T0 + timeout;
        assert_eq!(
            sends(&engine.handle(Event::Tick, second + 2 * timeout).unwrap()),
            1
        );
        let third = second + 2 * timeout;
        let fx = engine.handle(Event::Tick, third + 4 * timeout).unwrap();
        assert_eq!(sends(&fx), 0);
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Notice(n) if n.kind == NoticeKind::CommandFailed
        )));
        assert!(engine.pending_commands(&id("coffee")).is_empty());
        // A slot the device does not have is refused.
        assert!(matches!(
            engine.handle(
                Event::Command {
                    device: id("coffee"),
                    body: CommandBody::Tare { slot: id("sugar") },
                    by: owner,
                },
                T0,
            ),
            Err(EngineError::UnknownSlot { .. })
        ));
    }
}
