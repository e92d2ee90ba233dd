//! `demo --report DIR`: one self-contained HTML page of a run (`DIR/index.html`, no scripts,
//! no files beside it): a summary table, and for each consumable a chart (SVG drawn with
//! plotters) of what the appliance really held, what the agent believed, where the agent a day
//! earlier expected the level to be (its forecast band, P10–P90), the orders it placed and
//! the deliveries unpacked, with the hours without enough for one use shaded.
//!
//! [`Recorder`] samples the world and the agent's status once a simulated hour; [`write`]
//! draws. Colours are fixed ([`ORDER_COLOUR`] and the others) so a test can count what a chart
//! shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use replenish_agent::clock::{DAY_MS, HOUR_MS, UnixMs};
use replenish_agent::wire::StatusView;

use crate::demo::DemoSummary;
use crate::world::World;

/// What the appliance really held.
pub const TRUTH_COLOUR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// What the agent believed it held.
pub const AGENT_COLOUR: RGBColor = RGBColor(0x55, 0x55, 0x55);
/// The agent's forecast band.
pub const BAND_COLOUR: RGBColor = RGBColor(0x9e, 0xc9, 0xe8);
/// An order placed (a triangle at the top).
pub const ORDER_COLOUR: RGBColor = RGBColor(0xe6, 0x7e, 0x22);
/// A delivery unpacked (a vertical line).
pub const DELIVERY_COLOUR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// An hour without enough for one use (shaded).
pub const STOCKOUT_COLOUR: RGBColor = RGBColor(0xf4, 0xb6, 0xb6);

/// How far ahead the band looks: where the agent, this long before, expected the level to be.
const BAND_AHEAD_MS: UnixMs = DAY_MS;

/// One hour of one consumable.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When.
    pub at: UnixMs,
    /// What the appliance held.
    pub held: f64,
    /// What the agent believed it held, if it knew.
    pub believed: Option<f64>,
    /// Not enough for one use in the appliance and the cupboard.
    pub out: bool,
}

/// Where the agent expected the level to be at `at`, a day before: (P10, P90) of its forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// When.
    pub at: UnixMs,
    /// Lowest (the run-out time's early end).
    pub low: f64,
    /// Highest (its late end).
    pub high: f64,
}

/// Everything recorded about one consumable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Device id.
    pub device: String,
    /// Slot id.
    pub slot: String,
    /// Its unit's symbol.
    pub unit: String,
    /// Its capacity.
    pub capacity: f64,
    /// Hour by hour.
    pub samples: Vec<Sample>,
    /// The forecast band.
    pub expected: Vec<Expected>,
    /// Orders placed for it (a bundled order counts for each of its slots).
    pub orders: Vec<UnixMs>,
    /// Deliveries unpacked for it.
    pub deliveries: Vec<UnixMs>,
}

/// Samples a running world hour by hour.
#[derive(Debug, Default)]
pub struct Recorder {
    /// By `device/slot`.
    pub traces: BTreeMap<String, Trace>,
    deliveries_seen: BTreeMap<String, u32>,
}

impl Recorder {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one sample of every consumable the household restocks.
    pub fn record(&mut self, world: &World, status: &StatusView) {
        let now = world.clock_now();
        for (device, slot, consumable, one_use) in world.tracked() {
            let key = format!("{device}/{slot}");
            let Some(held) = world
                .appliances
                .iter()
                .find(|a| a.id().as_str() == device)
                .and_then(|a| a.device().slots.iter().find(|s| s.spec.id.as_str() == slot))
                .map(|s| (s.amount, f64::from(s.spec.capacity), s.spec.unit.symbol()))
            else {
                continue;
            };
            let (amount, capacity, unit) = held;
            let view = status
                .slots
                .iter()
                .find(|s| s.device == *device && s.slot == *slot);
            let trace = self.traces.entry(key.clone()).or_insert_with(|| Trace {
                device: device.clone(),
                slot: slot.clone(),
                unit: unit.to_string(),
                capacity,
                ..Trace::default()
            });
            trace.samples.push(Sample {
                at: now,
                held: amount,
                believed: view.and_then(|v| v.level),
                out: amount + world.cupboard(consumable) < *one_use,
            });
            if let Some(expected) =
                view.and_then(|v| expected_after(v.level?, v.predicted_empty_range_ms?, now))
            {
                trace.expected.push(expected);
            }
            let delivered = world.truth.get(&key).map_or(0, |t| t.deliveries);
            let seen = self.deliveries_seen.entry(key).or_insert(0);
            for _ in *seen..delivered {
                trace.deliveries.push(now);
            }
            *seen = delivered;
        }
    }

