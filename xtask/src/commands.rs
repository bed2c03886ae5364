//! `cargo xtask predict`, `cargo xtask serve` and `cargo xtask monitor`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use autodl_artifacts::drift::DriftReference;
use autodl_artifacts::export::{ExportedModel, OutputKind};
use autodl_artifacts::io::{read_json, write_json};
use autodl_artifacts::run::{RunManifest, paths};
use autodl_artifacts::table::argmax;
use autodl_artifacts::transform::FeatureTransform;

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

/// Predicts every row of `data` with the run's ONNX model through tract.
pub fn predict(run: &Path, data: &Path, out: Option<&Path>) -> Result<()> {
    let manifest = open_run(run)?;
    let transform: FeatureTransform = read_json(&run.join(paths::TRANSFORM))?;
    let exported: ExportedModel = read_json(&run.join(paths::EXPORT))?;
    let runner = autodl_deploy::OnnxRunner::load(&run.join(&exported.onnx_path))?;
    let table = autodl_data::read_table(data)?;
    let x = transform
        .transform(&table)
        .with_context(|| format!("applying the run's transform to {}", data.display()))?;
    let outputs = runner.run(&x)?;

    let mut text = String::new();
    match &exported.output {
        OutputKind::Probabilities { labels } => {
            let header: Vec<String> = std::iter::once(format!("predicted_{}", transform.target))
                .chain(labels.iter().map(|l| format!("p_{l}")))
                .map(|h| csv_field(&h))
                .collect();
            text.push_str(&header.join(","));
            text.push('\n');
            for i in 0..outputs.n_rows {
                let row = outputs.row(i);
                let k = argmax(row);
                text.push_str(&csv_field(&labels[k]));
                for p in row {
                    text.push_str(&format!(",{p:.6}"));
                }
                text.push('\n');
            }
        }
        // The run's transform, not a copy of its statistics, maps values back to target units.
        OutputKind::StandardizedValue { .. } => {
            text.push_str(&csv_field(&format!("predicted_{}", transform.target)));
            text.push('\n');
            for i in 0..outputs.n_rows {
                let v = transform.decode_regression(outputs.row(i)[0]);
                text.push_str(&format!("{v}\n"));
            }
        }
    }
    match out {
        Some(path) => {
            autodl_artifacts::io::write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {} predictions to {}", x.n_rows, path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    // With labels present, say how well the model did.
    if let Some(target) = table.column(&transform.target) {
        let y = transform.encode_target(target)?;
        let metric = manifest.task.metric();
        let m = crate::pipeline::score(metric, &outputs, &y, transform.target_scale());
        eprintln!(
            "{} on {} labelled rows: {:.4} (the run's test {}: {:.4})",
            m.name, x.n_rows, m.value, manifest.test_metric.name, manifest.test_metric.value
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

/// Prints and writes the drift report of `data` against the run's reference. Returns whether
/// drift was detected.
pub fn monitor(run: &Path, data: &Path, alpha: f64, out: Option<&Path>) -> Result<bool> {
    open_run(run)?;
    let reference: DriftReference = read_json(&run.join(paths::DRIFT_REFERENCE))?;
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
        "{:<width$}  {:>4}  {:>9}  {:>10}  {:>10}  {:>7}  drift",
        "column", "test", "statistic", "p", "p (BH)", "PSI"
    );
    for f in &report.features {
        println!(
            "{:<width$}  {:>4}  {:>9.4}  {:>10.3e}  {:>10.3e}  {:>7.3}  {}",
            f.column,
            f.test,
            f.statistic,
            f.p_value,
            f.p_adjusted,
            f.psi,
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
    let stem = data
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    let path = out.map_or_else(
        || run.join(format!("monitor/report-{stem}.json")),
        Path::to_path_buf,
    );
    write_json(&path, &report)?;
    eprintln!("report written to {}", path.display());
    Ok(report.drift_detected)
}
