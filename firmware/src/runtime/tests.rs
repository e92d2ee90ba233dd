use super::*;
use replenish_protocol::codec::{self, Encoding};
use replenish_protocol::{Channel, SlotSpec, Unit};
use std::string::String;
use std::vec::Vec;

fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}

fn birth() -> Birth {
    let mut slots = heapless::Vec::new();
    for (slot, unit, sensor) in [
        ("beans", Unit::G, SensorKind::Level),
        ("pods", Unit::Count, SensorKind::Usage),
    ] {
        slots
            .push(SlotSpec {
                id: id(slot),
                consumable: id(slot),
                unit,
                capacity: 500.0,
                sensor,
            })
            .unwrap();
    }
    Birth {
        model: id("coffee-maker"),
        firmware: heapless::String::try_from("0.1.0").unwrap(),
        boot: 42,
        slots,
        buffer: None,
        usage: None,
    }
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        report_interval_ms: 60_000,
        backoff: BackoffConfig {
            initial_ms: 1_000,
            max_ms: 8_000,
            jitter_percent: 0,
        },
    }
}

fn runtime<const N: usize>() -> DeviceRuntime<N> {
    DeviceRuntime::new(birth(), config()).unwrap()
}

fn level(remaining: f32) -> ReportBody {
    ReportBody::Level {
        slot: id("beans"),
        remaining,
    }
}

/// Sends everything queued, as a transport that always succeeds would.
fn drain<const N: usize>(rt: &mut DeviceRuntime<N>) -> Vec<Outgoing> {
    let mut sent = Vec::new();
    while let Some(out) = rt.peek() {
        assert!(rt.confirm_sent(&out));
        sent.push(out);
    }
    sent
}

fn report_of(out: &Outgoing) -> &Report {
    match &out.message {
        OutgoingMessage::Report(report) => report,
        other => panic!("not a report: {other:?}"),
    }
}

fn ack_of(out: &Outgoing) -> &Ack {
    match &out.message {
        OutgoingMessage::Ack(ack) => ack,
        other => panic!("not an ack: {other:?}"),
    }
}

#[test]
fn birth_goes_first_retained_after_every_connection() {
    let mut rt = runtime::<8>();
    assert_eq!(rt.peek(), None, "nothing while offline");
    rt.report(level(100.0), 5).unwrap();
    rt.connected(10);
    let sent = drain(&mut rt);
    assert_eq!(sent.len(), 2);
    let announced = Birth {
        buffer: Some(8),
        usage: None,
        ..birth()
    };
    assert_eq!(
        sent[0],
        Outgoing::status(Status::Online(announced.clone())),
        "the birth declares the buffer"
    );
    assert_eq!((sent[0].channel, sent[0].retain), (Channel::Status, true));
    assert_eq!((sent[1].channel, sent[1].retain), (Channel::Report, false));

    rt.disconnected();
    assert!(!rt.is_connected());
    rt.connected(20);
    assert!(rt.is_connected());
    assert_eq!(
        drain(&mut rt),
        [Outgoing::status(Status::Online(announced))]
    );
}

#[test]
fn last_will_is_offline_retained_on_status() {
    let rt = runtime::<2>();
    let will = rt.last_will();
    assert_eq!(will, Outgoing::status(Status::Offline));
    assert!(will.retain);
    assert_eq!(will.channel, Channel::Status);
    let announced = Birth {
        buffer: Some(2),
        usage: None,
        ..birth()
    };
    assert_eq!((rt.boot(), rt.birth()), (42, &announced));
}

#[test]
fn reports_get_increasing_seq_and_leave_only_when_confirmed() {
    let mut rt = runtime::<8>();
    rt.connected(0);
    drain(&mut rt);
    assert_eq!(rt.report(level(10.0), 1), Ok(1));
    assert_eq!(rt.report(level(9.0), 2), Ok(2));
    let first = rt.peek().unwrap();
    assert_eq!(rt.peek().as_ref(), Some(&first), "peek does not consume");
    assert_eq!(
        *report_of(&first),
        Report {
            boot: 42,
            seq: 1,
            ts: 0,
            body: level(10.0)
        }
    );

    // The link drops mid-send: nothing is lost, the birth goes again, then the same report.
    rt.disconnected();
    assert_eq!(rt.peek(), None);
    rt.connected(3);
    drain(&mut rt);
    assert_eq!(rt.pending_reports(), 0);
    rt.connected(4);
    rt.report(level(8.0), 5).unwrap();
    let sent = drain(&mut rt);
    let seqs: Vec<u32> = sent[1..].iter().map(|o| report_of(o).seq).collect();
    assert_eq!(seqs, [3]);
}

