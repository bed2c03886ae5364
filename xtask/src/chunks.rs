//! `cargo xtask monitor --chunk-size N`: drift per chunk of consecutive rows, and, given the
//! model's probabilities, estimated and realised accuracy per chunk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::drift::{ChunkDrift, ChunkPerformance, ChunkedDriftReport, DriftReference};
use autodl_artifacts::io::write_json;
use autodl_artifacts::table::{ColumnValues, RawColumn, RawTable};
use autodl_artifacts::transform::{parse_bool, parse_number};
use autodl_monitor::performance::{IsotonicCalibration, expected_accuracy, realised_accuracy};

/// What the performance part needs: the probability and target columns, and where labels of
/// the analysed rows come from.
#[derive(Debug, Clone)]
pub struct PerformanceArgs {
    /// Column with the model's probability of the positive class (reference and data).
    pub proba: String,
    /// Column with the model's hard prediction (0/1); without it, probability ≥ 0.5.
    pub pred: Option<String>,
    /// Target column of the reference (and of the data or the labels file).
    pub target: String,
    /// A labels table joined to the data on `id`.
    pub labels: Option<PathBuf>,
    /// The column joining the data and the labels.
    pub id: Option<String>,
}

/// A column as numbers (text parsed; booleans as 0/1), `None` where missing or unreadable.
fn numbers(col: &RawColumn) -> Vec<Option<f64>> {
    match &col.values {
        ColumnValues::Numeric(v) => v.clone(),
        other => (0..other.len())
            .map(|r| {
                other.label_ref(r).and_then(|s| {
                    parse_number(&s).or_else(|| parse_bool(&s).map(|b| f64::from(u8::from(b))))
                })
            })
            .collect(),
    }
}

/// A 0/1 target column as booleans (`None` where missing); other values are an error.
fn labels_of(col: &RawColumn) -> Result<Vec<Option<bool>>> {
    let values = numbers(col);
    values
        .iter()
        .enumerate()
        .map(|(r, v)| match v {
            None if col.values.label_ref(r).is_none() => Ok(None),
            Some(x) if *x == 0.0 || *x == 1.0 => Ok(Some(*x == 1.0)),
            _ => bail!(
                "column '{}' row {}: a binary target must be 0/1 or true/false, found {:?}",
                col.name,
                r + 1,
                col.values.label_ref(r).unwrap_or_default()
            ),
        })
        .collect()
}

fn column<'a>(table: &'a RawTable, name: &str, what: &str) -> Result<&'a RawColumn> {
    table.column(name).with_context(|| {
        format!(
            "{what} has no column '{name}' (columns: {})",
            table.names().join(", ")
        )
    })
}

/// The labels of `data`'s rows: its own target column, or the labels table joined on `id`.
fn data_labels(data: &RawTable, p: &PerformanceArgs) -> Result<Vec<Option<bool>>> {
    match (&p.labels, &p.id) {
        (Some(file), Some(id)) => {
            let labels = autodl_data::read_table(file)?;
            let what = format!("{}", file.display());
            let keys = column(&labels, id, &what)?;
            let values = labels_of(column(&labels, &p.target, &what)?)?;
            let by_id: HashMap<String, Option<bool>> = (0..labels.n_rows())
                .filter_map(|r| keys.values.label(r).map(|k| (k, values[r])))
                .collect();
            let ids = column(data, id, "the data")?;
            Ok((0..data.n_rows())
                .map(|r| {
                    ids.values
                        .label(r)
                        .and_then(|k| by_id.get(&k).copied().flatten())
                })
                .collect())
        }
        (Some(_), None) => bail!("--labels needs --id, the column joining them to the data"),
        (None, _) => match data.column(&p.target) {
            Some(c) => labels_of(c),
            None => Ok(vec![None; data.n_rows()]),
        },
    }
}

/// The model's outputs on some rows: probabilities of the positive class and hard predictions.
struct Outputs {
    proba: Vec<Option<f64>>,
    predicted: Vec<Option<bool>>,
}

