//! The learning-curve plot written by `nn-cli fit --out` (SVG, via plotters).

use std::path::Path;

use nn_train::History;
use plotters::prelude::*;

use crate::error::{CliError, Result};

/// Draws loss (left) and accuracy (right, when recorded), training and validation,
/// per epoch, into an SVG file at `path` (written atomically).
pub fn learning_curves(history: &History, path: &Path) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| CliError::io(path, e))?;
        let has_acc = history.epochs.iter().any(|e| e.get("accuracy").is_some());
        let panels = if has_acc { root.split_evenly((1, 2)) } else { vec![root.clone()] };
        let charts: &[(&str, &str)] =
            if has_acc { &[("loss", "val_loss"), ("accuracy", "val_accuracy")] } else { &[("loss", "val_loss")] };
        for (panel, (train_key, val_key)) in panels.iter().zip(charts) {
            let train = history.series(train_key);
            let val = history.series(val_key);
            let epochs: Vec<f64> = history.epochs.iter().map(|e| e.epoch as f64).collect();
            let finite = train.iter().chain(&val).copied().filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let (lo, hi) = if lo.is_finite() { (lo, if hi > lo { hi } else { lo + 1.0 }) } else { (0.0, 1.0) };
            let pad = (hi - lo) * 0.05;
            let x_max = epochs.last().copied().unwrap_or(1.0).max(2.0);
            let mut chart = ChartBuilder::on(panel)
                .caption(*train_key, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(1.0..x_max, (lo - pad)..(hi + pad))
                .map_err(|e| CliError::io(path, e))?;
            chart.configure_mesh().x_desc("epoch").draw().map_err(|e| CliError::io(path, e))?;
            for (series, name, color) in [(&train, "training", BLUE), (&val, "validation", RED)] {
                let points: Vec<(f64, f64)> =
                    epochs.iter().zip(series.iter()).filter(|(_, v)| v.is_finite()).map(|(&x, &y)| (x, y)).collect();
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(|e| CliError::io(path, e))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(|e| CliError::io(path, e))?;
        }
        root.present().map_err(|e| CliError::io(path, e))?;
    }
    nn_tensor::io::write_atomic(path, |w| w.write_all(svg.as_bytes())).map_err(|e| CliError::io(path, e))
}