#[test]
fn a_report_is_not_lost_when_the_link_drops_before_the_confirmation() {
    let mut rt = runtime::<8>();
    rt.connected(0);
    drain(&mut rt);
    rt.report(level(10.0), 1).unwrap();
    let in_flight = rt.peek().unwrap();
    rt.disconnected();
    rt.connected(2);
    let sent = drain(&mut rt);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1], in_flight);
}

#[test]
fn confirming_a_report_does_not_remove_an_ack_queued_meanwhile() {
    let mut rt = runtime::<8>();
    rt.connected(0);
    drain(&mut rt);
    rt.report(level(10.0), 1).unwrap();
    let in_flight = rt.peek().unwrap();
    let cmd = Command {
        id: 7,
        body: CommandBody::ReportInterval { seconds: 30 },
    };
    let _ = rt.handle_command(&cmd, 2);
    assert!(rt.confirm_sent(&in_flight));
    assert!(!rt.confirm_sent(&in_flight), "already gone");
    let sent = drain(&mut rt);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        *ack_of(&sent[0]),
        Ack {
            id: 7,
            ok: true,
            error: None
        }
    );
    assert!(!rt.confirm_sent(&rt.last_will()));
}

#[test]
fn full_buffer_drops_the_oldest_and_reports_the_overflow_after_reconnecting() {
    let mut rt = runtime::<4>();
    for i in 0..6 {
        rt.report(level(100.0 - i as f32), i).unwrap();
    }
    assert_eq!((rt.pending_reports(), rt.dropped_reports()), (4, 2));
    rt.connected(100);
    let sent = drain(&mut rt);
    assert!(matches!(
        sent[0].message,
        OutgoingMessage::Status(Status::Online(_))
    ));
    let reports: Vec<&Report> = sent[1..].iter().map(report_of).collect();
    // seq 1, 2 dropped offline; 3 dropped to make room for the fault.
    let seqs: Vec<u32> = reports.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7]);
    let ReportBody::Fault { slot, code, detail } = &reports[3].body else {
        panic!("{:?}", reports[3])
    };
    assert_eq!(
        (slot, *code, detail.as_str()),
        (&None, FaultCode::BufferOverflow, "3 reports dropped")
    );
    assert_eq!(rt.dropped_reports(), 3);

    // Counted once: the next connection reports nothing more.
    rt.disconnected();
    rt.connected(200);
    assert_eq!(drain(&mut rt).len(), 1);
}

#[test]
fn overflow_with_room_left_does_not_drop_more() {
    let mut rt = runtime::<4>();
    for i in 0..5 {
        rt.report(level(50.0), i).unwrap();
    }
    rt.connected(10);
    let first = rt.peek().unwrap();
    assert!(rt.confirm_sent(&first));
    let r = rt.peek().unwrap();
    assert!(rt.confirm_sent(&r));
    assert_eq!(
        report_of(&r).seq,
        3,
        "seq 1 dropped offline, 2 for the fault"
    );
    rt.disconnected();
    for i in 0..5 {
        rt.report(level(50.0), 20 + i).unwrap();
    }
    // 3 queued + 5 new in 4 slots, then room for a new fault: seq 4..=8 dropped, the first
    // fault (seq 6) among them.
    rt.connected(30);
    let sent = drain(&mut rt);
    let bodies: Vec<&ReportBody> = sent[1..].iter().map(|o| &report_of(o).body).collect();
    assert!(
        matches!(bodies.last(), Some(ReportBody::Fault { detail, .. }) if detail == "5 reports dropped"),
        "{bodies:?}"
    );
}

#[test]
fn invalid_reports_are_refused() {
    let mut rt = runtime::<4>();
    assert_eq!(
        rt.report(level(-1.0), 0),
        Err(ReportError::Invalid(ValidationError::Negative("remaining")))
    );
    assert_eq!(
        rt.report(level(f32::NAN), 0),
        Err(ReportError::Invalid(ValidationError::NotFinite(
            "remaining"
        )))
    );
    let usage = ReportBody::Usage {
        slot: id("pods"),
        amount: 1.0,
        uses: 0,
    };
    assert_eq!(
        rt.report(usage, 0),
        Err(ReportError::Invalid(ValidationError::ZeroUses))
    );
    let other = ReportBody::Level {
        slot: id("milk"),
        remaining: 1.0,
    };
    assert_eq!(rt.report(other, 0), Err(ReportError::UnknownSlot));
    assert_eq!(rt.pending_reports(), 0);
    let fault = ReportBody::Fault {
        slot: None,
        code: FaultCode::Other,
        detail: Detail::new(),
    };
    assert_eq!(rt.report(fault, 0), Ok(1));
}