impl Outputs {
    fn of(table: &RawTable, p: &PerformanceArgs, what: &str) -> Result<Outputs> {
        let proba = numbers(column(table, &p.proba, what)?);
        let predicted = match &p.pred {
            Some(c) => labels_of(column(table, c, what)?)?,
            None => proba.iter().map(|s| s.map(|s| s >= 0.5)).collect(),
        };
        Ok(Outputs { proba, predicted })
    }
}

/// Estimated and realised accuracy of `rows` of the data.
fn performance(
    calibration: &IsotonicCalibration,
    outputs: &Outputs,
    labels: &[Option<bool>],
    rows: std::ops::Range<usize>,
) -> ChunkPerformance {
    let (mut p, mut predicted, mut known) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        if let (Some(score), Some(yes)) = (outputs.proba[r], outputs.predicted[r]) {
            p.push(calibration.apply(score));
            predicted.push(yes);
            known.push(labels[r]);
        }
    }
    let (realised, labelled_rows) = realised_accuracy(&predicted, &known);
    ChunkPerformance {
        metric: "accuracy".into(),
        estimated: expected_accuracy(&p, &predicted),
        realised,
        labelled_rows,
    }
}

/// How rows are grouped into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Consecutive rows, this many per chunk (the last may be shorter).
    Rows(usize),
    /// Calendar periods of the timestamp column; the rows must be in time order.
    Period(Period),
}

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    /// Weeks from Monday.
    Week,
    Month,
    Quarter,
    Year,
}

/// (year, month) of a day count since 1970-01-01.
fn year_month(days: i64) -> (i64, i64) {
    let (year, month, _) = autodl_artifacts::transform::civil_from_days(days);
    (year, i64::from(month))
}

/// The chunks' row ranges.
fn ranges(
    chunking: Chunking,
    data: &RawTable,
    timestamp: Option<&str>,
) -> Result<Vec<std::ops::Range<usize>>> {
    let n = data.n_rows();
    match chunking {
        Chunking::Rows(size) => Ok((0..n)
            .step_by(size)
            .map(|start| start..(start + size).min(n))
            .collect()),
        Chunking::Period(period) => {
            let name = timestamp.context("--chunk-period needs --timestamp")?;
            let col = column(data, name, "the data")?;
            let mut keys = Vec::with_capacity(n);
            for r in 0..n {
                let text = col.values.label(r).unwrap_or_default();
                let days =
                    autodl_artifacts::transform::parse_datetime(&text).with_context(|| {
                        format!("row {}: '{text}' in '{name}' is not a date or time", r + 1)
                    })?;
                let day = days.floor() as i64;
                let (year, month) = year_month(day);
                keys.push(match period {
                    Period::Day => day,
                    Period::Week => (day + 3).div_euclid(7),
                    Period::Month => year * 12 + month - 1,
                    Period::Quarter => year * 4 + (month - 1) / 3,
                    Period::Year => year,
                });
            }
            if let Some(r) = keys.windows(2).position(|w| w[1] < w[0]) {
                bail!(
                    "rows {} and {} of '{name}' go back in time; period chunks need the data sorted by time",
                    r + 1,
                    r + 2
                );
            }
            let mut out = Vec::new();
            let mut start = 0;
            for r in 1..=n {
                if r == n || keys[r] != keys[start] {
                    out.push(start..r);
                    start = r;
                }
            }
            Ok(out)
        }
    }
}

/// What to analyse in chunks, and how.
#[derive(Debug)]
pub struct Chunked<'a> {
    /// The drift reference.
    pub reference: &'a DriftReference,
    /// The reference rows, when the reference came from a table (needed for `perf`).
    pub reference_table: Option<&'a RawTable>,
    /// The data to analyse.
    pub data: &'a Path,
    /// How rows are grouped.
    pub chunking: Chunking,
    /// Significance level.
    pub alpha: f64,
    /// A timestamp column of the data.
    pub timestamp: Option<&'a str>,
    /// Performance estimation settings.
    pub perf: Option<&'a PerformanceArgs>,
    /// Where the JSON report goes.
    pub out: &'a Path,
    /// Run the multivariate tests (MMD, domain classifier) on each chunk.
    pub multivariate: bool,
}

