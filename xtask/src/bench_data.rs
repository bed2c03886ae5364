//! `cargo xtask bench data`: the data stage against pandas + scikit-learn on a generated
//! table, each side in its own process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use autodl_artifacts::context::RunContext;
use serde::{Deserialize, Serialize};

use crate::bench::{bench_python, median, peak_rss_mib, run_side};

/// Settings of `cargo xtask bench data`.
#[derive(Debug, Clone)]
pub struct DataBenchArgs {
    pub rows: usize,
    pub repeats: usize,
    pub python: Option<PathBuf>,
    pub out: PathBuf,
}

/// What one side reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SideResult {
    /// Seconds per phase (`read`, `profile`, …, `total`).
    seconds: std::collections::BTreeMap<String, f64>,
    peak_rss_mib: f64,
    /// Features after encoding.
    features: usize,
    /// Rows of the transformed train, validation and test splits.
    rows: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct DataBenchReport {
    rows: usize,
    columns: usize,
    repeats: usize,
    autodl: Vec<SideResult>,
    pandas_sklearn: Vec<SideResult>,
    median_total_secs: [f64; 2],
    max_peak_rss_mib: [f64; 2],
    speedup: f64,
    memory_ratio: f64,
    versions: String,
}

/// The autodl side, in its own process (`cargo xtask bench-data-worker`): read, profile,
/// then prepare (profile, split, fit the transform on the training split, transform every
/// split). Prints one JSON line.
pub fn worker(file: &Path, target: &str) -> Result<()> {
    let mut seconds = std::collections::BTreeMap::new();
    let t0 = Instant::now();
    let table = autodl_data::read_table(file)?;
    seconds.insert("read".to_string(), t0.elapsed().as_secs_f64());
    let cfg = autodl_data::PrepareConfig::new(target);
    let t = Instant::now();
    let prepared = autodl_data::prepare(&cfg, &table, "bench", &RunContext::new(0, "."))?;
    seconds.insert(
        "profile_split_fit_transform".to_string(),
        t.elapsed().as_secs_f64(),
    );
    seconds.insert("total".to_string(), t0.elapsed().as_secs_f64());
    let data = &prepared.data;
    let report = SideResult {
        seconds,
        peak_rss_mib: peak_rss_mib(),
        features: data.feature_names.len(),
        rows: vec![data.train.y.len(), data.valid.y.len(), data.test.y.len()],
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Generates the table, runs both sides `repeats` times alternating, prints the phases, the
/// medians and the ratios, and writes the raw results as JSON.
pub fn run(args: &DataBenchArgs) -> Result<()> {
    if args.rows < 100 || args.repeats == 0 {
        bail!("need --rows ≥ 100 and --repeats ≥ 1");
    }
    let python = bench_python(args.python.as_deref())?;
    let script = crate::bench::repo_path("scripts/bench_data.py");
    let dir = std::env::temp_dir().join(format!("autodl-bench-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let table = dir.join("table.parquet");
    eprintln!(
        "bench data: generating {} rows × 50 columns (30 numeric, 12 categorical, 4 dates, 3 booleans, target)",
        args.rows
    );
    let status = Command::new(&python)
        .arg(&script)
        .args(["generate", "--rows", &args.rows.to_string(), "--out"])
        .arg(&table)
        .status()
        .context("starting the table generator")?;
    if !status.success() {
        bail!("the table generator failed ({status})");
    }
    let exe = std::env::current_exe()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..args.repeats {
        eprintln!("  repeat {}/{}: autodl", r + 1, args.repeats);
        let mut cmd = Command::new(&exe);
        cmd.arg("bench-data-worker")
            .arg("--file")
            .arg(&table)
            .args(["--target", "y"]);
        ours.push(run_side(cmd, "the autodl worker")?);
        eprintln!("  repeat {}/{}: pandas + scikit-learn", r + 1, args.repeats);
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg("pandas")
            .arg("--file")
            .arg(&table)
            .args(["--target", "y"]);
        theirs.push(run_side(cmd, "the pandas worker")?);
    }
    std::fs::remove_dir_all(&dir).ok();

    let total = |v: &[SideResult]| median(v.iter().map(|r| r.seconds["total"]).collect());
    let peak = |v: &[SideResult]| v.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let (t_ours, t_theirs) = (total(&ours), total(&theirs));
    let (m_ours, m_theirs) = (peak(&ours), peak(&theirs));
    println!(
        "\n{} rows × 50 columns; median of {} runs each, alternating, one process per run\n",
        args.rows, args.repeats
    );
    crate::bench::print_phase_medians(&[
        ("autodl", ours.iter().map(|r| &r.seconds).collect()),
        (
            "pandas + scikit-learn",
            theirs.iter().map(|r| &r.seconds).collect(),
        ),
    ]);
    println!(
        "\n| side | total seconds | peak RSS (MiB) | features |\n|---|---:|---:|---:|\n| autodl | {t_ours:.3} | {m_ours:.0} | {} |\n| pandas + scikit-learn | {t_theirs:.3} | {m_theirs:.0} | {} |",
        ours[0].features, theirs[0].features
    );
    println!(
        "\nautodl is {:.1}× faster, with {:.2}× the peak memory of pandas + scikit-learn",
        t_theirs / t_ours,
        m_ours / m_theirs
    );
    let report = DataBenchReport {
        rows: args.rows,
        columns: 50,
        repeats: args.repeats,
        median_total_secs: [t_ours, t_theirs],
        max_peak_rss_mib: [m_ours, m_theirs],
        speedup: t_theirs / t_ours,
        memory_ratio: m_ours / m_theirs,
        autodl: ours,
        pandas_sklearn: theirs,
        versions: "see scripts/bench_data.py output".into(),
    };
    autodl_artifacts::io::write_json(&args.out, &report)?;
    eprintln!("raw results: {}", args.out.display());
    Ok(())
}
