//! Exact de-duplication of reports by (boot, seq), across reboots and reordering.
//!
//! Owns the rule of docs/protocol.md, "Delivery, duplicates and time": boot ids are ordered by
//! 32-bit serial-number arithmetic (RFC 1982); the agent keeps what it has seen of each of a
//! device's [`RECENT_BOOTS`] newest boots, as exact sets of sequence numbers (sorted, disjoint
//! ranges), so a report is accepted once whether it comes in order, late, far behind, or from
//! the boot before a reboot. Only when a boot has more holes than its limit (the device's
//! declared offline buffer, at least [`MIN_GAPS`]) are the oldest holes given up as lost, and
//! reports in them refused as too old; a report of a boot older than every one kept is refused
//! the same way. Either refusal is counted, never silent.

use serde::{Deserialize, Serialize};

/// Boots whose sequence numbers are remembered per device.
pub const RECENT_BOOTS: usize = 4;
/// Holes (runs of never-seen sequence numbers below the newest) a boot keeps at least.
pub const MIN_GAPS: usize = 256;
/// Holes a boot keeps at most, whatever the device declares: bounds memory per device.
pub const MAX_GAPS: usize = 4096;

/// True when boot `a` is newer than boot `b` (RFC 1982 serial-number order on 32 bits).
pub fn boot_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Why a report's (boot, seq) was refused. Nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// Accepted: never seen before, now recorded.
    New,
    /// Seen before: a redelivery.
    Duplicate,
    /// Older than what is remembered (a boot older than every one kept, or a hole given up as
    /// lost): cannot be told from a duplicate, so it is refused.
    TooOld,
}

/// What has been seen of one boot: every sequence number below `floor`, and those in `ranges`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSeen {
    /// The boot id.
    pub boot: u32,
    /// Sequence numbers below this count as seen (given up as lost, or migrated). Wider than a
    /// sequence number, so that `u32::MAX` itself can fall below it.
    #[serde(default)]
    pub floor: u64,
    /// Seen sequence numbers at or above `floor`: sorted, disjoint, non-adjacent inclusive
    /// ranges. In-order delivery keeps a single range.
    pub ranges: Vec<(u32, u32)>,
}

impl BootSeen {
    fn new(boot: u32) -> Self {
        Self {
            boot,
            floor: 0,
            ranges: Vec::new(),
        }
    }

    fn contains(&self, seq: u32) -> bool {
        if u64::from(seq) < self.floor {
            return true;
        }
        // The last range whose start is at or below seq.
        let i = self.ranges.partition_point(|&(start, _)| start <= seq);
        i > 0 && self.ranges[i - 1].1 >= seq
    }

    fn insert(&mut self, seq: u32, max_gaps: usize) {
        let i = self.ranges.partition_point(|&(start, _)| start <= seq);
        let joins_left = i > 0 && self.ranges[i - 1].1.checked_add(1) == Some(seq);
        let joins_right = i < self.ranges.len() && seq.checked_add(1) == Some(self.ranges[i].0);
        match (joins_left, joins_right) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = seq,
            (false, true) => self.ranges[i].0 = seq,
            (false, false) => self.ranges.insert(i, (seq, seq)),
        }
        // Keep the first range apart from the floor, so every range has one hole before it.
        self.fold_into_floor();
        // Give up the oldest holes while there are too many.
        while self.ranges.len() > max_gaps {
            self.floor = u64::from(self.ranges[0].1) + 1;
            self.ranges.remove(0);
            self.fold_into_floor();
        }
    }

    fn fold_into_floor(&mut self) {
        while let Some(&(start, end)) = self.ranges.first() {
            if u64::from(start) > self.floor {
                break;
            }
            self.floor = self.floor.max(u64::from(end) + 1);
            self.ranges.remove(0);
        }
    }

    /// Runs of never-seen sequence numbers between the floor and the newest seen.
    pub fn gaps(&self) -> usize {
        self.ranges.len()
    }
}

