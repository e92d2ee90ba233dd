//! When the sandbox's household collects a click-and-collect order: on its way home, from
//! 17:30 on a day the pickup point is open (the point's hours are
//! [`replenish_commerce::OpeningHours`]). Times are the shop's clock (UTC in the sandbox, as the
//! demo's household).

use replenish_agent::clock::{DAY_MS, MINUTE_MS, UnixMs};
use replenish_commerce::OpeningHours;

/// The sandbox's household passes its pickup point on the way home, from 17:30.
const COLLECT_FROM: UnixMs = (17 * 60 + 30) * MINUTE_MS;

/// When the sandbox's household collects an order ready at `ready` from a point open at
/// `hours`: on its way home, at 17:30 or later on a day the point is open (at once if it is
/// ready later that evening, while open); at a point that closes before 17:30, as soon as it is
/// open.
pub fn collection(hours: &OpeningHours, ready: UnixMs) -> UnixMs {
    let midnight = ready - ready % DAY_MS;
    (0..8)
        .map(|d| (midnight + d * DAY_MS + COLLECT_FROM).max(ready))
        .find(|&t| hours.is_open(t))
        .unwrap_or_else(|| hours.next_open(ready))
}

#[cfg(test)]
mod tests {
    use super::*;
    use replenish_agent::clock::HOUR_MS as HOUR;

    /// Monday 2026-01-05, 00:00 UTC.
    const MONDAY: UnixMs = 1_767_571_200_000;

    #[test]
    fn the_household_collects_on_its_way_home_while_the_point_is_open() {
        let hours = OpeningHours::parse("Mon–Sat 08:00–20:00").unwrap();
        let evening = MONDAY + 17 * HOUR + 30 * MINUTE_MS;
        // Ready in the morning: that evening. Ready at 19:00: at once. Ready on Monday at
        // 08:00 after a Saturday evening order: Monday evening.
        assert_eq!(collection(&hours, MONDAY + 8 * HOUR), evening);
        assert_eq!(collection(&hours, MONDAY + 19 * HOUR), MONDAY + 19 * HOUR);
        assert_eq!(
            collection(&hours, MONDAY + 7 * DAY_MS + 8 * HOUR),
            evening + 7 * DAY_MS
        );
        // Ready after closing on Saturday: Monday evening, not Sunday.
        let saturday = MONDAY + 5 * DAY_MS;
        assert_eq!(
            collection(&hours, saturday + 21 * HOUR),
            evening + 7 * DAY_MS
        );
        // A point open only in the morning: as soon as it is open.
        let mornings = OpeningHours::parse("Mon–Fri 08:00–12:00").unwrap();
        assert_eq!(collection(&mornings, MONDAY + 9 * HOUR), MONDAY + 9 * HOUR);
    }
}
