//! Tests of the household's rules: permissions, routing (modes, budget, approval limit, currency), quiet hours, budget months, validation, rejection pauses, the audit's amounts.

use super::*;

#[test]
fn the_audit_writes_amounts_in_their_currency() {
    use replenish_commerce::{Currency, Money};
    assert_eq!(money(1234), "EUR 12.34");
    assert_eq!(money(5), "EUR 0.05");
    let chf = Currency::new("CHF").unwrap();
    assert_eq!(amount(Money::new(500, chf)), "CHF 5.00");
    let jpy = Currency::new("JPY").unwrap();
    assert_eq!(amount(Money::new(1240, jpy)), "JPY 1240");
}

fn at(text: &str) -> UnixMs {
    let ts: Timestamp = text.parse().unwrap();
    ts.as_millisecond() as UnixMs
}

fn household(rules: Rules) -> Household {
    let mut h = Household {
        rules,
        ..Household::default()
    };
    for (id, role) in [("m-1", Role::Owner), ("m-2", Role::Member)] {
        h.members.insert(
            id.into(),
            Member {
                id: id.into(),
                name: format!("name-{id}"),
                role,
                token_hash: format!("hash-{id}"),
                created_at: 0,
            },
        );
    }
    h
}

#[test]
fn members_decide_orders_and_only_owners_change_settings() {
    let h = household(Rules::default());
    let owner = Actor::Member("m-1".into());
    let member = Actor::Member("m-2".into());
    let gone = Actor::Member("m-9".into());
    assert!(h.authorize(&owner, Permission::ChangeSettings).is_ok());
    assert!(h.authorize(&member, Permission::DecideOrders).is_ok());
    assert!(matches!(
        h.authorize(&member, Permission::ChangeSettings),
        Err(Denied::NotOwner { .. })
    ));
    assert!(matches!(
        h.authorize(&gone, Permission::DecideOrders),
        Err(Denied::UnknownMember(_))
    ));
    assert_eq!(h.member_by_token_hash("hash-m-2").unwrap().id, "m-2");
    assert!(h.member_by_token_hash("hash-m-3").is_none());
}

#[test]
fn modes_route_orders() {
    let mut rules = Rules::default();
    rules.consumables.insert(
        "beans".into(),
        ConsumableRules {
            mode: Some(Mode::Approve),
            risk: None,
        },
    );
    rules.consumables.insert(
        "milk".into(),
        ConsumableRules {
            mode: Some(Mode::Notify),
            risk: None,
        },
    );
    rules.consumables.insert(
        "eggs".into(),
        ConsumableRules {
            mode: Some(Mode::Off),
            risk: None,
        },
    );
    rules.auto_approve_below_cents = 500;
    let h = household(rules);
    assert_eq!(h.route(&["water"], eur(10_000), eur(0), 0), Route::Place);
    assert!(matches!(
        h.route(&["beans"], eur(1_500), eur(0), 0),
        Route::Ask { .. }
    ));
    assert_eq!(h.route(&["beans"], eur(499), eur(0), 0), Route::Place);
    assert_eq!(
        h.route(&["milk"], eur(100), eur(0), 0),
        Route::Hold { until: 2 * HOUR_MS }
    );
    assert_eq!(h.route(&["eggs"], eur(100), eur(0), 0), Route::Skip);
    // A bundle follows its strictest line.
    assert!(matches!(
        h.route(&["water", "beans"], eur(10_000), eur(0), 0),
        Route::Ask { .. }
    ));
    assert!(matches!(
        h.route(&["water", "milk"], eur(10_000), eur(0), 0),
        Route::Hold { .. }
    ));
}

use replenish_commerce::Currency;

fn eur(minor: u64) -> Money {
    Money::new(minor, Currency::EUR)
}

