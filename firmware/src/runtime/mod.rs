//! The sans-IO device runtime: what to publish, in which order, and when.
//!
//! [`DeviceRuntime`] does no I/O and reads no clock. The caller (a board's main loop, the
//! simulator) owns the MQTT client and passes the time in as `now_ms`, a monotonic millisecond
//! counter (time since boot is fine). The loop looks like this:
//!
//! ```text
//! on connect:      runtime.connected(now)            (configure runtime.last_will() first)
//! on disconnect:   runtime.disconnected(); sleep runtime.next_reconnect_delay_ms()
//! on a command:    match runtime.handle_command(&cmd, now) {
//!                      CommandAction::Tare { id, slot } =>
//!                          runtime.complete_command(id, monitor(slot).tare()),
//!                      ...
//!                  }
//! on a sample:     if let Some(body) = monitor.sample_raw(raw) { runtime.report(body, now) }
//! periodically:    if runtime.level_report_due(now) { report every level;
//!                                                     runtime.mark_levels_reported(now) }
//! while let Some(out) = runtime.peek() {
//!     publish out.channel / out.message (out.retain) and wait for the broker's PUBACK;
//!     runtime.confirm_sent(&out);
//! }
//! ```
//!
//! Delivery is at-least-once: a message leaves the runtime only when [`confirm_sent`] says the
//! broker has it, so a link that drops mid-send loses nothing; the agent drops duplicates by
//! `(boot, seq)`. After every [`connected`] the birth goes first; acks go before reports;
//! reports go in `seq` order. While offline, reports wait in a ring buffer of `N`; when it is
//! full the oldest is dropped, and the next connection reports how many with a
//! [`FaultCode::BufferOverflow`] fault.
//!
//! [`confirm_sent`]: DeviceRuntime::confirm_sent
//! [`connected`]: DeviceRuntime::connected

mod backoff;
mod outgoing;

use core::fmt::{self, Write as _};

use heapless::Deque;
use replenish_protocol::message::Detail;
use replenish_protocol::{
    Ack, Birth, Command, CommandBody, FaultCode, Id, Report, ReportBody, SensorKind, Status,
    Validate, ValidationError,
};

pub use backoff::{Backoff, BackoffConfig};
pub use outgoing::{Outgoing, OutgoingMessage};

/// How many acks wait to be sent at most; older ones are dropped beyond it.
pub const ACK_QUEUE: usize = 4;
/// Default interval of periodic level reports: 15 minutes.
pub const DEFAULT_REPORT_INTERVAL_MS: u64 = 15 * 60 * 1000;

/// Settings of a [`DeviceRuntime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Interval of periodic level reports, in ms (the agent can change it with a command).
    pub report_interval_ms: u64,
    /// Reconnect back-off.
    pub backoff: BackoffConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            report_interval_ms: DEFAULT_REPORT_INTERVAL_MS,
            backoff: BackoffConfig::default(),
        }
    }
}

/// Why a report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The report breaks a protocol rule (a negative or non-finite amount, zero uses).
    #[error("invalid report: {0}")]
    Invalid(#[from] ValidationError),
    /// The report is about a slot the birth does not announce.
    #[error("report about a slot the device does not announce")]
    UnknownSlot,
}

/// What the caller must do about a command. The runtime has already queued the ack, except for
/// [`Tare`](Self::Tare) and [`Calibrate`](Self::Calibrate): carry them out, then call
/// [`DeviceRuntime::complete_command`] with the outcome.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum CommandAction {
    /// Tare the slot (its empty container is in place), then complete the command.
    Tare {
        /// The command id, for [`DeviceRuntime::complete_command`].
        id: u32,
        /// The slot to tare; a level slot of this device.
        slot: Id,
    },
    /// Calibrate the slot on the known amount now in it, then complete the command.
    Calibrate {
        /// The command id, for [`DeviceRuntime::complete_command`].
        id: u32,
        /// The slot to calibrate; a level slot of this device.
        slot: Id,
        /// The amount in the slot, in its unit; finite and positive.
        known: f32,
    },
    /// The report interval changed; acked. Persist it if it should survive a reboot.
    ReportIntervalChanged {
        /// The new interval, in ms.
        interval_ms: u64,
    },
    /// The clock was set; acked. Reports now carry Unix times.
    TimeSynced {
        /// The time received, ms since the Unix epoch.
        unix_ms: u64,
    },
    /// The command was refused; the failed ack is queued.
    Rejected {
        /// Why (as sent in the ack).
        error: Detail,
    },
}