/// Analyses the data in chunks of `chunk_size` rows (the last may be shorter) against the
/// reference; prints a table per chunk and writes the JSON report. Returns whether any chunk
/// drifted.
pub fn run(args: &Chunked) -> Result<bool> {
    let Chunked {
        reference,
        reference_table,
        data: data_path,
        chunking,
        alpha,
        timestamp,
        perf,
        out,
        multivariate,
    } = *args;
    if multivariate && reference_table.is_none() {
        bail!("--multivariate needs --reference: the tests compare rows, not a run's summaries");
    }
    if chunking == Chunking::Rows(0) {
        bail!("--chunk-size must be at least 1");
    }
    let data = autodl_data::read_table(data_path)?;
    let n = data.n_rows();
    if n == 0 {
        bail!("{} has no rows", data_path.display());
    }
    let stamps = match timestamp {
        Some(t) => Some(column(&data, t, "the data")?),
        None => None,
    };
    // The probabilities are calibrated on the reference rows, whose labels are known.
    let perf_data = match perf {
        Some(p) => {
            let reference_table = reference_table
                .context("--proba needs --reference: the calibration uses its labels")?;
            let what = "the reference";
            let outputs = Outputs::of(reference_table, p, what)?;
            let labels = labels_of(column(reference_table, &p.target, what)?)?;
            let (s, l): (Vec<f64>, Vec<bool>) = outputs
                .proba
                .iter()
                .zip(&labels)
                .filter_map(|(s, l)| Some(((*s)?, (*l)?)))
                .unzip();
            let calibration = IsotonicCalibration::fit(&s, &l);
            let reference_perf =
                performance(&calibration, &outputs, &labels, 0..reference_table.n_rows());
            let outputs = Outputs::of(&data, p, "the data")?;
            let labels = data_labels(&data, p)?;
            Some((calibration, outputs, labels, reference_perf))
        }
        None => None,
    };
    let cfg = autodl_monitor::DriftConfig { alpha };
    // The model's output in the reference, for prediction drift per chunk.
    let output_reference = match (perf, reference_table) {
        (Some(p), Some(t)) => {
            let col = column(t, &p.proba, "the reference")?.clone();
            Some(autodl_monitor::build_reference_from_table(
                &RawTable { columns: vec![col] },
                &[],
                "the reference's model output",
            )?)
        }
        _ => None,
    };
    let mut chunks = Vec::new();
    for (index, rows) in ranges(chunking, &data, timestamp)?.into_iter().enumerate() {
        let first_row = rows.start;
        let idx: Vec<usize> = rows.clone().collect();
        let report = autodl_monitor::detect(reference, &data.take(&idx), &cfg)?;
        let period = stamps.map(|c| {
            let label = |r: usize| c.values.label(r).unwrap_or_default();
            [label(rows.start), label(rows.end - 1)]
        });
        let performance = perf_data
            .as_ref()
            .map(|(c, outputs, labels, _)| performance(c, outputs, labels, rows.clone()));
        let output_drift = match (&output_reference, perf) {
            (Some(r), Some(p)) => {
                let column = column(&data, &p.proba, "the data")?;
                let chunk = RawTable {
                    columns: vec![RawColumn {
                        name: column.name.clone(),
                        values: column.values.take(&idx),
                    }],
                };
                let d = autodl_monitor::detect(r, &chunk, &cfg)?;
                d.features.into_iter().next()
            }
            _ => None,
        };
        let multivariate = match (multivariate, reference_table) {
            (true, Some(t)) => {
                let columns: Vec<(&str, bool)> = reference
                    .features
                    .iter()
                    .map(|f| {
                        (
                            f.column(),
                            matches!(f, autodl_artifacts::drift::FeatureReference::Numeric { .. }),
                        )
                    })
                    .collect();
                let m = autodl_monitor::multivariate::detect_multivariate(
                    t,
                    &data.take(&idx),
                    &columns,
                    500,
                    200,
                    index as u64,
                )?;
                Some(m)
            }
            _ => None,
        };
        chunks.push(ChunkDrift {
            index,
            first_row,
            rows: rows.len(),
            period,
            report,
            performance,
            output_drift,
            multivariate,
        });
    }
    // Streaming detectors over the rows in order: the model's output (ADWIN, Page–Hinkley),
    // and its errors where labels are known (DDM, ADWIN).
    let mut stream_detections = Vec::new();
    if let Some((_, outputs, labels, _)) = &perf_data {
        let output: Vec<(usize, f64)> = outputs
            .proba
            .iter()
            .enumerate()
            .filter_map(|(r, p)| Some((r, (*p)?)))
            .collect();
        let errors: Vec<(usize, f64)> = outputs
            .predicted
            .iter()
            .zip(labels)
            .enumerate()
            .filter_map(|(r, (p, l))| Some((r, f64::from(u8::from((*p)? != (*l)?)))))
            .collect();
        use autodl_monitor::streaming::{Adwin, Ddm, Detector, PageHinkley, detections};
        let mut run =
            |stream: &str, detector: &str, det: &mut dyn Detector, values: &[(usize, f64)]| {
                let found = detections(det, values.iter().map(|&(_, v)| v));
                stream_detections.push(autodl_artifacts::drift::StreamDetection {
                    stream: stream.into(),
                    detector: detector.into(),
                    rows: found.into_iter().map(|i| values[i].0).collect(),
                });
            };
        run(
            "model output",
            "ADWIN (delta 0.002)",
            &mut Adwin::default(),
            &output,
        );
        run(
            "model output",
            "Page-Hinkley (delta 0.005, threshold 50)",
            &mut PageHinkley::default(),
            &output,
        );
        if !errors.is_empty() {
            run(
                "errors",
                "DDM (warning 2, drift 3)",
                &mut Ddm::default(),
                &errors,
            );
            run(
                "errors",
                "ADWIN (delta 0.002)",
                &mut Adwin::default(),
                &errors,
            );
        }
    }
    let report = ChunkedDriftReport {
        schema_version: SCHEMA_VERSION,
        chunking: match chunking {
            Chunking::Rows(size) => {
                format!("{size} consecutive rows (the last chunk may be shorter)")
            }
            Chunking::Period(p) => {
                format!("one {p:?} of '{}' each", timestamp.unwrap_or_default()).to_lowercase()
            }
        },
        reference: format!("{} ({} rows)", reference.built_from, reference.rows),
        chunks,
        reference_performance: perf_data.map(|(_, _, _, r)| r),
        stream_detections,
    };
    let text = table_text(&report);
    print!("{text}");
    write_json(out, &report)?;
    let svg = out.with_extension("svg");
    std::fs::write(&svg, chunk_svg(&report))?;
    let md = out.with_extension("md");
    std::fs::write(
        &md,
        format!(
            "# Drift by chunk\n\n![drift per column and chunk]({})\n\n{text}",
            svg.file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned())
        ),
    )?;
    eprintln!(
        "report written to {} (JSON), {} (tables) and {} (plot)",
        out.display(),
        md.display(),
        svg.display()
    );
    Ok(report.chunks.iter().any(|c| c.report.drift_detected))
}

