//! Property tests of [`LevelDetector`] over simulated load-cell traces.
//!
//! A trace is a random sequence of events on a 1000 g slot sampled at the default rate: scoops
//! of consumption, refills, a hand pressing the shelf, the container lifted (sometimes poured
//! from) and put back, idle time. The sensor adds gaussian-like noise (σ up to 0.4 g), a slow
//! bounded drift (up to ±0.1 g, load-cell creep) and rare single-sample spikes of 30–300 g.
//! Every event ends with the slot left alone for 6–10 s, as between two uses of a kitchen.

use super::{Detection, DetectorConfig, LevelDetector};
use proptest::prelude::*;
use std::vec::Vec;

const CAPACITY: f32 = 1000.0;

#[derive(Debug, Clone)]
enum Event {
    /// Take this much out (a scoop of beans).
    Consume(f32),
    /// Add this much (capped at the capacity).
    Refill(f32),
    /// Something presses (or briefly lifts) the shelf for `len` samples.
    Press { delta: f32, len: usize },
    /// The container (of empty weight `container`, tared out) is lifted for `len` samples, then
    /// put back with `poured` less in it.
    Lift {
        container: f32,
        len: usize,
        poured: f32,
    },
    /// Nothing happens for a while.
    Idle(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        5 => (5.0f32..60.0).prop_map(Event::Consume),
        1 => (50.0f32..800.0).prop_map(Event::Refill),
        2 => (-40.0f32..400.0, 1usize..=20).prop_map(|(delta, len)| Event::Press { delta, len }),
        2 => (30.0f32..300.0, 5usize..=300, prop_oneof![Just(0.0f32), 5.0f32..80.0])
            .prop_map(|(container, len, poured)| Event::Lift { container, len, poured }),
        1 => (20usize..200).prop_map(Event::Idle),
    ]
}

/// SplitMix64: a small deterministic generator for the sensor's noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// Approximately standard normal: the sum of four uniforms (Irwin–Hall), scaled.
    fn gauss(&mut self) -> f32 {
        let sum: f32 = (0..4).map(|_| self.range(-1.0, 1.0)).sum();
        sum / 1.154_700_5
    }
}

/// A noisy, drifting, occasionally glitching load cell.
struct Sensor {
    rng: Rng,
    sigma: f32,
    drift: f32,
    max_drift: f32,
    spike_probability: f32,
}

impl Sensor {
    fn read(&mut self, truth: f32) -> f32 {
        self.drift =
            (self.drift + self.rng.range(-0.002, 0.002)).clamp(-self.max_drift, self.max_drift);
        let mut reading = truth + self.drift + self.sigma * self.rng.gauss();
        if self.rng.unit() < self.spike_probability {
            let spike = self.rng.range(30.0, 300.0);
            reading += if self.rng.unit() < 0.5 { spike } else { -spike };
        }
        reading
    }
}

/// What an event should produce.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Initial(f32),
    Consumed(f32),
    Refilled,
    Nothing,
}

struct Trace {
    /// Per segment (the initial settle, then one per event): what should be detected, and what
    /// was.
    segments: Vec<(Expect, Vec<Detection>)>,
    true_consumed: f32,
}