#[test]
fn budget_overruns_always_ask_and_never_place_themselves() {
    let mut rules = Rules {
        monthly_budget_cents: Some(5_000),
        on_expiry: ExpiryDefault::Order,
        ..Rules::default()
    };
    rules.auto_approve_below_cents = 100_000;
    let h = household(rules);
    assert_eq!(h.route(&["beans"], eur(1_000), eur(4_000), 0), Route::Place);
    match h.route(&["beans"], eur(1_001), eur(4_000), 0) {
        Route::Ask { why, on_expiry } => {
            assert_eq!(on_expiry, ExpiryDefault::Skip);
            assert_eq!(
                why,
                super::super::words::Ask::OverBudget {
                    spent: 4_000,
                    budget: 5_000,
                    total: 1_001
                }
            );
        }
        other => panic!("expected ask, got {other:?}"),
    }
}

#[test]
fn an_order_in_another_currency_is_never_weighed_against_the_budget_or_the_limit() {
    let chf = |minor| Money::new(minor, Currency::new("CHF").unwrap());
    let mut rules = Rules {
        monthly_budget_cents: Some(5_000),
        on_expiry: ExpiryDefault::Order,
        ..Rules::default()
    };
    rules.auto_approve_below_cents = 100_000;
    let h = household(rules.clone());
    // 10 francs would fit the 50 euros left if read as euros: a person decides all the
    // same, and nobody's silence places it.
    match h.route(&["beans"], chf(1_000), eur(0), 0) {
        Route::Ask { why, on_expiry } => {
            assert_eq!(on_expiry, ExpiryDefault::Skip);
            assert_eq!(
                why,
                super::super::words::Ask::OtherCurrency {
                    total: chf(1_000),
                    home: Currency::EUR
                }
            );
        }
        other => panic!("expected ask, got {other:?}"),
    }
    // Without a budget, the approval limit (in euros) does not let it through either.
    rules.monthly_budget_cents = None;
    rules.default_mode = Mode::Approve;
    let h = household(rules);
    assert!(matches!(
        h.route(&["beans"], chf(100), eur(0), 0),
        Route::Ask { .. }
    ));
    assert_eq!(h.route(&["beans"], eur(100), eur(0), 0), Route::Place);
}

#[test]
fn quiet_hours_delay_prompts_to_their_end_in_local_time() {
    let rules = Rules {
        quiet_hours: Some(QuietHours::parse("22:00-07:00").unwrap()),
        timezone: "Europe/Berlin".into(),
        ..Rules::default()
    };
    // 23:30 in Berlin (UTC+1 in November) waits until 07:00 Berlin = 06:00 UTC.
    let late = at("2026-11-23T22:30:00Z");
    assert_eq!(rules.prompt_time(late), at("2026-11-24T06:00:00Z"));
    // 03:15 Berlin, past midnight, also waits until 07:00.
    assert_eq!(
        rules.prompt_time(at("2026-11-24T02:15:20Z")),
        at("2026-11-24T06:00:00Z")
    );
    // 12:00 Berlin goes out at once.
    let noon = at("2026-11-23T11:00:00Z");
    assert_eq!(rules.prompt_time(noon), noon);
    // Without quiet hours, always at once.
    assert_eq!(Rules::default().prompt_time(late), late);
    // Summer time ends inside the quiet hours (03:00 CEST -> 02:00 CET on 26 October):
    // they still end at 03:00 on the wall clock, now 02:00 UTC.
    let dst = Rules {
        quiet_hours: Some(QuietHours::parse("06:25-03:00").unwrap()),
        timezone: "Europe/Berlin".into(),
        ..Rules::default()
    };
    assert_eq!(
        dst.prompt_time(at("2025-10-25T04:25:00Z")),
        at("2025-10-26T02:00:00Z")
    );
}

