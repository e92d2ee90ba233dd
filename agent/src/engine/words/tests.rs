//! Tests of what the product says, and the check that docs/words.md lists every sentence as the code says it.

use super::*;

fn words<'a>(locale: Locale, zone: &TimeZone, names: &'a Names) -> Words<'a> {
    static SHOPS: [ShopInfo; 0] = [];
    static CATALOGS: BTreeMap<crate::engine::ShopId, Catalog> = BTreeMap::new();
    Words {
        locale,
        zone: zone.clone(),
        now: 0,
        names,
        shops: &SHOPS,
        catalogs: &CATALOGS,
    }
}

#[test]
fn money_is_written_as_each_locale_writes_it() {
    let zone = TimeZone::UTC;
    let names = Names::new();
    let en = words(Locale::En, &zone, &names);
    let de = words(Locale::De, &zone, &names);
    let eur = Currency::EUR;
    let chf = Currency::new("CHF").unwrap();
    let jpy = Currency::new("JPY").unwrap();
    assert_eq!(en.money(1240, eur), "€12.40");
    assert_eq!(de.money(1240, eur), "12,40\u{a0}€");
    assert_eq!(en.money(123_456_789, eur), "€1,234,567.89");
    assert_eq!(de.money(123_456_789, eur), "1.234.567,89\u{a0}€");
    assert_eq!(en.money(5, eur), "€0.05");
    assert_eq!(en.money(1240, chf), "CHF 12.40");
    assert_eq!(de.money(1240, chf), "12,40\u{a0}CHF");
    assert_eq!(en.money(1240, jpy), "¥1,240");
}

#[test]
fn amounts_use_the_units_people_use() {
    let zone = TimeZone::UTC;
    let names = Names::new();
    let en = words(Locale::En, &zone, &names);
    let de = words(Locale::De, &zone, &names);
    assert_eq!(en.amount(1500.0, Unit::G), "1.5 kg");
    assert_eq!(de.amount(1500.0, Unit::G), "1,5 kg");
    assert_eq!(en.amount(700.0, Unit::Ml), "700 ml");
    assert_eq!(en.amount(3000.0, Unit::Ml), "3 l");
    assert_eq!(en.amount(5.0, Unit::Count), "5");
    assert_eq!(en.amount(2.26, Unit::G), "2.3 g");
    assert_eq!(en.amount(367.4, Unit::G), "367 g");
    assert_eq!(en.amount(26.3, Unit::G), "26 g");
    assert_eq!(en.amount(1.66, Unit::Count), "1.7");
    assert_eq!(en.amount(1000.0, Unit::G), "1 kg");
}

#[test]
fn names_come_from_configuration_else_from_the_id() {
    let zone = TimeZone::UTC;
    let names = Names::from([("coffee_beans".to_string(), "Espresso beans".to_string())]);
    let en = words(Locale::En, &zone, &names);
    assert_eq!(en.name("coffee_beans"), "Espresso beans");
    assert_eq!(en.name("oat-milk"), "Oat milk");
    assert_eq!(en.name(""), "");
}

#[test]
fn arrival_and_timing_are_said_in_whole_days() {
    let zone = TimeZone::UTC;
    let names = Names::new();
    let en = words(Locale::En, &zone, &names);
    let outlook = Outlook {
        empty_at: Some(3 * DAY_MS),
        empty_earliest: Some(2 * DAY_MS),
        empty_latest: Some(4 * DAY_MS),
        lead_min_ms: DAY_MS,
        lead_max_ms: 2 * DAY_MS,
        bridges_until: None,
    };
    assert_eq!(en.arrival(&outlook, false), "Arrives in 1–2 days");
    assert_eq!(en.arrival(&outlook, true), "Ready to collect in 1–2 days");
    assert_eq!(en.timing(&outlook), Timing::MaybeShort);
    let late = Outlook {
        lead_min_ms: 3 * DAY_MS,
        lead_max_ms: 5 * DAY_MS,
        ..outlook
    };
    assert_eq!(
        en.timing_sentence(&late),
        "Likely to run out before it arrives"
    );
    let early = Outlook {
        lead_max_ms: DAY_MS,
        ..outlook
    };
    assert_eq!(en.timing(&early), Timing::InTime);
    assert_eq!(en.arrival(&early, false), "Arrives in 1 day");
}