    /// Adds the orders the agent placed, from its status at the end.
    pub fn finish(&mut self, status: &StatusView) {
        for order in status.orders.iter().filter(|o| o.shop_order_id.is_some()) {
            for line in &order.lines {
                if let Some(trace) = self
                    .traces
                    .get_mut(&format!("{}/{}", line.device, line.slot))
                {
                    trace.orders.push(order.created_at_ms);
                }
            }
        }
        for trace in self.traces.values_mut() {
            trace.orders.sort_unstable();
        }
    }
}

/// Where a level of `level` at `now`, forecast to run out between `range` (P10, P90), is
/// expected a day later: using up `level` by the early end of the range is the fast rate (the
/// band's low side), by the late end the slow one.
fn expected_after(level: f64, range: [UnixMs; 2], now: UnixMs) -> Option<Expected> {
    let [early, late] = range;
    if early <= now || late < early {
        return None;
    }
    let left = |empty_at: UnixMs| {
        let rate = level / (empty_at - now) as f64;
        (level - rate * BAND_AHEAD_MS as f64).max(0.0)
    };
    Some(Expected {
        at: now + BAND_AHEAD_MS,
        low: left(early),
        high: left(late),
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `dir/index.html` for a run; returns its path.
pub fn write(
    dir: &Path,
    title: &str,
    description: &str,
    summary: &DemoSummary,
    recorder: &Recorder,
    start: UnixMs,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}figure{{margin:2em 0}}svg{{max-width:100%;height:auto}}\
         .key span{{display:inline-block;margin-right:1.2em}}.swatch{{display:inline-block;width:1em;height:.7em;margin-right:.3em}}\
         </style></head><body>\n<h1>{t}</h1>\n<p>{d}</p>\n<p>{days} simulated days, seed {seed}; {orders} shop orders \
         with {keys} distinct idempotency keys.</p>\n",
        t = escape(title),
        d = escape(description),
        days = summary.days,
        seed = summary.seed,
        orders = summary.shop_orders,
        keys = summary.shop_keys,
    );
    html.push_str(
        "<table><thead><tr><th>consumable</th><th>orders placed</th><th>delivered</th>\
         <th>hours out</th><th>lowest level</th></tr></thead><tbody>\n",
    );
    for c in &summary.consumables {
        let _ = writeln!(
            html,
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.0} %</td></tr>",
            escape(&c.device),
            escape(&c.slot),
            c.orders_placed,
            c.orders_delivered,
            c.stockout_hours,
            c.min_share * 100.0
        );
    }
    html.push_str("</tbody></table>\n");
    let swatch = |c: RGBColor, text: &str| {
        format!(
            "<span><i class=\"swatch\" style=\"background:#{:02x}{:02x}{:02x}\"></i>{text}</span>",
            c.0, c.1, c.2
        )
    };
    let _ = writeln!(
        html,
        "<p class=\"key\">{}{}{}{}{}{}</p>",
        swatch(TRUTH_COLOUR, "held (true)"),
        swatch(AGENT_COLOUR, "what the agent believed"),
        swatch(BAND_COLOUR, "expected a day earlier (P10–P90)"),
        swatch(ORDER_COLOUR, "order placed"),
        swatch(DELIVERY_COLOUR, "delivery unpacked"),
        swatch(STOCKOUT_COLOUR, "out: not enough for one use"),
    );
    for (key, trace) in &recorder.traces {
        let svg = chart(trace, start)?;
        let _ = writeln!(
            html,
            "<figure><figcaption><b>{}</b> ({}; capacity {:.0} {})</figcaption>\n{svg}\n</figure>",
            escape(key),
            escape(&trace.unit),
            trace.capacity,
            escape(&trace.unit)
        );
    }
    html.push_str("</body></html>\n");
    let path = dir.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One consumable's chart, as SVG text. x: days since the start; y: the slot's unit.
pub fn chart(trace: &Trace, start: UnixMs) -> anyhow::Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}/{}: {e}", trace.device, trace.slot);
    let day = |t: UnixMs| t.saturating_sub(start) as f64 / DAY_MS as f64;
    let end = trace.samples.last().map_or(1.0, |s| day(s.at)).max(1.0);
    let y_max = trace
        .samples
        .iter()
        .map(|s| s.held.max(s.believed.unwrap_or(0.0)))
        .chain(trace.expected.iter().map(|e| e.high))
        .fold(trace.capacity, f64::max)
        * 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..end, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("day")
            .y_desc(trace.unit.as_str())
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        // Hours out, shaded (one rectangle per stretch).
        let mut stretches = Vec::new();
        let mut since: Option<UnixMs> = None;
        for s in &trace.samples {
            match (s.out, since) {
                (true, None) => since = Some(s.at.saturating_sub(HOUR_MS)),
                (false, Some(from)) => {
                    stretches.push((from, s.at));
                    since = None;
                }
                _ => {}
            }
        }
        if let (Some(from), Some(last)) = (since, trace.samples.last()) {
            stretches.push((from, last.at));
        }
        chart
            .draw_series(stretches.iter().map(|&(from, to)| {
                Rectangle::new(
                    [(day(from), 0.0), (day(to), y_max)],
                    STOCKOUT_COLOUR.filled(),
                )
            }))
            .map_err(|e| err(&e))?;
        // The forecast band: for each run of hours with a forecast, a polygon along its low
        // side and back along its high side.
        let mut runs: Vec<&[Expected]> = Vec::new();
        let mut first = 0;
        for i in 1..=trace.expected.len() {
            let gap = i == trace.expected.len()
                || trace.expected[i].at > trace.expected[i - 1].at + HOUR_MS;
            if gap {
                runs.push(&trace.expected[first..i]);
                first = i;
            }
        }
        chart
            .draw_series(runs.into_iter().filter(|run| run.len() > 1).map(|run| {
                let outline: Vec<(f64, f64)> = run
                    .iter()
                    .map(|e| (day(e.at).min(end), e.low))
                    .chain(run.iter().rev().map(|e| (day(e.at).min(end), e.high)))
                    .collect();
                Polygon::new(outline, BAND_COLOUR.mix(0.6).filled())
            }))
            .map_err(|e| err(&e))?;
        for at in &trace.deliveries {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(day(*at), 0.0), (day(*at), y_max)],
                    DELIVERY_COLOUR.stroke_width(2),
                )))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(
                trace.samples.iter().map(|s| (day(s.at), s.held)),
                TRUTH_COLOUR.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                trace
                    .samples
                    .iter()
                    .filter_map(|s| s.believed.map(|b| (day(s.at), b))),
                AGENT_COLOUR.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                trace.orders.iter().map(|at| {
                    TriangleMarker::new((day(*at), y_max * 0.97), 7, ORDER_COLOUR.filled())
                }),
            )
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_spans_the_fast_and_the_slow_rate() {
        // 100 g left, empty in 2 to 4 days: after a day 50 g (fast) to 75 g (slow) are left.
        let e = expected_after(100.0, [2 * DAY_MS, 4 * DAY_MS], 0).unwrap();
        assert_eq!(e.at, DAY_MS);
        assert!((e.low - 50.0).abs() < 1e-9, "{e:?}");
        assert!((e.high - 75.0).abs() < 1e-9, "{e:?}");
        // Empty within the day at the fast rate: nothing left, not less.
        let e = expected_after(100.0, [DAY_MS / 2, 4 * DAY_MS], 0).unwrap();
        assert_eq!(e.low, 0.0);
        assert!(
            expected_after(100.0, [0, DAY_MS], 0).is_none(),
            "already empty"
        );
    }

    #[test]
    fn a_chart_draws_each_order_delivery_and_stockout() {
        let start = 0;
        let samples: Vec<Sample> = (0..72)
            .map(|h| Sample {
                at: h * HOUR_MS,
                held: 100.0 - h as f64,
                believed: Some(100.0 - h as f64),
                out: (30..40).contains(&h),
            })
            .collect();
        let trace = Trace {
            device: "fridge".into(),
            slot: "milk".into(),
            unit: "ml".into(),
            capacity: 100.0,
            samples,
            expected: vec![
                Expected {
                    at: DAY_MS,
                    low: 60.0,
                    high: 80.0,
                },
                Expected {
                    at: 2 * DAY_MS,
                    low: 30.0,
                    high: 50.0,
                },
            ],
            orders: vec![10 * HOUR_MS, 50 * HOUR_MS],
            deliveries: vec![60 * HOUR_MS],
        };
        let svg = chart(&trace, start).unwrap();
        let orange = "#E67E22";
        assert_eq!(svg.matches(orange).count(), 2, "two order triangles");
        assert_eq!(svg.matches("#2CA02C").count(), 1, "one delivery line");
        assert_eq!(svg.matches("#F4B6B6").count(), 1, "one stockout stretch");
        assert!(svg.contains("<polygon"), "the band");
    }
}
