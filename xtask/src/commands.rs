//! `cargo xtask predict`, `cargo xtask serve` and `cargo xtask monitor`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autodl_artifacts::drift::DriftReference;
use autodl_artifacts::export::OutputKind;
use autodl_artifacts::io::{read_json, write_json};
use autodl_artifacts::run::{RunManifest, paths};
use autodl_artifacts::table::{Matrix, RawTable};

fn open_run(run: &Path) -> Result<RunManifest> {
    let path = run.join(paths::MANIFEST);
    if !path.is_file() {
        anyhow::bail!(
            "{} is not a run directory (no {})",
            run.display(),
            paths::MANIFEST
        );
    }
    Ok(read_json(&path)?)
}

/// Quotes a CSV field when it needs quoting.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Predicts every row of `data` with the run's model (its transform, then its ONNX graph
/// through tract), streaming: the file is read in pieces ([`autodl_data::read_table_pieces`])
/// and each piece's predictions are written before the next is read, so files larger than
/// memory can be predicted. Output goes to `out` (written atomically) or standard output.
/// Rows that carry the target column keep it, as the output's first column, beside the
/// prediction (for error analysis).
pub fn predict(run: &Path, data: &Path, out: Option<&Path>, piece_mb: f64) -> Result<()> {
    if !(piece_mb > 0.0 && piece_mb.is_finite()) {
        anyhow::bail!("--piece-mb must be a positive number, got {piece_mb}");
    }
    let manifest = open_run(run)?;
    let predictor = autodl_deploy::Predictor::open(run)?;
    let transform = predictor.transform();
    let header: Vec<String> = match &predictor.exported().output {
        OutputKind::Probabilities { labels } => {
            std::iter::once(format!("predicted_{}", transform.target))
                .chain(labels.iter().map(|l| format!("p_{l}")))
                .collect()
        }
        OutputKind::StandardizedValue { .. } => vec![format!("predicted_{}", transform.target)],
    };
    let temporary = out.map(autodl_artifacts::io::temporary_sibling);
    let mut sink: Box<dyn Write> = match &temporary {
        Some(t) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(t).with_context(|| format!("creating {}", t.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let header: Vec<String> = header.iter().map(|h| csv_field(h)).collect();
    // Written with the first piece, which tells whether the rows carry their labels.
    let mut header_written = false;
    // Outputs and encoded targets of labelled rows, for the metric at the end.
    let (mut labelled_outputs, mut labelled_y) = (Vec::new(), Vec::new());
    let mut rows = 0usize;
    let started = std::time::Instant::now();
    let mut last = started;
    let opts = autodl_data::StreamOptions {
        chunk_bytes: (piece_mb * 1e6) as usize,
        chunk_rows: ((piece_mb * 1e6 / 100.0) as usize).max(1),
        ..Default::default()
    };
    let result = autodl_data::read_table_pieces(data, &opts, |piece, at| -> Result<()> {
        let outputs = predictor.outputs(&piece)?;
        let target = piece.column(&transform.target);
        let mut text = String::new();
        if !header_written {
            if target.is_some() {
                text.push_str(&csv_field(&transform.target));
                text.push(',');
            }
            text.push_str(&header.join(","));
            text.push('\n');
            header_written = true;
        }
        for i in 0..outputs.n_rows {
            if let Some(t) = target {
                text.push_str(&csv_field(&t.values.label_ref(i).unwrap_or_default()));
                text.push(',');
            }
            match predictor.prediction(&outputs, i) {
                autodl_deploy::Prediction::Class {
                    label,
                    probabilities,
                } => {
                    text.push_str(&csv_field(&label));
                    for (_, p) in &probabilities.0 {
                        text.push_str(&format!(",{p:.6}"));
                    }
                }
                autodl_deploy::Prediction::Value { value } => text.push_str(&value.to_string()),
            }
            text.push('\n');
        }
        sink.write_all(text.as_bytes())
            .context("writing predictions")?;
        if let Some(target) = target {
            let y = transform.encode_target(target)?;
            labelled_outputs.extend_from_slice(&outputs.data);
            labelled_y.extend(y);
        }
        rows += outputs.n_rows;
        if last.elapsed().as_secs_f64() >= 1.0 {
            last = std::time::Instant::now();
            eprintln!(
                "  {rows} rows predicted ({:.0}%)",
                100.0 * at.done as f64 / at.total.max(1) as f64
            );
        }
        Ok(())
    });
    let finished = result
        .with_context(|| format!("predicting {}", data.display()))
        .and_then(|()| {
            // A file without rows still gets its header.
            if !header_written {
                writeln!(sink, "{}", header.join(","))?;
            }
            sink.flush().context("writing predictions")
        });
    drop(sink);
    if let Err(e) = finished {
        if let Some(t) = &temporary {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    if let (Some(t), Some(path)) = (&temporary, out) {
        std::fs::rename(t, path).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {rows} predictions to {} in {:.2} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    // With labels present, say how well the model did.
    if !labelled_y.is_empty() {
        let width = labelled_outputs.len() / labelled_y.len();
        let outputs = Matrix::new(labelled_y.len(), width, labelled_outputs);
        let metric = manifest.task.metric();
        let m = crate::pipeline::score(metric, &outputs, &labelled_y, transform.target_scale());
        eprintln!(
            "{} on {} labelled rows: {:.4} (the run's test {}: {:.4})",
            m.name,
            labelled_y.len(),
            m.value,
            manifest.test_metric.name,
            manifest.test_metric.value
        );
    }
    Ok(())
}

/// Serves the run's model until Ctrl-C or SIGTERM (see `autodl_deploy::serve`).
pub fn serve(
    run: &Path,
    token_file: Option<&Path>,
    mut cfg: autodl_deploy::ServeConfig,
) -> Result<()> {
    open_run(run)?;
    cfg.token = match token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token from {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("AUTODL_SERVE_TOKEN").ok(),
    }
    .filter(|t| !t.is_empty());
    let predictor = autodl_deploy::Predictor::open(run)?;
    let inputs: Vec<&str> = predictor.inputs().iter().map(|c| c.name.as_str()).collect();
    let inputs = inputs.join(", ");
    let auth = cfg.token.is_some();
    let server = autodl_deploy::Server::start(predictor, cfg)?;
    // The address line is what scripts read (port 0 picks a free port).
    eprintln!("listening on http://{}", server.addr());
    eprintln!(
        "  POST /predict (JSON or CSV rows with: {inputs}), GET /health, /metadata, /metrics{}; Ctrl-C stops",
        if auth { "; bearer token required" } else { "" }
    );
    autodl_deploy::serve::wait_for_signal()?;
    eprintln!("stopping: finishing requests in flight");
    server.stop()?;
    eprintln!("stopped");
    Ok(())
}

/// Settings of `cargo xtask monitor`.
#[derive(Debug, Clone)]
pub struct MonitorArgs {
    pub run: Option<PathBuf>,
    pub reference: Option<PathBuf>,
    pub columns: Vec<String>,
    pub data: PathBuf,
    pub alpha: f64,
    pub chunk_size: Option<usize>,
    pub chunk_period: Option<crate::chunks::Period>,
    pub timestamp: Option<String>,
    pub performance: Option<crate::chunks::PerformanceArgs>,
    pub multivariate: bool,
    pub out: Option<PathBuf>,
}

/// Prints and writes the drift report of `data` against the run's reference (or a reference
/// table), whole or in chunks. Returns whether drift was detected.
pub fn monitor(a: &MonitorArgs) -> Result<bool> {
    let data = a.data.as_path();
    let stem = data
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    let (reference, reference_table, default_out) = match (&a.run, &a.reference) {
        (Some(run), None) => {
            open_run(run)?;
            let reference: DriftReference = read_json(&run.join(paths::DRIFT_REFERENCE))?;
            (
                reference,
                None,
                run.join(format!("monitor/report-{stem}.json")),
            )
        }
        (None, Some(file)) => {
            let table = autodl_data::read_table(file)?;
            let built_from = format!("{}", file.display());
            let reference = if a.columns.is_empty() {
                // Every column but the target, the model's output, the id and the time.
                let mut skip: Vec<&str> = Vec::new();
                if let Some(p) = &a.performance {
                    skip.extend([p.proba.as_str(), p.target.as_str()]);
                    skip.extend(p.id.as_deref());
                }
                skip.extend(a.timestamp.as_deref());
                autodl_monitor::build_reference_from_table(&table, &skip, &built_from)?
            } else {
                let mut columns = Vec::new();
                for name in &a.columns {
                    columns.push(
                        table
                            .column(name)
                            .with_context(|| {
                                format!(
                                    "{} has no column '{name}' (columns: {})",
                                    file.display(),
                                    table.names().join(", ")
                                )
                            })?
                            .clone(),
                    );
                }
                let sub = RawTable { columns };
                autodl_monitor::build_reference_from_table(&sub, &[], &built_from)?
            };
            let out = PathBuf::from(format!("runs/monitor/report-{stem}.json"));
            (reference, Some(table), out)
        }
        _ => anyhow::bail!("give either --run DIR or --reference FILE"),
    };
    // The report's folder is made when it is written (`write_json`), so a refused call leaves
    // nothing behind.
    let path = a.out.clone().unwrap_or(default_out);
    let chunking = match (a.chunk_size, a.chunk_period) {
        (Some(size), _) => Some(crate::chunks::Chunking::Rows(size)),
        (None, Some(p)) => Some(crate::chunks::Chunking::Period(p)),
        (None, None) => None,
    };
    if let Some(chunking) = chunking {
        return crate::chunks::run(&crate::chunks::Chunked {
            reference: &reference,
            reference_table: reference_table.as_ref(),
            data,
            chunking,
            alpha: a.alpha,
            timestamp: a.timestamp.as_deref(),
            perf: a.performance.as_ref(),
            out: &path,
            multivariate: a.multivariate,
        });
    }
    if a.performance.is_some() || a.multivariate {
        anyhow::bail!(
            "--proba and --multivariate work per chunk: give --chunk-size too (the whole file as one chunk: its row count)"
        );
    }
    let alpha = a.alpha;
    let table = autodl_data::read_table(data)?;
    let report =
        autodl_monitor::detect(&reference, &table, &autodl_monitor::DriftConfig { alpha })?;

    let width = report
        .features
        .iter()
        .map(|f| f.column.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<width$}  {:>4}  {:>9}  {:>10}  {:>10}  {:>7}  {:>7}  {:>11}  drift",
        "column", "test", "statistic", "p", "p (BH)", "PSI", "JS", "Wasserstein"
    );
    for f in &report.features {
        println!(
            "{:<width$}  {:>4}  {:>9.4}  {:>10.3e}  {:>10.3e}  {:>7.3}  {:>7.3}  {:>11}  {}",
            f.column,
            f.test,
            f.statistic,
            f.p_value,
            f.p_adjusted,
            f.psi,
            f.jensen_shannon,
            f.wasserstein.map_or("–".to_string(), |w| format!("{w:.4}")),
            if f.drifted { "YES" } else { "no" }
        );
    }
    println!(
        "{} of {} features drifted (reference {} rows, current {} rows, alpha {}){}",
        report.drifted_columns.len(),
        report.features.len(),
        report.reference_rows,
        report.current_rows,
        report.alpha,
        if report.drift_detected {
            format!(": {}", report.drifted_columns.join(", "))
        } else {
            String::new()
        }
    );
    write_json(&path, &report)?;
    eprintln!("report written to {}", path.display());
    // With a run and labelled rows: how the model scores on them (generalizability on the
    // data monitoring has seen), beside its test score; the HTML report lists these.
    if let Some(run) = &a.run
        && let Some(score) = monitored_score(run, &table)?
    {
        println!(
            "the model on these {} labelled rows: {} {:.4} (on its test split: {:.4})",
            score["rows"], score["metric"], score["value"], score["test_value"]
        );
        let scored = path.with_file_name(format!("score-{stem}.json"));
        autodl_artifacts::io::write_atomic(
            &scored,
            serde_json::to_string_pretty(&score)?.as_bytes(),
        )?;
    }
    Ok(report.drift_detected)
}

/// The run's model's metric on the rows of `table` that carry the target, with the run's own
/// test metric; `None` when no row carries it.
fn monitored_score(run: &Path, table: &RawTable) -> Result<Option<serde_json::Value>> {
    let predictor = autodl_deploy::Predictor::open(run)?;
    let t = predictor.transform();
    let Some(target) = table.column(&t.target) else {
        return Ok(None);
    };
    let rows: Vec<usize> = (0..table.n_rows())
        .filter(|&r| !target.values.is_missing(r))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let labelled = table.take(&rows);
    let outputs = predictor.outputs(&labelled)?;
    let y = t.encode_target(labelled.column(&t.target).context("target")?)?;
    let m = crate::pipeline::score(t.task.metric(), &outputs, &y, t.target_scale());
    let manifest = open_run(run)?;
    Ok(Some(serde_json::json!({
        "rows": rows.len(),
        "metric": m.name,
        "value": m.value,
        "test_value": manifest.test_metric.value,
    })))
}