#[test]
fn days_are_today_tomorrow_a_weekday_or_a_date() {
    let zone = TimeZone::UTC;
    let names = Names::new();
    let mut en = words(Locale::En, &zone, &names);
    // Thursday 1 January 1970, noon.
    en.now = 12 * crate::clock::HOUR_MS;
    assert_eq!(en.day(en.now), "today");
    assert_eq!(en.day(en.now + DAY_MS), "tomorrow");
    assert_eq!(en.day(en.now + 2 * DAY_MS), "Saturday");
    assert_eq!(en.day(en.now + 9 * DAY_MS), "Sat 10 Jan");
}

#[test]
fn lists_read_as_sentences() {
    let parts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(join_and(&parts(&["a"])), "a");
    assert_eq!(join_and(&parts(&["a", "b"])), "a and b");
    assert_eq!(join_and(&parts(&["a", "b", "c"])), "a, b and c");
    assert_eq!(group(1_234_567, ','), "1,234,567");
    assert_eq!(group(123, ','), "123");
}

/// A household with two shops, a few slots and orders in every state, on Thursday 3
/// December 2026, 10:00 in Berlin: enough to say every sentence once.
mod fixture {
    use super::*;
    use crate::clock::HOUR_MS;
    use crate::engine::forecast::Forecast;
    use replenish_commerce::{Offer, PickupPoint};
    use replenish_protocol::{Id, SensorKind, SlotSpec};

    /// 2026-12-03T09:00:00Z.
    pub const NOW: UnixMs = 1_796_288_400_000;

    fn id<T: From<Id>>(text: &str) -> T {
        Id::new(text).unwrap().into()
    }

    pub fn names() -> Names {
        Names::from([(
            "coffee-maker".to_string(),
            "Kitchen coffee maker".to_string(),
        )])
    }

    pub fn shops() -> Vec<ShopInfo> {
        vec![
            ShopInfo {
                id: "bigbox".into(),
                name: "BigBox".into(),
            },
            ShopInfo {
                id: "corner".into(),
                name: "Corner Shop".into(),
            },
        ]
    }

    fn offer(sku: &str, name: &str, consumable: &str, size: f64, unit: Unit, cents: u64) -> Offer {
        Offer {
            sku: sku.into(),
            name: name.into(),
            consumable: consumable.into(),
            pack_size: size,
            unit,
            price: Money::new(cents, Currency::EUR),
            stock: 10,
        }
    }

    pub fn catalogs() -> BTreeMap<crate::engine::ShopId, Catalog> {
        BTreeMap::from([
            (
                "bigbox".into(),
                Catalog {
                    offers: vec![
                        offer(
                            "beans-500",
                            "Espresso beans 500 g",
                            "coffee_beans",
                            500.0,
                            Unit::G,
                            899,
                        ),
                        offer(
                            "tabs-30",
                            "Dishwasher tablets, 30",
                            "dishwasher_tablets",
                            30.0,
                            Unit::Count,
                            499,
                        ),
                    ],
                    fulfilment: Vec::new(),
                },
            ),
            (
                "corner".into(),
                Catalog {
                    offers: vec![offer(
                        "milk-1l",
                        "Whole milk 1 l",
                        "milk",
                        1000.0,
                        Unit::Ml,
                        129,
                    )],
                    fulfilment: vec![pickup()],
                },
            ),
        ])
    }

    pub fn pickup() -> FulfilmentOption {
        FulfilmentOption {
            id: "collect".into(),
            name: "Click and collect".into(),
            method: Fulfilment::Pickup(PickupPoint {
                name: "Corner Shop Mitte".into(),
                address: "Hauptstraße 1, 10115 Berlin".into(),
                opening_hours: "Mon–Sat 08:00–20:00".into(),
            }),
            price: None,
            lead_days: Some((0, 1)),
        }
    }