fn run(start: f32, events: &[Event], mut sensor: Sensor, config: DetectorConfig) -> Trace {
    let mut detector = LevelDetector::new(config);
    let mut segments = Vec::new();
    let mut level = start;
    let mut true_consumed = 0.0;

    // Pushes one reading of `truth` into the detector, recording detections in the segment.
    let mut feed = |truth: f32, found: &mut Vec<Detection>, sensor: &mut Sensor| {
        found.extend(detector.push(sensor.read(truth)));
    };

    let mut found = Vec::new();
    for _ in 0..60 {
        feed(level, &mut found, &mut sensor);
    }
    segments.push((Expect::Initial(start), found));

    for event in events {
        let mut found = Vec::new();
        let expect = match *event {
            Event::Consume(amount) if amount <= level => {
                let steps = sensor.rng.range_usize(1, 5);
                for step in 1..steps {
                    feed(
                        level - amount * step as f32 / steps as f32,
                        &mut found,
                        &mut sensor,
                    );
                }
                level -= amount;
                true_consumed += amount;
                Expect::Consumed(amount)
            }
            Event::Refill(amount) if level + 10.0 <= CAPACITY => {
                let target = (level + amount).min(CAPACITY);
                let steps = sensor.rng.range_usize(1, 11);
                for step in 1..steps {
                    feed(
                        level + (target - level) * step as f32 / steps as f32,
                        &mut found,
                        &mut sensor,
                    );
                }
                level = target;
                Expect::Refilled
            }
            Event::Press { delta, len } => {
                for _ in 0..len {
                    feed(level + delta, &mut found, &mut sensor);
                }
                Expect::Nothing
            }
            Event::Lift {
                container,
                len,
                poured,
            } => {
                for _ in 0..len {
                    feed(-container, &mut found, &mut sensor);
                }
                if poured > 0.0 && poured <= level {
                    level -= poured;
                    true_consumed += poured;
                    Expect::Consumed(poured)
                } else {
                    Expect::Nothing
                }
            }
            Event::Idle(len) => {
                for _ in 0..len {
                    feed(level, &mut found, &mut sensor);
                }
                Expect::Nothing
            }
            // A scoop from a nearly empty slot or a refill of a full one: nothing happens.
            Event::Consume(_) | Event::Refill(_) => Expect::Nothing,
        };
        let hold = sensor.rng.range_usize(60, 101);
        for _ in 0..hold {
            feed(level, &mut found, &mut sensor);
        }
        segments.push((expect, found));
    }
    Trace {
        segments,
        true_consumed,
    }
}

fn check(trace: &Trace) -> Result<(), TestCaseError> {
    let mut detected = 0.0;
    for (i, (expect, found)) in trace.segments.iter().enumerate() {
        match (*expect, &found[..]) {
            (Expect::Initial(level), [Detection::Initial { level: got }]) => {
                prop_assert!(
                    (got - level).abs() < 1.0,
                    "segment {i}: initial {got} for {level}"
                );
            }
            (Expect::Consumed(amount), [Detection::Consumed { amount: got, .. }]) => {
                prop_assert!(
                    (got - amount).abs() < 1.0,
                    "segment {i}: consumed {got} for {amount}"
                );
                detected += got;
            }
            (Expect::Refilled, [Detection::Refilled { before, after }]) => {
                prop_assert!(after > before, "segment {i}");
            }
            (Expect::Nothing, []) => {}
            _ => prop_assert!(
                false,
                "segment {i}: expected {expect:?}, detected {found:?}"
            ),
        }
    }
    let truth = trace.true_consumed;
    prop_assert!(
        (detected - truth).abs() <= 0.02 * truth,
        "detected {detected} g of {truth} g consumed"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every refill is a refill, every consumption a consumption, every transient nothing; the
    /// total detected consumption is within 2% of the truth.
    #[test]
    fn detector_classifies_noisy_traces(
        start in 300.0f32..=CAPACITY,
        events in proptest::collection::vec(event(), 15..40),
        seed: u64,
        sigma in 0.0f32..0.4,
        max_drift in 0.0f32..0.1,
        spike_probability in 0.0f32..0.01,
    ) {
        let sensor = Sensor { rng: Rng(seed), sigma, drift: 0.0, max_drift, spike_probability };
        let trace = run(start, &events, sensor, DetectorConfig::default());
        prop_assume!(trace.true_consumed >= 100.0);
        check(&trace)?;
    }
}

/// The same check on one long, fixed trace, so a regression shows without proptest's shrinking.
#[test]
fn a_long_day_in_the_kitchen() {
    let mut events = Vec::new();
    for i in 0..200 {
        events.push(match i % 9 {
            0 | 3 | 6 => Event::Consume(9.0 + (i % 7) as f32),
            1 => Event::Press {
                delta: 150.0,
                len: 15,
            },
            2 => Event::Lift {
                container: 80.0,
                len: 120,
                poured: if i % 2 == 0 { 30.0 } else { 0.0 },
            },
            4 => Event::Idle(150),
            5 => Event::Consume(40.0),
            7 => Event::Press {
                delta: -20.0,
                len: 10,
            },
            _ => Event::Refill(500.0),
        });
    }
    let sensor = Sensor {
        rng: Rng(7),
        sigma: 0.4,
        drift: 0.0,
        max_drift: 0.1,
        spike_probability: 0.01,
    };
    let trace = run(800.0, &events, sensor, DetectorConfig::default());
    assert!(trace.true_consumed > 1_500.0, "{}", trace.true_consumed);
    if let Err(e) = check(&trace) {
        panic!("{e}");
    }
}