#[derive(Debug, Clone)]
struct Queued {
    /// When the report was made, on the caller's monotonic clock.
    at_ms: u64,
    report: Report,
}

/// The device's protocol state: birth, sequence numbers, queued reports and acks, commands,
/// heartbeats, reconnect back-off. `N` is the capacity of the store-and-forward buffer of
/// reports (at least 1, checked at compile time); each entry takes about 150 bytes.
///
/// See the [module docs](self) for the call sequence.
#[derive(Debug, Clone)]
pub struct DeviceRuntime<const N: usize> {
    birth: Birth,
    config: RuntimeConfig,
    next_seq: u32,
    reports: Deque<Queued, N>,
    acks: Deque<Ack, ACK_QUEUE>,
    connected: bool,
    birth_pending: bool,
    /// Reports dropped and not yet reported as a fault.
    dropped_unreported: u32,
    dropped_total: u64,
    /// Unix time minus the monotonic clock, once synced.
    clock_offset_ms: Option<i64>,
    last_levels_ms: Option<u64>,
    backoff: Backoff,
}

impl<const N: usize> DeviceRuntime<N> {
    /// A runtime for a device announcing `birth` (its `boot` number must grow on every boot);
    /// the birth's `buffer` is set to `N`.
    ///
    /// Refuses a birth the agent would refuse (no slot, a duplicate slot, a bad capacity).
    pub fn new(mut birth: Birth, config: RuntimeConfig) -> Result<Self, ValidationError> {
        // The birth declares the buffer, so the agent keeps de-dup state for a whole flush.
        birth.buffer = Some(u16::try_from(N).unwrap_or(u16::MAX));
        Status::Online(birth.clone()).validate()?;
        let seed = birth.boot;
        Ok(Self {
            birth,
            config,
            next_seq: 1,
            reports: Deque::new(),
            acks: Deque::new(),
            connected: false,
            birth_pending: false,
            dropped_unreported: 0,
            dropped_total: 0,
            clock_offset_ms: None,
            last_levels_ms: None,
            backoff: Backoff::new(config.backoff, seed),
        })
    }

    /// The birth announced on every connection.
    pub fn birth(&self) -> &Birth {
        &self.birth
    }

    /// The boot number (from the birth).
    pub fn boot(&self) -> u32 {
        self.birth.boot
    }

    /// Whether the transport is connected (between [`connected`](Self::connected) and
    /// [`disconnected`](Self::disconnected)).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The message to register as the MQTT last will: `offline` on `status`, retained. Publish it
    /// too before a clean disconnect.
    pub fn last_will(&self) -> Outgoing {
        Outgoing::status(Status::Offline)
    }

    /// The transport is connected: the birth is queued to go first, the back-off is reset, and
    /// reports dropped since the last connection are reported as a
    /// [`FaultCode::BufferOverflow`] fault (after the reports still queued, in `seq` order).
    pub fn connected(&mut self, now_ms: u64) {
        self.connected = true;
        self.birth_pending = true;
        self.backoff.reset();
        if self.dropped_unreported > 0 {
            if self.reports.is_full() {
                // Make room so the fault itself does not push out yet another report uncounted.
                self.drop_oldest();
            }
            let mut detail = Detail::new();
            write_truncated(
                &mut detail,
                format_args!("{} reports dropped", self.dropped_unreported),
            );
            self.dropped_unreported = 0;
            let body = ReportBody::Fault {
                slot: None,
                code: FaultCode::BufferOverflow,
                detail,
            };
            self.enqueue(body, now_ms);
        }
    }

    /// The transport lost its connection. Queued messages stay queued.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// How long to wait before the next connection attempt, in ms: exponential with a cap,
    /// jittered by the boot number; every call counts a failed attempt, and
    /// [`connected`](Self::connected) starts over.
    pub fn next_reconnect_delay_ms(&mut self) -> u64 {
        self.backoff.next_delay_ms()
    }

