//! A pickup point's opening hours, read from the text a shop shows ("Mon–Sat 08:00–20:00"): an
//! order for pickup is handled, and can be collected, only while the point is open. Times are
//! milliseconds since the Unix epoch, on the shop's clock (UTC for the sandbox shop).

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Open from `open` to `close` (ms after midnight) on the days `first..=last` (0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    first: usize,
    last: usize,
    open: u64,
    close: u64,
}

impl OpeningHours {
    /// Reads `Mon–Sat 08:00–20:00` (an en dash or a hyphen); `None` for anything else, which
    /// callers take as always open.
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
    pub fn is_open(&self, t: u64) -> bool {
        let day = weekday(t);
        let time = t % DAY_MS;
        (self.first..=self.last).contains(&day) && (self.open..self.close).contains(&time)
    }

    /// Open time in a week, in ms.
    pub fn weekly_open_ms(&self) -> u64 {
        (self.last - self.first + 1) as u64 * (self.close - self.open)
    }

    /// The share of all time the point is open (72 hours of a week's 168: 0.43).
    pub fn open_share(&self) -> f64 {
        self.weekly_open_ms() as f64 / (7 * DAY_MS) as f64
    }

    /// The open intervals of the fifteen days from `t` on, in time order: today's rest, then
    /// each open day's (enough for a week's open time from anywhere).
    fn open_from(&self, t: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let midnight = t - t % DAY_MS;
        (0..15)
            .map(move |d| midnight + d * DAY_MS)
            .filter(|&day| (self.first..=self.last).contains(&weekday(day)))
            .map(move |day| ((day + self.open).max(t), day + self.close))
            .filter(|(start, end)| start < end)
    }

    /// How much open time lies between `from` and `to` (0 if `to` is not later): the time a
    /// pickup point had to handle an order, or a household to collect it.
    pub fn open_between(&self, from: u64, to: u64) -> u64 {
        if to <= from {
            return 0;
        }
        // Whole weeks at once: a week holds the same open time wherever it starts.
        let weeks = (to - from) / (7 * DAY_MS);
        let rest_from = from + weeks * 7 * DAY_MS;
        weeks * self.weekly_open_ms()
            + self
                .open_from(rest_from)
                .take_while(|&(start, _)| start < to)
                .map(|(start, end)| end.min(to) - start)
                .sum::<u64>()
    }

    /// When `open_ms` of open time will have passed from `t`: `t` advanced through the
    /// point's open hours only (`t` itself, or its next opening, for none).
    pub fn after_open(&self, t: u64, open_ms: u64) -> u64 {
        if open_ms == 0 {
            return self.next_open(t);
        }
        // Whole weeks at once, leaving a rest in (0, one week's open time].
        let weekly = self.weekly_open_ms();
        let weeks = (open_ms - 1) / weekly;
        let mut left = open_ms - weeks * weekly;
        let mut last_end = t;
        for (start, end) in self.open_from(t + weeks * 7 * DAY_MS) {
            if end - start >= left {
                return start + left;
            }
            left -= end - start;
            last_end = end;
        }
        // Not reached: fifteen days hold more than a week's open time.
        last_end
    }

    /// `t` if the point is open then, else when it next opens.
    pub fn next_open(&self, t: u64) -> u64 {
        self.open_from(t).next().map_or(t, |(start, _)| start)
    }
}

fn split_range(text: &str) -> Option<(&str, &str)> {
    text.split_once('–').or_else(|| text.split_once('-'))
}

fn minutes(hh_mm: &str) -> Option<u64> {
    let (h, m) = hh_mm.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60).then_some(h * 60 + m)
}

/// 0 = Monday: 1970-01-01 was a Thursday.
fn weekday(t: u64) -> usize {
    ((t / DAY_MS + 3) % 7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-01-05, 00:00 UTC.
    const MONDAY: u64 = 1_767_571_200_000;
    const HOUR: u64 = 3_600_000;

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
    fn open_time_between_two_instants_skips_nights_and_sundays() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        assert_eq!(hours.weekly_open_ms(), 72 * HOUR);
        let saturday = MONDAY + 5 * DAY_MS;
        // Saturday 19:00 to Monday 17:30: an hour on Saturday, nine and a half on Monday.
        let monday_evening = MONDAY + 7 * DAY_MS + 17 * HOUR + HOUR / 2;
        assert_eq!(
            hours.open_between(saturday + 19 * HOUR, monday_evening),
            19 * HOUR / 2 + HOUR
        );
        // Within a morning; backwards; a night; three weeks and a bit.
        assert_eq!(
            hours.open_between(MONDAY + 9 * HOUR, MONDAY + 11 * HOUR),
            2 * HOUR
        );
        assert_eq!(hours.open_between(MONDAY + 11 * HOUR, MONDAY), 0);
        assert_eq!(
            hours.open_between(MONDAY + 20 * HOUR, MONDAY + DAY_MS + 8 * HOUR),
            0
        );
        assert_eq!(
            hours.open_between(MONDAY + 9 * HOUR, MONDAY + 21 * DAY_MS + 10 * HOUR),
            3 * 72 * HOUR + HOUR
        );
    }

    #[test]
    fn advancing_through_open_time_is_the_inverse_of_measuring_it() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        let saturday = MONDAY + 5 * DAY_MS;
        assert_eq!(
            hours.after_open(saturday + 19 * HOUR, 10 * HOUR + HOUR / 2),
            MONDAY + 7 * DAY_MS + 17 * HOUR + HOUR / 2
        );
        // From a closed time the clock starts at the opening; nothing to wait: the opening.
        assert_eq!(
            hours.after_open(saturday + DAY_MS + 12 * HOUR, HOUR),
            MONDAY + 7 * DAY_MS + 9 * HOUR
        );
        assert_eq!(
            hours.after_open(MONDAY + 23 * HOUR, 0),
            MONDAY + DAY_MS + 8 * HOUR
        );
        // A whole week's open time from Monday 08:00 ends at Saturday's closing.
        assert_eq!(
            hours.after_open(MONDAY + 8 * HOUR, 72 * HOUR),
            saturday + 20 * HOUR
        );
        for start in (0..14 * 24).map(|h| MONDAY + h * HOUR + 17 * 60_000) {
            for open in [1, HOUR, 11 * HOUR, 72 * HOUR, 100 * HOUR] {
                let end = hours.after_open(start, open);
                assert_eq!(hours.open_between(start, end), open, "{start} {open}");
            }
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
}
