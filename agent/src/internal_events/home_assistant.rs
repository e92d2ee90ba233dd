//! Events of the Home Assistant integration: its commands, publishes and how far it keeps up.

use std::fmt::Display;

use metrics::counter;

use super::InternalEvent;
use crate::metric;

/// What became of a message on a Home Assistant command topic.
pub enum HaOutcome<'a> {
    /// Not a command this agent knows (`label` its reason); `status` when it is only Home
    /// Assistant's own status.
    Unreadable {
        /// Why, as the metric's label.
        label: &'static str,
        /// Why, for people.
        error: &'a dyn Display,
        /// Home Assistant's status message rather than a bad command.
        status: bool,
    },
    /// Home Assistant came online: every appliance is announced again.
    Announce,
    /// A retained command, ignored: commands must not be retained.
    Retained,
    /// Control from Home Assistant is off in the config.
    ControlOff,
    /// Carried out.
    Applied(&'a dyn Display),
    /// Nothing to act on.
    NothingToDo(&'a dyn Display),
    /// The engine refused it.
    Refused(&'a dyn Display),
}

/// A message on a Home Assistant command topic (`replenish_ha_commands_total`).
pub struct HaCommand<'a> {
    /// `approve`, `mode`, `announce`, or `unknown`.
    pub command: &'static str,
    /// Its topic.
    pub topic: &'a str,
    /// What became of it.
    pub outcome: HaOutcome<'a>,
}

impl InternalEvent for HaCommand<'_> {
    fn emit(self) {
        let topic = self.topic;
        let label: &'static str = match &self.outcome {
            HaOutcome::Unreadable { label, .. } => label,
            HaOutcome::Announce | HaOutcome::Applied(_) => "applied",
            HaOutcome::Retained => "retained",
            HaOutcome::ControlOff => "disabled",
            HaOutcome::NothingToDo(_) => "nothing_to_do",
            HaOutcome::Refused(_) => "refused",
        };
        counter!(metric::HA_COMMANDS.name, "command" => self.command, "outcome" => label)
            .increment(1);
        match self.outcome {
            HaOutcome::Unreadable {
                error,
                status: true,
                ..
            } => tracing::info!(%error, "Home Assistant status"),
            HaOutcome::Unreadable { error, .. } => {
                tracing::warn!(%topic, %error, "ignored a Home Assistant message");
            }
            HaOutcome::Announce => {
                tracing::info!("Home Assistant is online; announcing every appliance again");
            }
            HaOutcome::Retained => tracing::warn!(
                %topic,
                "ignored a retained command: commands must not be retained"
            ),
            HaOutcome::ControlOff => tracing::warn!(
                %topic,
                "Home Assistant control is off (home_assistant.control = false); command ignored"
            ),
            HaOutcome::Applied(detail) => {
                tracing::info!(%topic, %detail, "Home Assistant command carried out");
            }
            HaOutcome::NothingToDo(detail) => {
                tracing::warn!(%topic, %detail, "Home Assistant command had nothing to act on");
            }
            HaOutcome::Refused(error) => {
                tracing::warn!(%topic, %error, "Home Assistant command refused");
            }
        }
    }
}

/// A state or discovery message for Home Assistant was queued, or could not be
/// (`replenish_ha_publishes_total`).
pub struct HaPublished<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Why it could not be queued (`None`: queued); it is tried again at the next sync.
    pub error: Option<&'a dyn Display>,
}

impl InternalEvent for HaPublished<'_> {
    fn emit(self) {
        match self.error {
            None => counter!(metric::HA_PUBLISHES.name, "outcome" => "queued").increment(1),
            Some(error) => {
                counter!(metric::HA_PUBLISHES.name, "outcome" => "dropped").increment(1);
                tracing::warn!(topic = %self.topic, %error, "cannot publish to Home Assistant; will retry at the next sync");
            }
        }
    }
}

/// The integration fell behind the engine's notices and resyncs
/// (`replenish_ha_notices_lagged_total`).
pub struct HaNoticesLagged {
    /// Notices missed.
    pub missed: u64,
}

impl InternalEvent for HaNoticesLagged {
    fn emit(self) {
        counter!(metric::HA_NOTICES_LAGGED.name).increment(self.missed);
        tracing::warn!(
            missed = self.missed,
            "Home Assistant states fell behind the engine's notices; resyncing"
        );
    }
}