#[test]
fn budget_months_follow_the_household_time_zone() {
    let rules = Rules {
        timezone: "Europe/Berlin".into(),
        ..Rules::default()
    };
    // 23:30 UTC on 31 October is already November in Berlin.
    assert_eq!(rules.month_of(at("2026-10-31T23:30:00Z")), (2026, 11));
    assert_eq!(
        Rules::default().month_of(at("2026-10-31T23:30:00Z")),
        (2026, 10)
    );
}

#[test]
fn rules_are_validated_with_what_to_fix() {
    let bad_zone = Rules {
        timezone: "Mars/Olympus".into(),
        ..Rules::default()
    };
    assert_eq!(bad_zone.validate().unwrap_err().field, "timezone");
    let bad_timeout = Rules {
        approval_timeout_hours: 0,
        ..Rules::default()
    };
    assert_eq!(
        bad_timeout.validate().unwrap_err().field,
        "approval_timeout_hours"
    );
    assert!(Rules::default().validate().is_ok());
    assert!(QuietHours::parse("7-8").is_err());
    assert!(QuietHours::parse("25:00-07:00").is_err());
    assert_eq!(
        QuietHours::parse("22:00-07:30").unwrap().to_string(),
        "22:00-07:30"
    );
}

#[test]
fn rejection_reasons_pause_for_different_times() {
    let rules = Rules::default();
    assert_eq!(RejectReason::StillHaveSome.pause_ms(&rules), 72 * HOUR_MS);
    assert!(RejectReason::NotNeeded.pause_ms(&rules) > RejectReason::Other.pause_ms(&rules));
    assert_eq!(
        "still_have_some".parse::<RejectReason>().unwrap(),
        RejectReason::StillHaveSome
    );
    assert!("maybe".parse::<RejectReason>().is_err());
}

proptest::proptest! {
    /// A prompt never goes out earlier than asked, never inside quiet hours, and never
    /// waits a whole day.
    #[test]
    fn prompts_leave_quiet_hours_soon_and_never_early(
        start in 0u16..1440,
        length in 1u16..1439,
        at in 1_700_000_000_000u64..1_900_000_000_000,
        zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    ) {
        let quiet = QuietHours { start_minute: start, end_minute: (start + length) % 1440 };
        let rules = Rules { quiet_hours: Some(quiet), timezone: zone.into(), ..Rules::default() };
        let out = rules.prompt_time(at);
        proptest::prop_assert!(out >= at);
        proptest::prop_assert!(out - at <= 24 * HOUR_MS);
        let minute = local_minute(out, &rules);
        // Daylight-saving jumps can move the wall clock; allow the end minute itself, and an
        // end that fell in a spring-forward gap (02:00 on the night clocks go to 03:00):
        // the instant the gap closes, when the wall clock jumps.
        let jumped = minute != (local_minute(out - 60_000, &rules) + 1) % 1440;
        proptest::prop_assert!(!quiet.contains(minute) || minute == quiet.end_minute || jumped,
            "{zone} {quiet} at {at} -> {out} ({minute})");
    }
}

fn local_minute(at: UnixMs, rules: &Rules) -> u16 {
    let local = to_zoned(at, &rules.zone()).unwrap();
    local.hour() as u16 * 60 + local.minute() as u16
}

/// Found by the property above: quiet 02:30-02:00 in Berlin, asked at 02:30 on the Saturday
/// before clocks go forward; 02:00 on Sunday does not exist, so quiet hours end at 03:00
/// summer time, the first instant after 01:59 (01:00 UTC).
#[test]
fn quiet_hours_ending_in_the_spring_forward_gap_end_when_it_closes() {
    let quiet = QuietHours {
        start_minute: 150,
        end_minute: 120,
    };
    let rules = Rules {
        quiet_hours: Some(quiet),
        timezone: "Europe/Berlin".into(),
        ..Rules::default()
    };
    // 2029-03-24 01:30 UTC (02:30 CET) -> 2029-03-25 01:00 UTC (03:00 CEST).
    assert_eq!(rules.prompt_time(1_869_010_200_000), 1_869_094_800_000);
}