    pub fn outlook(days_left: f64, lead: (f64, f64)) -> Outlook {
        let at = |d: f64| NOW + (d * DAY_MS as f64) as UnixMs;
        Outlook {
            empty_at: Some(at(days_left)),
            empty_earliest: Some(at(days_left * 0.7)),
            empty_latest: Some(at(days_left * 1.4)),
            lead_min_ms: (lead.0 * DAY_MS as f64) as UnixMs,
            lead_max_ms: (lead.1 * DAY_MS as f64) as UnixMs,
            bridges_until: None,
        }
    }

    pub fn slot(
        consumable: &str,
        unit: Unit,
        capacity: f32,
        level: Option<f64>,
        days_left: Option<f64>,
    ) -> SlotState {
        let mut slot = SlotState::new(
            id("coffee-maker"),
            SlotSpec {
                id: id(consumable),
                consumable: id(consumable),
                unit,
                capacity,
                sensor: SensorKind::Level,
            },
        );
        slot.level = level;
        slot.forecast = days_left.map(|d| {
            let o = outlook(d, (1.0, 2.0));
            Forecast {
                computed_at: NOW,
                level: level.unwrap_or(0.0),
                rate_per_day: level.unwrap_or(0.0) / d.max(0.1),
                daily_sd: 1.0,
                rate_sd: 0.0,
                sparse: None,
                weekday_factors: [1.0; 7],
                empty_at: (d < 365.0).then_some(o.empty_at).flatten(),
                empty_earliest: (d < 365.0).then_some(o.empty_earliest).flatten(),
                empty_latest: (d < 365.0).then_some(o.empty_latest).flatten(),
            }
        });
        slot
    }

    /// Two bags of beans from BigBox, in `state`.
    pub fn beans(state: OrderState) -> Order {
        let first = OrderItem {
            device: id("coffee-maker"),
            slot: id("coffee_beans"),
            consumable: id("coffee_beans"),
            sku: "beans-500".into(),
            packs: 2,
            pack_size: 500.0,
            unit: Unit::G,
            total: Money::new(1798, Currency::EUR),
            reason: String::new(),
            outlook: Some(outlook(3.0, (1.0, 2.0))),
        };
        let (key, shop) = ("k-o-000007".into(), "bigbox".into());
        let at = NOW - HOUR_MS;
        let mut order = Order::proposed(
            crate::engine::order::OrderId::numbered(7),
            key,
            first,
            Vec::new(),
            shop,
            at,
        );
        order.state = state;
        order.expected_delivery_at =
            matches!(state, OrderState::Placed | OrderState::Shipped).then_some(NOW + 2 * DAY_MS);
        order.delivered_at = (state == OrderState::Delivered).then_some(NOW - 3 * HOUR_MS);
        order
    }

    /// A litre of milk to collect at the Corner Shop, in `state`.
    pub fn milk(state: OrderState) -> Order {
        let mut order = beans(state);
        let line = order.first_line_mut();
        line.device = id("fridge");
        line.slot = id("milk");
        line.consumable = id("milk");
        line.sku = "milk-1l".into();
        line.packs = 1;
        line.pack_size = 1000.0;
        line.unit = Unit::Ml;
        line.total.minor = 129;
        line.outlook = Some(outlook(0.8, (0.0, 1.0)));
        order.shop = "corner".into();
        order.fulfilment = Some(pickup());
        order.expected_delivery_at = None;
        order
    }

    /// Beans with a box of dishwasher tablets joining.
    pub fn bundle() -> Order {
        let mut order = beans(OrderState::Proposed);
        order.bundle(OrderItem {
            device: id("dishwasher"),
            slot: id("tablets"),
            consumable: id("dishwasher_tablets"),
            sku: "tabs-30".into(),
            packs: 1,
            pack_size: 30.0,
            unit: Unit::Count,
            total: Money::new(499, Currency::EUR),
            reason: String::new(),
            outlook: Some(outlook(9.0, (1.0, 2.0))),
        });
        order
    }
}

