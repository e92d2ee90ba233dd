//! A pickup point's opening hours as the sandbox shop keeps them: the text it shows
//! ("Mon–Sat 08:00–20:00") read back as days and times, so an order is ready, and collected,
//! only while the point is open. Times are the shop's clock (UTC in the sandbox, as the demo's
//! household).

use replenish_agent::clock::{DAY_MS, UnixMs};

const MINUTE_MS: UnixMs = 60_000;
/// The sandbox's household passes its pickup point on the way home, from 17:30.
const COLLECT_FROM: UnixMs = (17 * 60 + 30) * MINUTE_MS;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Open from `open` to `close` (ms after midnight) on the days `first..=last` (0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    first: usize,
    last: usize,
    open: UnixMs,
    close: UnixMs,
}

impl OpeningHours {
    /// Reads `Mon–Sat 08:00–20:00` (an en dash or a hyphen); `None` for anything else, which
    /// the shop takes as always open.
    pub fn parse(text: &str) -> Option<Self> {
        let (days, times) = text.trim().split_once(' ')?;
        let (first, last) = split_range(days)?;
        let (open, close) = split_range(times.trim())?;
        let day = |name: &str| DAYS.iter().position(|d| *d == name);
        let hours = Self {
            first: day(first)?,
            last: day(last)?,
            open: minutes(open)? * MINUTE_MS,
            close: minutes(close)? * MINUTE_MS,
        };
        (hours.first <= hours.last && hours.open < hours.close).then_some(hours)
    }

    /// Whether the point is open at `t`.
    pub fn is_open(&self, t: UnixMs) -> bool {
        let day = weekday(t);
        let time = t % DAY_MS;
        (self.first..=self.last).contains(&day) && (self.open..self.close).contains(&time)
    }

    /// When the sandbox's household collects an order ready at `ready`: on its way home, at
    /// 17:30 or later on a day the point is open (at once if it is ready later that evening,
    /// while open); at a point that closes before 17:30, as soon as it is open.
    pub fn collection(&self, ready: UnixMs) -> UnixMs {
        let midnight = ready - ready % DAY_MS;
        (0..8)
            .map(|d| (midnight + d * DAY_MS + COLLECT_FROM).max(ready))
            .find(|&t| self.is_open(t))
            .unwrap_or_else(|| self.next_open(ready))
    }

    /// `t` if the point is open then, else when it next opens.
    pub fn next_open(&self, t: UnixMs) -> UnixMs {
        if self.is_open(t) {
            return t;
        }
        let midnight = t - t % DAY_MS;
        (0..8)
            .map(|d| midnight + d * DAY_MS + self.open)
            .find(|&opening| opening > t && self.is_open(opening))
            .unwrap_or(t)
    }
}

fn split_range(text: &str) -> Option<(&str, &str)> {
    text.split_once('–').or_else(|| text.split_once('-'))
}

fn minutes(hh_mm: &str) -> Option<UnixMs> {
    let (h, m) = hh_mm.split_once(':')?;
    let (h, m): (UnixMs, UnixMs) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60).then_some(h * 60 + m)
}

/// 0 = Monday: 1970-01-01 was a Thursday.
fn weekday(t: UnixMs) -> usize {
    ((t / DAY_MS + 3) % 7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-01-05, 00:00 UTC.
    const MONDAY: UnixMs = 1_767_571_200_000;
    const HOUR: UnixMs = 3_600_000;

    #[test]
    fn reads_the_shops_own_text_and_refuses_what_it_cannot_read() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        assert_eq!(Some(hours), OpeningHours::parse("Mon-Sat 08:00-20:00"));
        for bad in [
            "",
            "always",
            "Sat–Mon 08:00–20:00",
            "Mon–Sat 20:00–08:00",
            "Mon 8–9",
        ] {
            assert_eq!(OpeningHours::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn opens_in_the_morning_and_not_on_sunday() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        assert_eq!(weekday(MONDAY), 0);
        assert!(hours.is_open(MONDAY + 8 * HOUR));
        assert!(!hours.is_open(MONDAY + 20 * HOUR));
        // Monday 23:05 → Tuesday 08:00; Tuesday noon stays.
        assert_eq!(
            hours.next_open(MONDAY + 23 * HOUR),
            MONDAY + DAY_MS + 8 * HOUR
        );
        assert_eq!(
            hours.next_open(MONDAY + DAY_MS + 12 * HOUR),
            MONDAY + DAY_MS + 12 * HOUR
        );
        // Saturday 21:00 → Monday 08:00.
        let saturday = MONDAY + 5 * DAY_MS;
        assert_eq!(
            hours.next_open(saturday + 21 * HOUR),
            MONDAY + 7 * DAY_MS + 8 * HOUR
        );
        // Sunday noon → Monday 08:00.
        assert_eq!(
            hours.next_open(saturday + DAY_MS + 12 * HOUR),
            MONDAY + 7 * DAY_MS + 8 * HOUR
        );
    }

    #[test]
    fn the_household_collects_on_its_way_home_while_the_point_is_open() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        let evening = MONDAY + 17 * HOUR + 30 * 60_000;
        // Ready in the morning: that evening. Ready at 19:00: at once. Ready on Monday at
        // 08:00 after a Saturday evening order: Monday evening.
        assert_eq!(hours.collection(MONDAY + 8 * HOUR), evening);
        assert_eq!(hours.collection(MONDAY + 19 * HOUR), MONDAY + 19 * HOUR);
        assert_eq!(
            hours.collection(MONDAY + 7 * DAY_MS + 8 * HOUR),
            evening + 7 * DAY_MS
        );
        // Ready after closing on Saturday: Monday evening, not Sunday.
        let saturday = MONDAY + 5 * DAY_MS;
        assert_eq!(hours.collection(saturday + 21 * HOUR), evening + 7 * DAY_MS);
        // A point open only in the morning: as soon as it is open.
        let mornings = OpeningHours::parse("Mon–Fri 08:00–12:00").unwrap();
        assert_eq!(mornings.collection(MONDAY + 9 * HOUR), MONDAY + 9 * HOUR);
    }
}