/// What a device's reports have been seen, per boot (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dedup {
    /// The newest boots seen, newest first; at most [`RECENT_BOOTS`].
    pub boots: Vec<BootSeen>,
    /// Holes kept per boot: the device's declared buffer, within [`MIN_GAPS`]..=[`MAX_GAPS`].
    #[serde(default = "default_gaps")]
    pub max_gaps: usize,
    /// After the device's boot counter went back (see [`Dedup::birth`]): the newest boot of
    /// before. A report of a boot up to it is refused as too old until that boot's birth is
    /// seen, since it may be a redelivery from before the reset.
    #[serde(default)]
    pub retired_up_to: Option<u32>,
}

fn default_gaps() -> usize {
    MIN_GAPS
}

impl Dedup {
    /// A tracker keeping `buffer` holes per boot (clamped to [`MIN_GAPS`]..=[`MAX_GAPS`]).
    pub fn with_buffer(buffer: Option<u16>) -> Self {
        let mut dedup = Self::default();
        dedup.set_buffer(buffer);
        dedup
    }

    /// The device declared (in a birth) how many reports it buffers while offline.
    pub fn set_buffer(&mut self, buffer: Option<u16>) {
        self.max_gaps = buffer
            .map_or(MIN_GAPS, usize::from)
            .clamp(MIN_GAPS, MAX_GAPS);
    }

    /// The newest boot seen, if any.
    pub fn current_boot(&self) -> Option<u32> {
        self.boots.first().map(|b| b.boot)
    }

    /// Whether `(boot, seq)` would be accepted, without recording it.
    pub fn check(&self, boot: u32, seq: u32) -> Unseen {
        match self.boots.iter().find(|b| b.boot == boot) {
            Some(seen) if seen.contains(seq) => Unseen::Duplicate,
            Some(_) => Unseen::New,
            None if self
                .retired_up_to
                .is_some_and(|retired| !boot_newer(boot, retired)) =>
            {
                Unseen::TooOld
            }
            None if self.room_for(boot) => Unseen::New,
            None => Unseen::TooOld,
        }
    }

    /// Records `(boot, seq)` if it is new; says what it was.
    pub fn accept(&mut self, boot: u32, seq: u32) -> Unseen {
        let verdict = self.check(boot, seq);
        if verdict == Unseen::New {
            let max_gaps = self.max_gaps.max(1);
            let at = match self.boots.iter().position(|b| b.boot == boot) {
                Some(at) => at,
                None => self.add_boot(boot),
            };
            self.boots[at].insert(seq, max_gaps);
        }
        verdict
    }

    /// A birth of `boot`: authoritative that the device runs it. A boot newer than the oldest
    /// kept is filed in order (a late birth stays behind the newer ones); one older than every
    /// boot kept means the device's counter went back (new flash, a lost counter): its history
    /// starts over with this boot, and reports of boots up to the newest of before are refused
    /// until their birth comes. Returns true when that reset happened.
    pub fn birth(&mut self, boot: u32) -> bool {
        if self.boots.iter().any(|b| b.boot == boot) {
            return false;
        }
        if self
            .retired_up_to
            .is_some_and(|retired| boot_newer(boot, retired))
        {
            self.retired_up_to = None;
        }
        let newer_than_oldest = self
            .boots
            .last()
            .is_none_or(|oldest| boot_newer(boot, oldest.boot));
        if newer_than_oldest {
            self.add_boot(boot);
            false
        } else {
            let before = self.current_boot();
            self.retired_up_to = match (self.retired_up_to, before) {
                (Some(a), Some(b)) => Some(if boot_newer(a, b) { a } else { b }),
                (a, b) => a.or(b),
            };
            self.boots = vec![BootSeen::new(boot)];
            true
        }
    }