#[test]
fn invalid_births_are_refused() {
    let mut b = birth();
    b.slots.clear();
    assert!(matches!(
        DeviceRuntime::<4>::new(b, config()),
        Err(ValidationError::NoSlots)
    ));
    let mut b = birth();
    let dup = b.slots[0].clone();
    b.slots.push(dup).unwrap();
    assert!(matches!(
        DeviceRuntime::<4>::new(b, config()),
        Err(ValidationError::DuplicateSlot)
    ));
}

#[test]
fn tare_and_calibrate_are_handed_back_and_acked_when_completed() {
    let mut rt = runtime::<4>();
    rt.connected(0);
    drain(&mut rt);
    let tare = Command {
        id: 1,
        body: CommandBody::Tare { slot: id("beans") },
    };
    assert_eq!(
        rt.handle_command(&tare, 0),
        CommandAction::Tare {
            id: 1,
            slot: id("beans")
        }
    );
    assert_eq!(rt.peek(), None, "no ack before the tare is done");
    rt.complete_command::<&str>(1, Ok(()));
    let cal = Command {
        id: 2,
        body: CommandBody::Calibrate {
            slot: id("beans"),
            known: 250.0,
        },
    };
    assert_eq!(
        rt.handle_command(&cal, 0),
        CommandAction::Calibrate {
            id: 2,
            slot: id("beans"),
            known: 250.0
        }
    );
    rt.complete_command(2, Err(crate::CalibrationError::TooClose { span: 3 }));
    let acks: Vec<Ack> = drain(&mut rt).iter().map(|o| ack_of(o).clone()).collect();
    assert_eq!(
        acks[0],
        Ack {
            id: 1,
            ok: true,
            error: None
        }
    );
    assert!(!acks[1].ok);
    assert!(
        acks[1]
            .error
            .as_ref()
            .unwrap()
            .starts_with("reading differs from the tare by 3 counts")
    );
    for ack in &acks {
        ack.validate().unwrap();
    }
}

#[test]
fn bad_commands_are_rejected_with_a_failed_ack() {
    let mut rt = runtime::<4>();
    rt.connected(0);
    drain(&mut rt);
    let cases = [
        (CommandBody::Tare { slot: id("milk") }, "unknown slot: milk"),
        (
            CommandBody::Tare { slot: id("pods") },
            "not a level slot: pods",
        ),
        (
            CommandBody::Calibrate {
                slot: id("beans"),
                known: 0.0,
            },
            "invalid command: known must be greater than zero",
        ),
        (
            CommandBody::ReportInterval { seconds: 0 },
            "invalid command: report interval must be at least one second",
        ),
    ];
    for (i, (body, why)) in cases.into_iter().enumerate() {
        let cmd = Command { id: i as u32, body };
        let CommandAction::Rejected { error } = rt.handle_command(&cmd, 0) else {
            panic!("{cmd:?}")
        };
        assert_eq!(error, why);
        let sent = drain(&mut rt);
        let ack = ack_of(&sent[0]);
        assert_eq!(
            (ack.id, ack.ok, ack.error.as_deref()),
            (i as u32, false, Some(why))
        );
    }
    assert_eq!(rt.report_interval_ms(), 60_000);
}

#[test]
fn long_errors_are_truncated_and_old_acks_give_way() {
    let mut rt = runtime::<4>();
    let long: String = "é".repeat(100);
    for id in 0..6 {
        rt.complete_command(id, Err(long.as_str()));
    }
    rt.connected(0);
    let sent = drain(&mut rt);
    let ids: Vec<u32> = sent[1..].iter().map(|o| ack_of(o).id).collect();
    assert_eq!(ids, [2, 3, 4, 5]);
    let error = ack_of(&sent[1]).error.clone().unwrap();
    assert_eq!(error.len(), 64);
    assert_eq!(error.chars().count(), 32);
}