/// The chunk tables as text (Markdown tables).
fn table_text(report: &ChunkedDriftReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let perf = report.reference_performance.is_some();
    let _ = writeln!(
        out,
        "chunks of {}; reference {}\n",
        report.chunking, report.reference
    );
    let _ = write!(
        out,
        "| chunk | rows | period | drifted columns (BH-adjusted p < alpha) |"
    );
    if perf {
        let _ = write!(
            out,
            " output drift (KS p) | estimated accuracy | realised accuracy |"
        );
    }
    let _ = writeln!(
        out,
        "\n|---:|---:|---|---|{}",
        if perf { "---:|---:|---:|" } else { "" }
    );
    if let Some(r) = &report.reference_performance {
        let _ = writeln!(
            out,
            "| reference | | | | | {:.4} | {} |",
            r.estimated,
            r.realised.map_or("–".into(), |v| format!("{v:.4}"))
        );
    }
    for c in &report.chunks {
        let drifted = if c.report.drifted_columns.is_empty() {
            "–".to_string()
        } else {
            c.report.drifted_columns.join(", ")
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {drifted} |",
            c.index,
            c.rows,
            c.period
                .as_ref()
                .map_or(String::new(), |[a, b]| format!("{a} – {b}"))
        );
        if let Some(p) = &c.performance {
            let _ = write!(
                out,
                " {} | {:.4} | {} |",
                c.output_drift.as_ref().map_or("–".into(), |d| format!(
                    "{:.2e}{}",
                    d.p_value,
                    if d.drifted { " drift" } else { "" }
                )),
                p.estimated,
                p.realised.map_or("–".into(), |v| format!(
                    "{v:.4} ({} labels)",
                    p.labelled_rows
                ))
            );
        }
        let _ = writeln!(out);
    }
    let flagged = report
        .chunks
        .iter()
        .filter(|c| c.report.drift_detected)
        .count();
    let _ = writeln!(out, "\n{flagged} of {} chunks drifted", report.chunks.len());
    if report.chunks.iter().any(|c| c.multivariate.is_some()) {
        let _ = writeln!(
            out,
            "\n| chunk | MMD² | MMD p (permutations) | domain classifier AUC | its strongest columns |\n|---:|---:|---:|---:|---|"
        );
        for c in &report.chunks {
            if let Some(m) = &c.multivariate {
                let drivers: Vec<String> = m
                    .drivers
                    .iter()
                    .take(3)
                    .map(|(n, w)| format!("{n} ({w:+.2})"))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {:.5} | {:.3} ({}) | {:.3} | {} |",
                    c.index,
                    m.mmd2,
                    m.mmd_p_value,
                    m.permutations,
                    m.domain_auc,
                    drivers.join(", ")
                );
            }
        }
    }
    if !report.stream_detections.is_empty() {
        let _ = writeln!(out, "\nstreaming detectors over the rows in order:");
        for s in &report.stream_detections {
            let rows: Vec<String> = s.rows.iter().take(12).map(|r| r.to_string()).collect();
            let _ = writeln!(
                out,
                "  {} · {}: {} change{}{}{}",
                s.stream,
                s.detector,
                s.rows.len(),
                if s.rows.len() == 1 { "" } else { "s" },
                if rows.is_empty() {
                    String::new()
                } else {
                    format!(" at rows {}", rows.join(", "))
                },
                if s.rows.len() > 12 { ", …" } else { "" }
            );
        }
    }
    out
}