    /// Queues a report made at `now_ms`, giving it the next `seq` (returned). When the buffer is
    /// full the oldest report is dropped and counted.
    pub fn report(&mut self, body: ReportBody, now_ms: u64) -> Result<u32, ReportError> {
        if let Some(slot) = body.slot()
            && !self.birth.slots.iter().any(|s| s.id == *slot)
        {
            return Err(ReportError::UnknownSlot);
        }
        Report {
            boot: self.birth.boot,
            seq: 0,
            ts: 0,
            body: body.clone(),
        }
        .validate()?;
        Ok(self.enqueue(body, now_ms))
    }

    /// The next message to publish, if connected: the birth after each connection, then acks,
    /// then reports in `seq` order. It stays queued until [`confirm_sent`](Self::confirm_sent).
    pub fn peek(&self) -> Option<Outgoing> {
        if !self.connected {
            return None;
        }
        if self.birth_pending {
            return Some(Outgoing::status(Status::Online(self.birth.clone())));
        }
        if let Some(ack) = self.acks.front() {
            return Some(Outgoing::ack(ack.clone()));
        }
        self.reports
            .front()
            .map(|q| Outgoing::report(q.report.clone()))
    }

    /// The transport delivered `sent` (as returned by [`peek`](Self::peek)): it leaves the queue.
    /// Returns `false` if it was no longer at the head (dropped meanwhile): nothing is removed.
    pub fn confirm_sent(&mut self, sent: &Outgoing) -> bool {
        match &sent.message {
            OutgoingMessage::Status(Status::Online(_)) => {
                core::mem::replace(&mut self.birth_pending, false)
            }
            OutgoingMessage::Status(Status::Offline) => false,
            OutgoingMessage::Ack(ack) => self.acks.pop_front_if(|head| head == ack).is_some(),
            OutgoingMessage::Report(report) => self
                .reports
                .pop_front_if(|head| {
                    head.report.seq == report.seq && head.report.boot == report.boot
                })
                .is_some(),
        }
    }

    /// Reports waiting to be sent.
    pub fn pending_reports(&self) -> usize {
        self.reports.len()
    }

    /// Reports dropped for lack of room since boot.
    pub fn dropped_reports(&self) -> u64 {
        self.dropped_total
    }

    /// Handles a command from the agent. Interval and time are applied here and acked; tare and
    /// calibrate are checked (a level slot of this device) and handed back to the caller, who
    /// completes them with [`complete_command`](Self::complete_command). Anything invalid is
    /// acked with an error.
    pub fn handle_command(&mut self, command: &Command, now_ms: u64) -> CommandAction {
        let id = command.id;
        if let Err(e) = command.validate() {
            return self.reject(id, format_args!("invalid command: {e}"));
        }
        match &command.body {
            CommandBody::Tare { slot } => match self.level_slot(slot) {
                Ok(()) => CommandAction::Tare {
                    id,
                    slot: slot.clone(),
                },
                Err(why) => self.reject(id, format_args!("{why}: {slot}")),
            },
            CommandBody::Calibrate { slot, known } => match self.level_slot(slot) {
                Ok(()) => CommandAction::Calibrate {
                    id,
                    slot: slot.clone(),
                    known: *known,
                },
                Err(why) => self.reject(id, format_args!("{why}: {slot}")),
            },
            CommandBody::ReportInterval { seconds } => {
                let interval_ms = u64::from(*seconds) * 1000;
                self.config.report_interval_ms = interval_ms;
                self.queue_ack(Ack {
                    id,
                    ok: true,
                    error: None,
                });
                CommandAction::ReportIntervalChanged { interval_ms }
            }
            CommandBody::TimeSync { unix_ms } => {
                self.set_time(*unix_ms, now_ms);
                self.queue_ack(Ack {
                    id,
                    ok: true,
                    error: None,
                });
                CommandAction::TimeSynced { unix_ms: *unix_ms }
            }
        }
    }

    /// Queues the ack of a command handed back by [`handle_command`](Self::handle_command):
    /// `ok`, or failed with the error's text (truncated to fit).
    pub fn complete_command<E: fmt::Display>(&mut self, id: u32, result: Result<(), E>) {
        let ack = match result {
            Ok(()) => Ack {
                id,
                ok: true,
                error: None,
            },
            Err(e) => {
                let mut error = Detail::new();
                write_truncated(&mut error, format_args!("{e}"));
                Ack {
                    id,
                    ok: false,
                    error: Some(error),
                }
            }
        };
        self.queue_ack(ack);
    }

