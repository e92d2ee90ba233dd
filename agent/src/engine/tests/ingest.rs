//! What the engine refuses of telemetry, and that a refusal changes nothing.

use super::*;

#[test]
fn unknown_devices_slots_and_duplicates_are_refused_without_change() {
    let mut e = engine(Mode::Auto);
    let stranger = level_of("stranger", "beans", 1, 0, 1.0);
    assert!(matches!(
        e.handle(stranger, T0),
        Err(EngineError::UnknownDevice(_))
    ));
    let wrong_slot = level_of("coffee", "milk", 1, 0, 1.0);
    assert!(matches!(
        e.handle(wrong_slot, T0),
        Err(EngineError::UnknownSlot { .. })
    ));
    e.handle(level(1, T0, 500.0), T0).unwrap();
    assert!(matches!(
        e.handle(level(1, T0, 400.0), T0),
        Err(EngineError::Duplicate { .. })
    ));
    assert_eq!(e.slots().next().unwrap().level, Some(500.0));
}
