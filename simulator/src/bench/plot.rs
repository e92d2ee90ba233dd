//! The bench's picture: stockouts against days of supply, one colour per policy: a large dot
//! for all runs, a small one per archetype. Lower left is better. SVG, so no fonts are needed.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::FrontierPoint;
use super::metrics::{Policies, Summary};
use super::policies::PolicyKind;

fn colour(kind: PolicyKind) -> RGBColor {
    match kind {
        PolicyKind::Agent => RGBColor(0x1f, 0x77, 0xb4),
        PolicyKind::Threshold => RGBColor(0xd6, 0x27, 0x28),
        PolicyKind::ReorderPoint => RGBColor(0xff, 0x7f, 0x0e),
        PolicyKind::Oracle => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

/// Writes the plot of `summary` to `path` as SVG: one panel for all runs, then one per
/// scenario name (archetype or household), each with its own scale.
pub fn write_svg(path: &Path, summary: &Summary, title: &str) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let mut panels = vec![("all runs".to_string(), summary.policies)];
    panels.extend(summary.breakdown.iter().map(|(k, v)| (k.clone(), *v)));
    let columns = 3;
    let rows = panels.len().div_ceil(columns);
    let size = (1200, 60 + 340 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(
            &format!("{title}: stockout item-days per 1000 (y) against mean days of supply (x); lower left is better"),
            ("sans-serif", 18),
        )
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((rows, columns));
    for ((name, policies), area) in panels.iter().zip(areas.iter()) {
        let points: Vec<(PolicyKind, f64, f64)> = PolicyKind::ALL
            .iter()
            .map(|&k| {
                let m = policies.get(k);
                let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
                (
                    k,
                    finite(m.mean_days_of_supply),
                    finite(m.stockout_item_days_per_1000),
                )
            })
            .collect();
        let x_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.25;
        let y_max = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.6;
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        let (width, _) = area.dim_in_pixel();
        for (i, (kind, x, y)) in points.into_iter().enumerate() {
            let c = colour(kind);
            chart
                .draw_series(std::iter::once(Circle::new((x, y), 6, c.filled())))
                .map_err(|e| err(&e))?;
            let label = format!("{}: {y:.1} per 1000, {x:.1} d", kind.name());
            let at = (width as i32 - 245, 32 + 16 * i as i32);
            area.draw(&Text::new(
                label,
                at,
                ("monospace", 12).into_font().color(&c),
            ))
            .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Writes the agent's risk frontier to `path` as SVG: stockouts (log scale) against days of
/// supply at each risk setting, a line through them, and the baselines as dots (the oracle,
/// which never runs out, on the bottom edge).
pub fn write_frontier_svg(
    path: &Path,
    points: &[FrontierPoint],
    baselines: &Policies,
    title: &str,
) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let floor = 0.3;
    let at = |m: &super::metrics::PolicyMetrics| {
        (
            m.mean_days_of_supply,
            m.stockout_item_days_per_1000.max(floor),
        )
    };
    let mut all: Vec<(f64, f64)> = points.iter().map(|p| at(&p.agent)).collect();
    all.extend(PolicyKind::ALL.iter().map(|&k| at(baselines.get(k))));
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.15;
    let x_min = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) * 0.85;
    let y_max = all.iter().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    // Labels start just right of their dot.
    let nudge = (x_max - x_min) * 0.01;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, (floor..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean days of supply")
        .y_desc("stockout item-days per 1000 (log)")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    let agent = colour(PolicyKind::Agent);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| at(&p.agent)),
            agent.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    for p in points {
        let (x, y) = at(&p.agent);
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 5, agent.filled())))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("risk {}", p.risk),
                (x + nudge, y * 1.15),
                ("sans-serif", 13).into_font().color(&agent),
            )))
            .map_err(|e| err(&e))?;
    }
    for kind in [
        PolicyKind::Threshold,
        PolicyKind::ReorderPoint,
        PolicyKind::Oracle,
    ] {
        let c = colour(kind);
        let m = baselines.get(kind);
        let (x, y) = at(m);
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 7, c.filled())))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!(
                    "{} ({:.1} per 1000)",
                    kind.name(),
                    m.stockout_item_days_per_1000
                ),
                (x + nudge, y * 1.15),
                ("sans-serif", 13).into_font().color(&c),
            )))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