#[test]
fn report_interval_drives_level_heartbeats() {
    let mut rt = runtime::<4>();
    assert!(!rt.level_report_due(0), "not while offline");
    rt.connected(0);
    assert!(
        rt.level_report_due(0),
        "due at once after the first connection"
    );
    rt.mark_levels_reported(1_000);
    assert!(!rt.level_report_due(60_999));
    assert!(rt.level_report_due(61_000));
    let cmd = Command {
        id: 9,
        body: CommandBody::ReportInterval { seconds: 300 },
    };
    assert_eq!(
        rt.handle_command(&cmd, 0),
        CommandAction::ReportIntervalChanged {
            interval_ms: 300_000
        }
    );
    assert_eq!(rt.report_interval_ms(), 300_000);
    assert!(!rt.level_report_due(61_000));
    assert!(rt.level_report_due(301_000));
    rt.disconnected();
    assert!(!rt.level_report_due(1_000_000));
    rt.set_report_interval_ms(5);
    assert_eq!(rt.report_interval_ms(), 5);
}

#[test]
fn time_sync_stamps_reports_and_backfills_queued_ones() {
    let mut rt = runtime::<4>();
    assert_eq!(rt.unix_time_ms(0), None);
    rt.report(level(10.0), 1_000).unwrap();
    rt.connected(2_000);
    drain(&mut rt);
    rt.disconnected();
    rt.report(level(9.0), 3_000).unwrap();
    let sync = Command {
        id: 3,
        body: CommandBody::TimeSync {
            unix_ms: 1_767_225_600_000,
        },
    };
    assert_eq!(
        rt.handle_command(&sync, 5_000),
        CommandAction::TimeSynced {
            unix_ms: 1_767_225_600_000
        }
    );
    assert_eq!(rt.unix_time_ms(5_000), Some(1_767_225_600_000));
    rt.report(level(8.0), 6_000).unwrap();
    rt.connected(7_000);
    let sent = drain(&mut rt);
    let ts: Vec<u64> = sent.iter().skip(2).map(|o| report_of(o).ts).collect();
    assert!(matches!(
        sent[1].message,
        OutgoingMessage::Ack(Ack {
            id: 3,
            ok: true,
            ..
        })
    ));
    assert_eq!(ts, [1_767_225_598_000, 1_767_225_601_000]);
    // A time before the monotonic clock's zero clamps at 0 rather than wrapping.
    rt.set_time(10, 1_000);
    assert_eq!(rt.unix_time_ms(0), Some(0));
}

#[test]
fn reconnect_delays_back_off_and_reset_on_success() {
    let mut rt = runtime::<4>();
    let delays: Vec<u64> = (0..5).map(|_| rt.next_reconnect_delay_ms()).collect();
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 8_000]);
    rt.connected(0);
    rt.disconnected();
    assert_eq!(rt.next_reconnect_delay_ms(), 1_000);
}

#[test]
fn outgoing_messages_encode_to_what_the_agent_decodes() {
    let mut rt = runtime::<4>();
    rt.report(
        ReportBody::Refill {
            slot: id("beans"),
            before: 10.0,
            after: 480.0,
        },
        0,
    )
    .unwrap();
    rt.complete_command::<&str>(5, Ok(()));
    rt.connected(0);
    let sent = drain(&mut rt);
    let mut buf = [0u8; replenish_protocol::MAX_PAYLOAD];
    for out in &sent {
        let bytes = out.encode(&mut buf).unwrap();
        assert_eq!(codec::detect(bytes), Ok(Encoding::Binary));
        let json = codec::encode(&out.message, Encoding::Json).unwrap();
        match &out.message {
            OutgoingMessage::Status(s) => {
                assert_eq!(&codec::decode::<Status>(bytes).unwrap(), s);
                assert_eq!(&codec::decode::<Status>(&json).unwrap(), s);
            }
            OutgoingMessage::Report(r) => {
                assert_eq!(&codec::decode::<Report>(bytes).unwrap(), r);
                assert_eq!(&codec::decode::<Report>(&json).unwrap(), r);
            }
            OutgoingMessage::Ack(a) => {
                assert_eq!(&codec::decode::<Ack>(bytes).unwrap(), a);
                assert_eq!(&codec::decode::<Ack>(&json).unwrap(), a);
            }
        }
    }
    let will = rt.last_will().encode(&mut buf).unwrap().to_vec();
    assert_eq!(codec::decode::<Status>(&will).unwrap(), Status::Offline);
    assert!(rt.last_will().encode(&mut [0u8; 2]).is_err());
}
