//! `cargo xtask compare DIR1 DIR2 …`: runs side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autodl_artifacts::criteria::{Assessment, Scorecard};
use autodl_artifacts::io::read_json;
use autodl_artifacts::run::{RunManifest, paths};

/// A value for a table cell: the number with its unit, compactly.
fn cell(value: f64, unit: &str) -> String {
    let number = if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value != 0.0 && (value.abs() >= 1e5 || value.abs() < 1e-3) {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

/// The comparison of `runs` as a Markdown table: what each ran on, its metrics, then the ten
/// criteria (value and unit, or "not measured").
pub fn table(runs: &[PathBuf]) -> Result<String> {
    if runs.len() < 2 {
        bail!("give at least two run directories to compare");
    }
    let mut loaded = Vec::new();
    for run in runs {
        let manifest: RunManifest = read_json(&run.join(paths::MANIFEST))
            .with_context(|| format!("{} is not a run directory", run.display()))?;
        let card: Scorecard = read_json(&run.join(paths::CRITERIA))
            .with_context(|| format!("reading the criteria of {}", run.display()))?;
        loaded.push((run.as_path(), manifest, card));
    }
    let mut s = String::new();
    let name = |p: &Path| {
        p.file_name().map_or(p.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        })
    };
    let _ = write!(s, "| |");
    for (run, ..) in &loaded {
        let _ = write!(s, " {} |", name(run));
    }
    let _ = writeln!(s, "\n|---|{}", "---|".repeat(loaded.len()));
    let mut row = |label: &str, f: &dyn Fn(&RunManifest, &Scorecard) -> String| {
        let _ = write!(s, "| {label} |");
        for (_, m, c) in &loaded {
            let _ = write!(s, " {} |", f(m, c).replace('|', "\\|"));
        }
        let _ = writeln!(s);
    };
    row("data", &|m, _| {
        format!(
            "{} ({} rows, target {})",
            Path::new(&m.data.path)
                .file_name()
                .map_or(m.data.path.clone(), |n| n.to_string_lossy().into_owned()),
            m.data.rows,
            m.data.target
        )
    });
    row("data sha256", &|m, _| {
        m.data.sha256.chars().take(12).collect()
    });
    row("seed", &|m, _| m.seed.to_string());
    row("test metric", &|m, _| {
        cell(m.test_metric.value, &m.test_metric.name)
    });
    row("baseline (test)", &|m, _| {
        m.baseline_test_metric
            .as_ref()
            .map_or("–".into(), |b| cell(b.value, &b.name))
    });
    row("wall seconds", &|m, _| {
        cell(m.stage_seconds.values().sum::<f64>(), "s")
    });
    row("autodl version", &|m, _| {
        m.versions.get("autodl").cloned().unwrap_or_default()
    });
    for k in 0..10 {
        let title = loaded[0].2.criteria[k].criterion.title();
        row(title, &|_, c| match &c.criteria[k].assessment {
            Assessment::Measured { value, unit, .. } => cell(*value, unit),
            Assessment::NotMeasured { .. } => "not measured".into(),
        });
    }
    Ok(s)
}

/// Prints the comparison, and writes it to `out` when given.
pub fn run(runs: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let text = table(runs)?;
    print!("{text}");
    if let Some(out) = out {
        autodl_artifacts::io::write_atomic(out, text.as_bytes())?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}
