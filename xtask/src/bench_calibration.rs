//! `cargo xtask bench calibration`: the drift monitor's false-alarm rate on splits without
//! drift, and its power against a known shift.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use autodl_artifacts::context::{RunContext, splitmix64};
use autodl_artifacts::drift::FeatureReference;
use autodl_artifacts::table::{ColumnValues, RawTable};
use serde::Serialize;

/// Settings of `cargo xtask bench calibration`.
#[derive(Debug, Clone)]
pub struct CalibrationArgs {
    pub data: PathBuf,
    pub target: Option<String>,
    pub splits: usize,
    pub current_rows: usize,
    pub shift: f64,
    pub shifted_features: usize,
    pub alpha: f64,
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
struct ShiftPower {
    column: String,
    /// Share of splits in which this column was flagged after the shift.
    power: f64,
    /// Share of splits in which the overall flag was raised after the shift.
    overall: f64,
}

#[derive(Debug, Serialize)]
struct CalibrationReport {
    data: String,
    splits: usize,
    reference_rows: usize,
    current_rows: usize,
    alpha: f64,
    monitored_columns: usize,
    false_alarms: usize,
    false_alarm_rate: f64,
    /// Wilson 95% interval of the false-alarm rate.
    false_alarm_interval: [f64; 2],
    /// Splits in which some single column was flagged without any drift, per column.
    false_alarms_by_column: Vec<(String, usize)>,
    shift_in_sd: f64,
    power: Vec<ShiftPower>,
}

/// Wilson score interval for `k` successes in `n` trials at 95%.
fn wilson(k: usize, n: usize) -> [f64; 2] {
    let (k, n, z) = (k as f64, n as f64, 1.959_963_984_540_054);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// A seeded permutation of `0..n` (Fisher–Yates on splitmix64).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = splitmix64(state);
        let j = (state % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    idx
}

/// `table` with `shift` added to every present value of numeric column `name`.
fn shifted(table: &RawTable, name: &str, shift: f64) -> Result<RawTable> {
    let mut t = table.clone();
    let col = t
        .columns
        .iter_mut()
        .find(|c| c.name == name)
        .context("shifted column")?;
    let values: Vec<Option<f64>> = match &col.values {
        ColumnValues::Numeric(v) => v.iter().map(|x| x.map(|x| x + shift)).collect(),
        text => (0..text.len())
            .map(|r| {
                text.label_ref(r)
                    .and_then(|s| autodl_artifacts::transform::parse_number(&s))
                    .map(|x| x + shift)
            })
            .collect(),
    };
    col.values = ColumnValues::Numeric(values);
    Ok(t)
}

/// Runs the calibration and prints its tables.
pub fn calibration(args: &CalibrationArgs) -> Result<()> {
    if args.splits == 0 || args.current_rows == 0 || !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!("need --splits ≥ 1, --current-rows ≥ 1 and 0 < --alpha < 1");
    }
    let loaded = crate::data::load(&args.data, args.target.clone(), None)?;
    let table = &loaded.table;
    let n = table.n_rows();
    if n < 2 * args.current_rows {
        bail!(
            "{} has {n} rows; --current-rows {} needs at least twice as many",
            args.data.display(),
            args.current_rows
        );
    }
    // The fitted transform says which columns the monitor reads and how (as in a run).
    let cfg = autodl_data::PrepareConfig::new(&loaded.target);
    let scratch = std::env::temp_dir().join(format!("autodl-calibration-{}", std::process::id()));
    let prepared = autodl_data::prepare(&cfg, table, &loaded.sha, &RunContext::new(1, &scratch))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let transform = &prepared.transform;
    let drift_cfg = autodl_monitor::DriftConfig { alpha: args.alpha };
    let reference_rows = n - args.current_rows;
    eprintln!(
        "{}: {} splits of {n} rows into {reference_rows} reference and {} current rows, alpha {}",
        args.data.display(),
        args.splits,
        args.current_rows,
        args.alpha
    );
    let mut false_alarms = 0;
    let mut by_column: std::collections::BTreeMap<String, usize> = Default::default();
    let mut shifted_cols: Vec<String> = Vec::new();
    let mut hits: Vec<(usize, usize)> = Vec::new();
    let mut monitored = 0;
    for s in 0..args.splits {
        let idx = permutation(n, splitmix64(s as u64 + 1));
        let current = table.take(&idx[..args.current_rows]);
        let reference_table = table.take(&idx[args.current_rows..]);
        let reference =
            autodl_monitor::build_reference(transform, &reference_table, &format!("split {s}"))?;
        monitored = reference.features.len();
        if shifted_cols.is_empty() {
            // Up to --shifted-features numeric columns, evenly spaced among them.
            let numeric: Vec<String> = reference
                .features
                .iter()
                .filter(|f| matches!(f, FeatureReference::Numeric { .. }))
                .map(|f| f.column().to_string())
                .collect();
            let k = args.shifted_features.min(numeric.len());
            shifted_cols = (0..k)
                .map(|i| numeric[i * numeric.len() / k].clone())
                .collect();
            hits = vec![(0, 0); k];
        }
        let report = autodl_monitor::detect(&reference, &current, &drift_cfg)?;
        if report.drift_detected {
            false_alarms += 1;
            for c in &report.drifted_columns {
                *by_column.entry(c.clone()).or_default() += 1;
            }
        }
        for (k, name) in shifted_cols.iter().enumerate() {
            let Some(FeatureReference::Numeric { sorted_values, .. }) =
                reference.features.iter().find(|f| f.column() == name)
            else {
                continue;
            };
            let m = sorted_values.len() as f64;
            let mean = sorted_values.iter().sum::<f64>() / m;
            let sd = (sorted_values
                .iter()
                .map(|v| (v - mean).powi(2))
                .sum::<f64>()
                / (m - 1.0))
                .sqrt();
            let moved = shifted(&current, name, args.shift * sd)?;
            let r = autodl_monitor::detect(&reference, &moved, &drift_cfg)?;
            hits[k].0 += usize::from(r.drifted_columns.iter().any(|c| c == name));
            hits[k].1 += usize::from(r.drift_detected);
        }
        if (s + 1) % 20 == 0 {
            eprintln!(
                "  {} of {} splits: {false_alarms} false alarms so far",
                s + 1,
                args.splits
            );
        }
    }
    let splits = args.splits as f64;
    let report = CalibrationReport {
        data: args.data.display().to_string(),
        splits: args.splits,
        reference_rows,
        current_rows: args.current_rows,
        alpha: args.alpha,
        monitored_columns: monitored,
        false_alarms,
        false_alarm_rate: false_alarms as f64 / splits,
        false_alarm_interval: wilson(false_alarms, args.splits),
        false_alarms_by_column: by_column.into_iter().collect(),
        shift_in_sd: args.shift,
        power: shifted_cols
            .iter()
            .zip(&hits)
            .map(|(c, &(own, overall))| ShiftPower {
                column: c.clone(),
                power: own as f64 / splits,
                overall: overall as f64 / splits,
            })
            .collect(),
    };
    println!(
        "no drift: {} of {} splits raised the overall flag: false-alarm rate {:.3} (95% interval {:.3}–{:.3}; alpha {}), {} columns monitored",
        report.false_alarms,
        report.splits,
        report.false_alarm_rate,
        report.false_alarm_interval[0],
        report.false_alarm_interval[1],
        report.alpha,
        report.monitored_columns
    );
    println!(
        "\nshift of {} standard deviations in one column, {} current rows:\n\n| shifted column | that column flagged | overall flag |\n|---|---:|---:|",
        args.shift, args.current_rows
    );
    for p in &report.power {
        println!("| {} | {:.3} | {:.3} |", p.column, p.power, p.overall);
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    autodl_artifacts::io::write_json(&args.out, &report)?;
    eprintln!("raw results: {}", args.out.display());
    Ok(())
}