    /// A boot not kept fits when fewer than [`RECENT_BOOTS`] are kept or it is newer than the
    /// oldest kept (which it would then push out).
    fn room_for(&self, boot: u32) -> bool {
        self.boots.len() < RECENT_BOOTS
            || self
                .boots
                .last()
                .is_none_or(|oldest| boot_newer(boot, oldest.boot))
    }

    fn add_boot(&mut self, boot: u32) -> usize {
        let at = self
            .boots
            .iter()
            .position(|b| boot_newer(boot, b.boot))
            .unwrap_or(self.boots.len());
        self.boots.insert(at, BootSeen::new(boot));
        self.boots.truncate(RECENT_BOOTS);
        at
    }

    /// Carries over the de-dup state of agents before 0.2: the highest seq and a bitmap of the 64
    /// below it. Everything older than the bitmap counts as seen, as it did then.
    pub fn from_legacy(boot: u32, highest: Option<u32>, seen: u64) -> Self {
        let mut seen_boot = BootSeen::new(boot);
        if let Some(highest) = highest {
            seen_boot.floor = u64::from(highest.saturating_sub(63));
            for back in (0..64u32).rev() {
                if seen & (1 << back) != 0
                    && back <= highest
                    && u64::from(highest - back) >= seen_boot.floor
                {
                    seen_boot.insert(highest - back, MAX_GAPS);
                }
            }
        }
        Self {
            boots: vec![seen_boot],
            max_gaps: MIN_GAPS,
            retired_up_to: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_reports_keep_one_range() {
        let mut d = Dedup::default();
        for seq in 1..=10_000 {
            assert_eq!(d.accept(7, seq), Unseen::New);
        }
        assert_eq!(d.boots[0].ranges, vec![(1, 10_000)], "one hole: seq 0");
        assert_eq!(d.accept(7, 5_000), Unseen::Duplicate);
    }

    #[test]
    fn a_report_far_behind_is_accepted_once() {
        let mut d = Dedup::default();
        for seq in 1000..1100 {
            d.accept(1, seq);
        }
        assert_eq!(d.accept(1, 3), Unseen::New, "never seen, 1000 behind");
        assert_eq!(d.accept(1, 3), Unseen::Duplicate);
    }

    #[test]
    fn a_late_report_of_the_previous_boot_never_resets_the_new_one() {
        let mut d = Dedup::default();
        for seq in 1..=4 {
            d.accept(1, seq);
        }
        d.birth(2);
        for seq in 1..=4 {
            assert_eq!(d.accept(2, seq), Unseen::New);
        }
        // Boot 1 and 2 alternate: old ones are duplicates, a never-seen one of boot 1 counts once.
        for round in 0..5 {
            for seq in 1..=4 {
                assert_eq!(d.accept(1, seq), Unseen::Duplicate, "round {round}");
                assert_eq!(d.accept(2, seq), Unseen::Duplicate, "round {round}");
            }
        }
        assert_eq!(d.accept(1, 5), Unseen::New);
        assert_eq!(d.accept(1, 5), Unseen::Duplicate);
        assert_eq!(d.current_boot(), Some(2));
    }

    #[test]
    fn boots_older_than_those_kept_are_too_old() {
        let mut d = Dedup::default();
        for boot in 10..10 + RECENT_BOOTS as u32 + 2 {
            d.accept(boot, 1);
        }
        assert_eq!(d.boots.len(), RECENT_BOOTS);
        assert_eq!(d.accept(10, 2), Unseen::TooOld);
        assert_eq!(d.accept(11, 2), Unseen::TooOld);
        assert_eq!(d.accept(12, 2), Unseen::New);
    }

    #[test]
    fn boot_order_wraps_around() {
        assert!(boot_newer(1, u32::MAX));
        assert!(boot_newer(5, 4));
        assert!(!boot_newer(4, 5));
        assert!(!boot_newer(4, 4));
    }

    #[test]
    fn a_reset_counter_starts_over_at_its_birth() {
        let mut d = Dedup::default();
        for boot in 100..105 {
            d.birth(boot);
            d.accept(boot, 40);
        }
        assert!(d.birth(1), "counter reset");
        assert_eq!(d.current_boot(), Some(1));
        assert_eq!(d.accept(1, 1), Unseen::New);
        // A redelivery from before the reset is not applied again.
        assert_eq!(d.accept(104, 40), Unseen::TooOld);
        assert_eq!(d.accept(50, 1), Unseen::TooOld);
        // The device reboots: its new boots are taken at their births, reports after them.
        assert!(!d.birth(2));
        assert_eq!(d.accept(2, 1), Unseen::New);
        // Past the old counter, nothing is held back any more.
        assert!(!d.birth(105));
        assert_eq!(d.retired_up_to, None);
        assert_eq!(d.accept(106, 1), Unseen::New);
    }

    #[test]
    fn a_reset_is_seen_with_fewer_boots_kept_and_a_late_birth_is_not_one() {
        let mut d = Dedup::default();
        d.birth(5);
        d.birth(6);
        assert!(
            d.birth(1),
            "older than every boot kept, though only two are"
        );
        let mut d = Dedup::default();
        d.birth(7);
        d.birth(9);
        assert!(!d.birth(8), "between the kept ones: a late birth");
        assert_eq!(d.current_boot(), Some(9));
    }

    #[test]
    fn the_last_sequence_number_is_remembered() {
        let d = Dedup::from_legacy(3, Some(u32::MAX), u64::MAX);
        assert_eq!(d.check(3, u32::MAX), Unseen::Duplicate);
        let mut d = Dedup::default();
        for seq in (u32::MAX - 300)..=u32::MAX {
            d.accept(1, seq);
        }
        assert_eq!(d.accept(1, u32::MAX), Unseen::Duplicate);
    }

    #[test]
    fn too_many_holes_give_up_the_oldest() {
        let mut d = Dedup::with_buffer(None);
        // Every other seq: each one leaves a hole.
        for i in 1..=(MIN_GAPS as u32 + 10) {
            d.accept(1, i * 2);
        }
        assert!(d.boots[0].gaps() <= MIN_GAPS);
        assert_eq!(d.accept(1, 1), Unseen::Duplicate, "oldest hole given up");
        let newest_hole = (MIN_GAPS as u32 + 10) * 2 - 1;
        assert_eq!(d.accept(1, newest_hole), Unseen::New);
    }

    #[test]
    fn legacy_windows_carry_over() {
        // highest 100, 100 and 98 seen.
        let d = Dedup::from_legacy(3, Some(100), 0b101);
        assert_eq!(d.check(3, 100), Unseen::Duplicate);
        assert_eq!(d.check(3, 99), Unseen::New);
        assert_eq!(d.check(3, 98), Unseen::Duplicate);
        assert_eq!(
            d.check(3, 30),
            Unseen::Duplicate,
            "older than the old window"
        );
        assert_eq!(d.check(3, 101), Unseen::New);
    }

    proptest! {
        /// Against a plain set: any order, any redeliveries, two boots interleaved, a buffer
        /// large enough for the holes: every pair is accepted exactly once.
        #[test]
        fn exactly_once_in_any_order(
            seqs in proptest::collection::vec((0u32..2, 1u32..600), 1..800),
        ) {
            let mut d = Dedup::with_buffer(Some(1024));
            let mut seen = std::collections::HashSet::new();
            for (boot, seq) in seqs {
                let fresh = seen.insert((boot, seq));
                let verdict = d.accept(boot + 1, seq);
                prop_assert_eq!(verdict == Unseen::New, fresh, "boot {} seq {}", boot, seq);
            }
            for b in &d.boots {
                for w in b.ranges.windows(2) {
                    prop_assert!(w[0].1 + 1 < w[1].0, "ranges sorted and apart");
                }
            }
        }
    }
}