    /// The interval of periodic level reports, in ms.
    pub fn report_interval_ms(&self) -> u64 {
        self.config.report_interval_ms
    }

    /// Sets the interval of periodic level reports (one restored from flash), in ms.
    pub fn set_report_interval_ms(&mut self, interval_ms: u64) {
        self.config.report_interval_ms = interval_ms;
    }

    /// Whether periodic level reports are due: connected, and none sent for the interval (or
    /// never). While offline no heartbeat is due: they would only crowd the buffer.
    pub fn level_report_due(&self, now_ms: u64) -> bool {
        self.connected
            && self
                .last_levels_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= self.config.report_interval_ms)
    }

    /// The periodic level reports were queued at `now_ms`.
    pub fn mark_levels_reported(&mut self, now_ms: u64) {
        self.last_levels_ms = Some(now_ms);
    }

    /// Sets the clock: `unix_ms` is the Unix time at the monotonic `now_ms`. Queued reports made
    /// before any sync get their time filled in.
    pub fn set_time(&mut self, unix_ms: u64, now_ms: u64) {
        let offset = to_i64(unix_ms).saturating_sub(to_i64(now_ms));
        let had_clock = self.clock_offset_ms.is_some();
        self.clock_offset_ms = Some(offset);
        if !had_clock {
            for queued in self.reports.iter_mut() {
                if queued.report.ts == 0 {
                    queued.report.ts = unix_at(offset, queued.at_ms);
                }
            }
        }
    }

    /// The Unix time at the monotonic `now_ms`, once the clock was set.
    pub fn unix_time_ms(&self, now_ms: u64) -> Option<u64> {
        self.clock_offset_ms.map(|offset| unix_at(offset, now_ms))
    }

    fn enqueue(&mut self, body: ReportBody, now_ms: u64) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let ts = self.unix_time_ms(now_ms).unwrap_or(0);
        let report = Report {
            boot: self.birth.boot,
            seq,
            ts,
            body,
        };
        if self.reports.is_full() {
            self.drop_oldest();
        }
        if self
            .reports
            .push_back(Queued {
                at_ms: now_ms,
                report,
            })
            .is_err()
        {
            // Unreachable (room was made above); count it rather than lose it silently.
            self.count_drop();
        }
        seq
    }

    fn drop_oldest(&mut self) {
        if self.reports.pop_front().is_some() {
            self.count_drop();
        }
    }

    fn count_drop(&mut self) {
        self.dropped_unreported = self.dropped_unreported.saturating_add(1);
        self.dropped_total = self.dropped_total.saturating_add(1);
    }

    fn queue_ack(&mut self, ack: Ack) {
        if self.acks.is_full() {
            self.acks.pop_front();
        }
        // Cannot fail: room was made above.
        let _ = self.acks.push_back(ack);
    }

    fn reject(&mut self, id: u32, why: fmt::Arguments<'_>) -> CommandAction {
        let mut error = Detail::new();
        write_truncated(&mut error, why);
        self.queue_ack(Ack {
            id,
            ok: false,
            error: Some(error.clone()),
        });
        CommandAction::Rejected { error }
    }

    fn level_slot(&self, slot: &Id) -> Result<(), &'static str> {
        match self.birth.slots.iter().find(|s| s.id == *slot) {
            None => Err("unknown slot"),
            Some(spec) if spec.sensor != SensorKind::Level => Err("not a level slot"),
            Some(_) => Ok(()),
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unix_at(offset: i64, at_ms: u64) -> u64 {
    u64::try_from(to_i64(at_ms).saturating_add(offset)).unwrap_or(0)
}

/// Writes as much of `args` as fits, cutting at a character boundary.
fn write_truncated(out: &mut Detail, args: fmt::Arguments<'_>) {
    struct Truncating<'a>(&'a mut Detail);
    impl fmt::Write for Truncating<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.0.push(c).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let _ = Truncating(out).write_fmt(args);
}

#[cfg(test)]
mod tests;