/// A drawing of the chunked report: per column and chunk, the adjusted p-value as colour
/// (white at 1, deep red at 1e-10 or below; flagged cells outlined), then, with performance,
/// estimated and realised accuracy per chunk.
fn chunk_svg(report: &ChunkedDriftReport) -> String {
    use std::fmt::Write as _;
    let columns: Vec<&str> = report
        .chunks
        .first()
        .map(|c| {
            c.report
                .features
                .iter()
                .map(|f| f.column.as_str())
                .collect()
        })
        .unwrap_or_default();
    let n = report.chunks.len().max(1);
    let (left, top, cell_w, cell_h) = (190.0, 30.0, (560.0 / n as f64).min(60.0), 22.0);
    let heat_h = cell_h * columns.len() as f64;
    let perf = report.reference_performance.is_some();
    let perf_h = if perf { 200.0 } else { 0.0 };
    let (w, h) = (
        left + cell_w * n as f64 + 140.0,
        top + heat_h + 50.0 + perf_h,
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18">drift per column and chunk: adjusted p-value (darker: smaller; outlined: flagged)</text>"#
    );
    for (j, col) in columns.iter().enumerate() {
        let y = top + j as f64 * cell_h;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + cell_h * 0.7,
            xml(col)
        );
        for (i, c) in report.chunks.iter().enumerate() {
            let Some(f) = c.report.features.iter().find(|f| f.column == *col) else {
                continue;
            };
            let strength = (-f.p_adjusted.max(1e-300).log10() / 10.0).clamp(0.0, 1.0);
            let shade = (255.0 * (1.0 - strength)) as u8;
            let stroke = if f.drifted {
                r#" stroke="black" stroke-width="2""#
            } else {
                r##" stroke="#dddddd""##
            };
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="{cell_w:.1}" height="{cell_h:.1}" fill="rgb(255,{shade},{shade})"{stroke}><title>{} chunk {}: p (BH) {:.2e}</title></rect>"#,
                left + i as f64 * cell_w,
                xml(col),
                c.index,
                f.p_adjusted
            );
        }
    }
    for (i, c) in report.chunks.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + (i as f64 + 0.5) * cell_w,
            top + heat_h + 16.0,
            c.index
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">chunk</text>"#,
        left + cell_w * n as f64 / 2.0,
        top + heat_h + 32.0
    );
    if perf {
        let y0 = top + heat_h + 60.0;
        let values: Vec<f64> = report
            .chunks
            .iter()
            .filter_map(|c| c.performance.as_ref())
            .flat_map(|p| std::iter::once(p.estimated).chain(p.realised))
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min) - 0.01;
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.01;
        let ph = perf_h - 40.0;
        let y = |v: f64| y0 + ph - (v - lo) / (hi - lo) * ph;
        let x = |i: usize| left + (i as f64 + 0.5) * cell_w;
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{:.1}">accuracy per chunk: estimated without labels (blue), realised (black)</text>"#,
            y0 - 8.0
        );
        for v in [lo + 0.01, (lo + hi) / 2.0, hi - 0.01] {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.3}</text><line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eeeeee"/>"##,
                left - 6.0,
                y(v) + 4.0,
                left + cell_w * n as f64,
                y(v),
                y(v)
            );
        }
        for (colour, pick) in [("#1f77b4", 0usize), ("black", 1usize)] {
            let points: Vec<String> = report
                .chunks
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let p = c.performance.as_ref()?;
                    let v = if pick == 0 {
                        Some(p.estimated)
                    } else {
                        p.realised
                    };
                    v.map(|v| format!("{:.1},{:.1}", x(i), y(v)))
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(values: &[&str]) -> RawTable {
        RawTable {
            columns: vec![RawColumn {
                name: "t".into(),
                values: ColumnValues::Text(values.iter().map(|s| Some(s.to_string())).collect()),
            }],
        }
    }

    #[test]
    fn calendar_periods_group_rows_in_time_order() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(19_783), (2024, 3)); // 2024-03-01
        let t = stamps(&[
            "2024-01-30 10:00:00",
            "2024-01-31",
            "2024-02-01 00:00:01",
            "2024-03-31",
            "2024-04-01",
        ]);
        let month = ranges(Chunking::Period(Period::Month), &t, Some("t")).unwrap();
        assert_eq!(month, vec![0..2, 2..3, 3..4, 4..5]);
        let quarter = ranges(Chunking::Period(Period::Quarter), &t, Some("t")).unwrap();
        assert_eq!(quarter, vec![0..4, 4..5]);
        // 2024-01-29 is a Monday: the 30th and 31st share its week, 1 February too.
        let week = ranges(Chunking::Period(Period::Week), &t, Some("t")).unwrap();
        assert_eq!(week[0], 0..3);
        let backwards = stamps(&["2024-02-01", "2024-01-01"]);
        let err = ranges(Chunking::Period(Period::Day), &backwards, Some("t")).unwrap_err();
        assert!(err.to_string().contains("go back in time"), "{err}");
        assert_eq!(
            ranges(Chunking::Rows(2), &t, None).unwrap(),
            vec![0..2, 2..4, 4..5]
        );
    }
}