/// Every sentence the product says to a household, in each locale, for the fixture.
fn every_sentence() -> String {
    use crate::clock::HOUR_MS;
    use fixture::*;
    let names = names();
    let shops = shops();
    let catalogs = catalogs();
    let zone = TimeZone::get("Europe/Berlin").unwrap();
    let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
    let mut say = |what: &'static str, f: &dyn Fn(&Words<'_>) -> String| {
        let said = Locale::ALL
            .iter()
            .map(|&locale| {
                f(&Words {
                    locale,
                    zone: zone.clone(),
                    now: NOW,
                    names: &names,
                    shops: &shops,
                    catalogs: &catalogs,
                })
            })
            .collect();
        rows.push((what, said));
    };
    let beans_slot = slot("coffee_beans", Unit::G, 1000.0, Some(367.0), Some(3.2));
    say("slot: days left", &|w| w.days_left(&beans_slot));
    let soon = slot("milk", Unit::Ml, 3000.0, Some(200.0), Some(0.5));
    say("slot: days left, less than a day", &|w| w.days_left(&soon));
    let empty = slot("milk", Unit::Ml, 3000.0, Some(0.0), Some(0.0));
    say("slot: empty", &|w| w.days_left(&empty));
    let lasting = slot("eggs", Unit::Count, 12.0, Some(5.0), Some(500.0));
    say("slot: no end in sight", &|w| w.days_left(&lasting));
    let unknown = slot("water", Unit::Ml, 1500.0, Some(1500.0), None);
    say("slot: level without a forecast", &|w| w.days_left(&unknown));
    let unread = slot("water", Unit::Ml, 1500.0, None, None);
    say("slot: no reading", &|w| w.days_left(&unread));
    let mut brews = slot("coffee_brews", Unit::Count, 0.0, None, None);
    brews.spec.sensor = replenish_protocol::SensorKind::Usage;
    brews.uses = 6;
    say("slot: only counted", &|w| w.days_left(&brews));
    say("amount", &|w| {
        format!(
            "{}, {}, {}, {}",
            w.amount(1500.0, Unit::G),
            w.amount(708.0, Unit::Ml),
            w.amount(3000.0, Unit::Ml),
            w.amount(5.0, Unit::Count)
        )
    });
    say("money", &|w| {
        format!(
            "{}, {}, {}",
            w.money(1240, Currency::EUR),
            w.money(123_456, Currency::EUR),
            w.money(1240, Currency::new("CHF").unwrap())
        )
    });
    say("when", &|w| w.when(NOW + 26 * HOUR_MS));
    say("day", &|w| {
        [0, 1, 3, 10].map(|d| w.day(NOW + d * DAY_MS)).join(", ")
    });
    for (what, outlook, pickup) in [
        ("arrival", fixture::outlook(3.0, (1.0, 2.0)), false),
        ("arrival, pickup", fixture::outlook(0.8, (0.0, 1.0)), true),
        ("arrival, today", fixture::outlook(3.0, (0.0, 0.3)), false),
    ] {
        say(what, &move |w| w.arrival(&outlook, pickup));
    }
    for (what, outlook) in [
        ("in time", fixture::outlook(6.0, (1.0, 2.0))),
        ("maybe short", fixture::outlook(2.5, (1.0, 2.0))),
        ("likely short", fixture::outlook(1.0, (2.0, 3.0))),
    ] {
        say(what, &move |w| w.timing_sentence(&outlook).to_string());
    }
    for state in [
        OrderState::Proposed,
        OrderState::Approved,
        OrderState::Placed,
        OrderState::Shipped,
        OrderState::Delivered,
        OrderState::Cancelled,
        OrderState::Failed,
    ] {
        let order = beans(state);
        let title: &'static str = match state {
            OrderState::Proposed => "order: proposed",
            OrderState::Approved => "order: approved",
            OrderState::Placed => "order: placed",
            OrderState::Shipped => "order: shipped",
            OrderState::Delivered => "order: delivered",
            OrderState::Cancelled => "order: cancelled",
            OrderState::Failed => "order: failed",
        };
        say(title, &move |w| {
            format!("{} — {}", w.order(&order), w.state(&order))
        });
    }
    for state in [
        OrderState::Proposed,
        OrderState::Shipped,
        OrderState::Delivered,
    ] {
        let order = milk(state);
        let title: &'static str = match state {
            OrderState::Proposed => "pickup order: proposed",
            OrderState::Shipped => "pickup order: ready",
            _ => "pickup order: collected",
        };
        say(title, &move |w| {
            format!("{} — {}", w.order(&order), w.state(&order))
        });
    }
    let bundle = bundle();
    say("order: bundled", &|w| w.order(&bundle));
    say("order: title", &|w| w.order_title(&bundle));
    say("order: delivery", &|w| {
        w.fulfilment(&beans(OrderState::Placed))
    });
    say("order: pickup", &|w| {
        w.fulfilment(&milk(OrderState::Placed))
    });
    let proposed = beans(OrderState::Proposed);
    let line = proposed.lines()[0].clone();
    say("order: why", &|w| w.why(&line, Some(&beans_slot), false));
    let mut bridge = line.clone();
    if let Some(outlook) = &mut bridge.outlook {
        outlook.bridges_until = Some(NOW + 4 * DAY_MS);
    }
    say("order: why, a bridge", &|w| {
        w.why(&bridge, Some(&beans_slot), true)
    });
    for (what, ask) in [
        (
            "ask: mode",
            Ask::ModeAsks {
                consumable: "coffee_beans".into(),
            },
        ),
        (
            "ask: budget",
            Ask::OverBudget {
                spent: 8_000,
                budget: 10_000,
                total: 2_598,
            },
        ),
        (
            "ask: other currency",
            Ask::OtherCurrency {
                total: replenish_commerce::Money::new(1_240, Currency::new("CHF").unwrap()),
                home: Currency::EUR,
            },
        ),
        (
            "ask: other product",
            Ask::OtherProduct {
                consumable: "coffee_beans".into(),
            },
        ),
        (
            "ask: dearer",
            Ask::Dearer {
                percent: 67,
                allowed: 25,
            },
        ),
        (
            "ask: uncollected",
            Ask::Uncollected {
                place: "Corner Shop Mitte".into(),
                days: 3,
            },
        ),
    ] {
        say(what, &move |w| w.ask(&ask));
    }
    let story = |w: &Words<'_>, order: &Order| format!("{}.", w.order(order));
    say("notice: approval prompt", &|w| {
        let ask = w.ask(&Ask::ModeAsks {
            consumable: "coffee_beans".into(),
        });
        let why = w.why(&line, Some(&beans_slot), false);
        w.prompt(&story(w, &proposed), &ask, &why, NOW + DAY_MS, false)
    });
    say("notice: order and tell", &|w| {
        let why = w.why(&line, Some(&beans_slot), false);
        w.scheduled(&story(w, &proposed), NOW + 2 * HOUR_MS, &why)
    });
    say("notice: placed", &|w| story(w, &beans(OrderState::Placed)));
    say("notice: on its way", &|w| {
        story(w, &beans(OrderState::Shipped))
    });
    say("notice: ready to collect", &|w| {
        story(w, &milk(OrderState::Shipped))
    });
    say("notice: delivered", &|w| {
        story(w, &beans(OrderState::Delivered))
    });
    say("notice: failed", &|w| {
        w.failed(&story(w, &beans(OrderState::Failed)), "out of stock")
    });
    say("notice: cancelled by the shop", &|w| {
        w.cancelled_by_shop(&beans(OrderState::Cancelled))
    });
    say("notice: cancelled as asked", &|w| {
        w.cancel_done(&beans(OrderState::Cancelled))
    });
    say("notice: too late to cancel", &|w| {
        w.cancel_refused(&beans(OrderState::Placed))
    });
    say("notice: cancel not reached", &|w| {
        w.cancel_unreachable(&beans(OrderState::Placed), "the shop did not answer")
    });
    say("notice: substituted", &|w| {
        w.substituted(
            &beans(OrderState::Placed),
            &["2 × Crema beans 500 g instead of Espresso beans 500 g".to_string()],
            &["1 × Decaf beans 500 g (not one of your chosen products)".to_string()],
        )
    });
    say("notice: waiting at the pickup point", &|w| {
        w.pickup_waiting(
            &milk(OrderState::Shipped),
            "Corner Shop Mitte, Hauptstraße 1",
            2 * DAY_MS,
        )
    });
    say("notice: nothing in stock", &|w| {
        w.nothing_in_stock(
            "coffee_beans",
            &[
                ("bigbox".to_string(), "Espresso beans 500 g".to_string()),
                ("corner".to_string(), "Crema beans 1 kg".to_string()),
            ],
        )
    });
    let beans_order = beans(OrderState::Proposed);
    let title = |kind: NoticeKind, order: Option<&Order>, w: &Words<'_>| {
        announcement_title(kind, order.map(|o| order_names(w.names, o)).as_deref())
    };
    say("title: approval", &|w| {
        title(NoticeKind::ApprovalRequested, Some(&beans_order), w)
    });
    say("title: scheduled, two items", &|w| {
        title(NoticeKind::OrderScheduled, Some(&bundle), w)
    });
    say("title: nothing in stock", &|w| {
        title(NoticeKind::NothingInStock, None, w)
    });
    say("title: ready to collect", &|w| {
        title(NoticeKind::PickupReady, Some(&beans_order), w)
    });
    say("title: cancelled by the shop", &|w| {
        title(NoticeKind::CancelledByShop, Some(&beans_order), w)
    });
    say("title: substituted by the shop", &|w| {
        title(NoticeKind::SubstitutedByShop, Some(&beans_order), w)
    });
    say("title: cancel refused", &|w| {
        title(NoticeKind::CancelRefused, Some(&beans_order), w)
    });
    say("title: could not order", &|w| {
        title(NoticeKind::OrderFailed, Some(&beans_order), w)
    });
    let mut out = String::from("| what | en | de |\n|---|---|---|\n");
    for (what, said) in rows {
        let cell = |t: &String| t.replace('|', "\\|").replace('\u{a0}', " ");
        out.push_str(&format!(
            "| {what} | {} | {} |\n",
            cell(&said[0]),
            cell(&said[1])
        ));
    }
    out
}

/// docs/words.md lists every sentence; it must match what the code says. Regenerate with
/// `UPDATE_WORDS=1 cargo test -p replenish-agent words`.
#[test]
fn every_sentence_is_listed_in_the_docs_as_the_code_says_it() {
    const START: &str = "<!-- sentences: generated by a test, do not edit -->\n";
    const END: &str = "<!-- end of sentences -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/words.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let table = every_sentence();
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        panic!("{} has no generated section", path.display());
    };
    let current = &doc[start + START.len()..end];
    if std::env::var_os("UPDATE_WORDS").is_some() {
        let updated = format!("{}{START}{table}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        current, table,
        "docs/words.md is out of date; regenerate with UPDATE_WORDS=1 cargo test -p replenish-agent words"
    );
}

proptest::proptest! {
    #[test]
    fn money_reads_back_as_the_same_amount(minor in 0u64..10_000_000_000_000) {
        let zone = TimeZone::UTC;
        let names = Names::new();
        for locale in Locale::ALL {
            let text = words(locale, &zone, &names).money(minor, Currency::EUR);
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            proptest::prop_assert_eq!(digits.parse::<u64>().ok(), Some(minor));
        }
    }
}
