//! `cargo xtask bench monitor`: autodl's drift report against Evidently's data-drift preset
//! on the same generated tables, each side in its own process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::bench::{bench_python, median, peak_rss_mib, run_side};

/// Settings of `cargo xtask bench monitor`.
#[derive(Debug, Clone)]
pub struct MonitorBenchArgs {
    pub rows: usize,
    pub repeats: usize,
    pub python: Option<PathBuf>,
    pub out: PathBuf,
}

/// What one side reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SideResult {
    /// Seconds per phase (`read`, …, `total`).
    seconds: BTreeMap<String, f64>,
    peak_rss_mib: f64,
    columns: usize,
    /// Columns the side's default tests flag.
    drifted_columns: Option<usize>,
    /// Tests used, with how many columns each.
    methods: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
struct MonitorBenchReport {
    rows: usize,
    repeats: usize,
    autodl: Vec<SideResult>,
    evidently: Vec<SideResult>,
    median_total_secs: [f64; 2],
    max_peak_rss_mib: [f64; 2],
    speedup: f64,
    memory_ratio: f64,
}

/// The autodl side, in its own process (`cargo xtask bench-monitor-worker`): read both
/// tables, build the reference from the first, compare the second with it, write the report.
/// Prints one JSON line.
pub fn worker(reference: &Path, current: &Path, out: &Path) -> Result<()> {
    let mut seconds = BTreeMap::new();
    let t0 = Instant::now();
    let ref_table = autodl_data::read_table(reference)?;
    let cur_table = autodl_data::read_table(current)?;
    seconds.insert("read".to_string(), t0.elapsed().as_secs_f64());
    let t = Instant::now();
    let drift_ref = autodl_monitor::build_reference_from_table(&ref_table, &[], "reference")?;
    drop(ref_table);
    let report = autodl_monitor::detect(
        &drift_ref,
        &cur_table,
        &autodl_monitor::DriftConfig::default(),
    )?;
    seconds.insert("drift_report".to_string(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    autodl_artifacts::io::write_json(out, &report)?;
    seconds.insert("write".to_string(), t.elapsed().as_secs_f64());
    seconds.insert("total".to_string(), t0.elapsed().as_secs_f64());
    let mut methods = BTreeMap::new();
    for f in &report.features {
        *methods.entry(f.test.clone()).or_insert(0) += 1;
    }
    let side = SideResult {
        seconds,
        peak_rss_mib: peak_rss_mib(),
        columns: report.features.len(),
        drifted_columns: Some(report.drifted_columns.len()),
        methods,
    };
    println!("{}", serde_json::to_string(&side)?);
    Ok(())
}

/// Generates the tables, runs both sides `repeats` times alternating, prints the phases, the
/// medians and the ratios, and writes the raw results as JSON.
pub fn run(args: &MonitorBenchArgs) -> Result<()> {
    if args.rows < 1000 || args.repeats == 0 {
        bail!("need --rows ≥ 1000 and --repeats ≥ 1");
    }
    let python = bench_python(args.python.as_deref())?;
    let script = crate::bench::repo_path("scripts/bench_monitor.py");
    let dir = std::env::temp_dir().join(format!("autodl-bench-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "bench monitor: generating {} rows × 50 columns (35 numeric, 15 categorical), half reference, half current with 7 columns moved",
        args.rows
    );
    let status = Command::new(&python)
        .arg(&script)
        .args(["generate", "--rows", &args.rows.to_string(), "--out"])
        .arg(&dir)
        .status()
        .context("starting the table generator")?;
    if !status.success() {
        bail!("the table generator failed ({status})");
    }
    let (reference, current) = (dir.join("reference.parquet"), dir.join("current.parquet"));
    let exe = std::env::current_exe()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..args.repeats {
        // Alternate which side goes first.
        for side in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
            if side == 0 {
                eprintln!("  repeat {}/{}: autodl", r + 1, args.repeats);
                let mut cmd = Command::new(&exe);
                cmd.arg("bench-monitor-worker")
                    .arg("--reference")
                    .arg(&reference)
                    .arg("--current")
                    .arg(&current)
                    .arg("--out")
                    .arg(dir.join("autodl-drift.json"));
                ours.push(run_side(cmd, "the autodl worker")?);
            } else {
                eprintln!("  repeat {}/{}: Evidently", r + 1, args.repeats);
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .arg("evidently")
                    .arg("--reference")
                    .arg(&reference)
                    .arg("--current")
                    .arg(&current)
                    .arg("--out")
                    .arg(dir.join("evidently-drift.json"));
                theirs.push(run_side(cmd, "the Evidently worker")?);
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    let total = |v: &[SideResult]| median(v.iter().map(|r| r.seconds["total"]).collect());
    let peak = |v: &[SideResult]| v.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let (t_ours, t_theirs) = (total(&ours), total(&theirs));
    let (m_ours, m_theirs) = (peak(&ours), peak(&theirs));
    println!(
        "\n{} rows × 50 columns (reference and current halves); median of {} runs each, alternating, one process per run\n",
        args.rows, args.repeats
    );
    crate::bench::print_phase_medians(&[
        ("autodl", ours.iter().map(|r| &r.seconds).collect()),
        ("Evidently", theirs.iter().map(|r| &r.seconds).collect()),
    ]);
    println!("\n| side | tests | columns flagged | peak memory (MiB) |\n|---|---|---:|---:|");
    for (name, side, m) in [("autodl", &ours, m_ours), ("Evidently", &theirs, m_theirs)] {
        let tests: Vec<String> = side[0]
            .methods
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        println!(
            "| {name} | {} | {} | {m:.0} |",
            tests.join(", "),
            side[0]
                .drifted_columns
                .map_or("?".to_string(), |d| d.to_string())
        );
    }
    let report = MonitorBenchReport {
        rows: args.rows,
        repeats: args.repeats,
        median_total_secs: [t_ours, t_theirs],
        max_peak_rss_mib: [m_ours, m_theirs],
        speedup: t_theirs / t_ours,
        memory_ratio: m_ours / m_theirs,
        autodl: ours,
        evidently: theirs,
    };
    println!(
        "\ntotal: autodl {t_ours:.2} s, Evidently {t_theirs:.2} s: {:.1}× faster; peak memory {m_ours:.0} vs {m_theirs:.0} MiB ({:.2}×)",
        report.speedup, report.memory_ratio
    );
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    autodl_artifacts::io::write_json(&args.out, &report)?;
    eprintln!("raw results: {}", args.out.display());
    Ok(())
}
