//! `cargo xtask bench train`: autodl's trainer against PyTorch on the same MLP, data and
//! batches, each in its own process, alternating, with the same thread count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use autodl_artifacts::arch::{Activation, ArchitectureSpec};
use autodl_artifacts::context::{RunContext, splitmix64};
use autodl_artifacts::table::{Matrix, SplitData, Task};
use autodl_artifacts::trial::Hyperparams;
use serde::{Deserialize, Serialize};

/// The benchmark's fixed problem: features, hidden widths, classes, learning rate, decay.
const FEATURES: usize = 64;
const HIDDEN: [usize; 2] = [256, 256];
const CLASSES: usize = 10;
const LEARNING_RATE: f64 = 1e-3;
const WEIGHT_DECAY: f64 = 1e-2;
/// Validation rows the autodl trainer evaluates after every epoch (its real loop does).
const VALID_ROWS: usize = 256;

/// Settings of `cargo xtask bench train`.
#[derive(Debug, Clone)]
pub struct TrainBenchArgs {
    pub rows: usize,
    pub epochs: usize,
    pub batch: usize,
    pub repeats: usize,
    pub python: Option<PathBuf>,
    pub out: PathBuf,
}

/// What one worker process reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    pub seconds: f64,
    pub samples_per_sec: f64,
    pub peak_rss_mib: f64,
    pub final_loss: f64,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    problem: String,
    rows: usize,
    epochs: usize,
    batch: usize,
    threads: usize,
    autodl: Vec<WorkerResult>,
    pytorch: Vec<WorkerResult>,
    autodl_median_samples_per_sec: f64,
    pytorch_median_samples_per_sec: f64,
    ratio_autodl_over_pytorch: f64,
    autodl_peak_rss_mib: f64,
    pytorch_peak_rss_mib: f64,
}

/// Deterministic data: features uniform in [-1, 1), class = argmax of a fixed random linear
/// map (learnable, not trivially).
fn make_data(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = 7u64;
    let mut u = || {
        s = splitmix64(s);
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let projection: Vec<f32> = (0..FEATURES * CLASSES).map(|_| u()).collect();
    let mut x = Vec::with_capacity(rows * FEATURES);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..FEATURES).map(|_| u()).collect();
        let class = (0..CLASSES)
            .map(|c| {
                (0..FEATURES)
                    .map(|f| row[f] * projection[f * CLASSES + c])
                    .sum::<f32>()
            })
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(c, _)| c);
        x.extend(row);
        y.push(class as f32);
    }
    (x, y)
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Peak resident memory of this process, from /proc (Linux), in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The autodl side, run in its own process (`cargo xtask bench-worker`): the real trainer,
/// with its per-epoch validation on [`VALID_ROWS`] rows, timed from the call to the return.
pub fn worker(x_path: &Path, y_path: &Path, epochs: usize, batch: usize) -> Result<()> {
    let x = read_f32(x_path)?;
    let y = read_f32(y_path)?;
    let rows = y.len();
    if x.len() != rows * FEATURES || rows <= VALID_ROWS {
        bail!("bench data has {} values for {rows} rows", x.len());
    }
    let train = SplitData {
        x: Matrix::new(rows, FEATURES, x.clone()),
        y: y.clone(),
    };
    let valid = SplitData {
        x: Matrix::new(VALID_ROWS, FEATURES, x[..VALID_ROWS * FEATURES].to_vec()),
        y: y[..VALID_ROWS].to_vec(),
    };
    let arch = ArchitectureSpec::mlp(FEATURES, &HIDDEN, Activation::Relu, CLASSES);
    let hp = Hyperparams {
        learning_rate: LEARNING_RATE,
        batch_size: batch,
        weight_decay: WEIGHT_DECAY,
        max_epochs: epochs,
        patience: epochs,
        ..Hyperparams::default()
    };
    let data = autodl_train::TrainData {
        task: Task::Multiclass,
        n_outputs: CLASSES,
        target_scale: 1.0,
        train: &train,
        valid: &valid,
    };
    let start = Instant::now();
    let result = autodl_train::train(&arch, &hp, &data, &RunContext::new(0, "."))?;
    let seconds = start.elapsed().as_secs_f64();
    let trained_rows = rows - rows % batch + if rows % batch >= 2 { rows % batch } else { 0 };
    let epochs_run = result.history.len();
    let report = WorkerResult {
        seconds,
        samples_per_sec: (trained_rows * epochs_run) as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
        final_loss: result.history.last().map_or(f64::NAN, |e| e.train_loss),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The last JSON line a worker printed, parsed; a failed worker is an error with its stderr.
/// Runs one side of a benchmark in its own process and reads the JSON line it prints last.
pub(crate) fn run_side<T: serde::de::DeserializeOwned>(
    mut cmd: std::process::Command,
    what: &str,
) -> Result<T> {
    use anyhow::Context as _;
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    parse_last_json(&out, what)
}

/// Prints the median seconds of each phase of each side, as a Markdown table: `sides` holds
/// each side's name and its runs' seconds per phase.
pub(crate) fn print_phase_medians(sides: &[(&str, Vec<&std::collections::BTreeMap<String, f64>>)]) {
    println!("| side | phase | seconds (median) |\n|---|---|---:|");
    for (name, runs) in sides {
        let Some(first) = runs.first() else { continue };
        for phase in first.keys() {
            let secs = median(runs.iter().map(|r| r[phase]).collect());
            println!("| {name} | {phase} | {secs:.3} |");
        }
    }
}

pub(crate) fn parse_last_json<T: serde::de::DeserializeOwned>(
    output: &std::process::Output,
    who: &str,
) -> Result<T> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{who} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{who} printed no result: {stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("{who} result: {line}"))
}

/// A path inside the repository (scripts the benchmarks run).
pub(crate) fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The median (NaN when `v` is empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Finds the benchmark venv's python: `--python`, else `$AUTODL_BENCH_VENV/bin/python`, else
/// `~/.cache/autodl-bench-venv/bin/python`.
pub(crate) fn bench_python(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let venv = std::env::var_os("AUTODL_BENCH_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/autodl-bench-venv"))
        });
    let python = venv
        .map(|v| v.join("bin/python"))
        .filter(|p| p.exists())
        .context(
            "no benchmark venv: run scripts/bench-venv.sh (installs torch and optuna from \
             PyPI into ~/.cache/autodl-bench-venv, about 5 GB) or pass --python",
        )?;
    Ok(python)
}

/// Runs the comparison and prints a table; writes the raw results as JSON to `args.out`.
pub fn train(args: &TrainBenchArgs) -> Result<()> {
    if args.rows <= VALID_ROWS || args.epochs == 0 || args.batch < 2 || args.repeats == 0 {
        bail!("need --rows > {VALID_ROWS}, --epochs ≥ 1, --batch ≥ 2 and --repeats ≥ 1");
    }
    let python = bench_python(args.python.as_deref())?;
    let script = repo_path("scripts/bench_train.py");
    let dir = std::env::temp_dir().join(format!("autodl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (x, y) = make_data(args.rows);
    let (x_path, y_path) = (dir.join("x.f32"), dir.join("y.f32"));
    write_f32(&x_path, &x)?;
    write_f32(&y_path, &y)?;
    let exe = std::env::current_exe()?;
    let problem = format!(
        "MLP {FEATURES} → {} → {CLASSES} (ReLU), AdamW lr {LEARNING_RATE} decay {WEIGHT_DECAY}, cross-entropy",
        HIDDEN.map(|h| h.to_string()).join(" → ")
    );
    eprintln!(
        "bench train: {problem}; {} rows, {} epochs, batch {}, 1 thread each, {} alternating repeats",
        args.rows, args.epochs, args.batch, args.repeats
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 1..=args.repeats {
        let out = Command::new(&exe)
            .arg("bench-worker")
            .args(["--x".as_ref(), x_path.as_os_str()])
            .args(["--y".as_ref(), y_path.as_os_str()])
            .args(["--epochs", &args.epochs.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .output()
            .context("starting the autodl worker")?;
        let a: WorkerResult = parse_last_json(&out, "autodl worker")?;
        let hidden: Vec<String> = HIDDEN.iter().map(|h| h.to_string()).collect();
        let out = Command::new(&python)
            .arg(&script)
            .args(["--x".as_ref(), x_path.as_os_str()])
            .args(["--y".as_ref(), y_path.as_os_str()])
            .args(["--features", &FEATURES.to_string()])
            .args(["--classes", &CLASSES.to_string()])
            .arg("--hidden")
            .args(&hidden)
            .args(["--epochs", &args.epochs.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .args(["--lr", &LEARNING_RATE.to_string()])
            .args(["--weight-decay", &WEIGHT_DECAY.to_string()])
            .args(["--threads", "1"])
            .env("OMP_NUM_THREADS", "1")
            .output()
            .context("starting the PyTorch worker")?;
        let p: WorkerResult = parse_last_json(&out, "PyTorch worker")?;
        eprintln!(
            "  repeat {r}/{}: autodl {:>9.0} samples/s (loss {:.3}) · PyTorch {:>9.0} samples/s (loss {:.3})",
            args.repeats, a.samples_per_sec, a.final_loss, p.samples_per_sec, p.final_loss
        );
        ours.push(a);
        theirs.push(p);
    }
    let ours_sps = median(ours.iter().map(|r| r.samples_per_sec).collect());
    let theirs_sps = median(theirs.iter().map(|r| r.samples_per_sec).collect());
    let peak = |v: &[WorkerResult]| v.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    let report = BenchReport {
        problem,
        rows: args.rows,
        epochs: args.epochs,
        batch: args.batch,
        threads: 1,
        autodl_median_samples_per_sec: ours_sps,
        pytorch_median_samples_per_sec: theirs_sps,
        ratio_autodl_over_pytorch: ours_sps / theirs_sps,
        autodl_peak_rss_mib: peak(&ours),
        pytorch_peak_rss_mib: peak(&theirs),
        autodl: ours,
        pytorch: theirs,
    };
    println!();
    println!("| trainer | samples/s (median) | peak RSS (MiB) |");
    println!("|---|---:|---:|");
    println!(
        "| autodl (burn flex, 1 thread) | {:.0} | {:.0} |",
        report.autodl_median_samples_per_sec, report.autodl_peak_rss_mib
    );
    println!(
        "| PyTorch (CPU, 1 thread) | {:.0} | {:.0} |",
        report.pytorch_median_samples_per_sec, report.pytorch_peak_rss_mib
    );
    println!();
    println!(
        "ratio autodl / PyTorch: {:.2} (same run, same data, same batches)",
        report.ratio_autodl_over_pytorch
    );
    autodl_artifacts::io::write_json(&args.out, &report)?;
    eprintln!("raw results: {}", args.out.display());
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Settings of `cargo xtask bench search`.
#[derive(Debug, Clone)]
pub struct SearchBenchArgs {
    pub trials: usize,
    pub seeds: usize,
    pub python: Option<PathBuf>,
    /// The NAS table, the third objective (skipped when `None`).
    pub nas_table: Option<PathBuf>,
    /// autodl's candidates per proposal; `None` keeps its default.
    pub ei_candidates: Option<usize>,
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
struct SamplerResult {
    sampler: String,
    median_final_regret: f64,
    mean_final_regret: f64,
    /// Seeds whose best trial is the optimum (regret below 1e-9).
    seeds_at_optimum: usize,
    /// Final regret per seed.
    final_regrets: Vec<f64>,
    overhead_secs_per_trial: f64,
    /// Median best-so-far regret after every trial.
    median_curve: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct SearchBenchFunction {
    function: String,
    trials: usize,
    seeds: usize,
    autodl: SamplerResult,
    optuna: SamplerResult,
    optuna_version: String,
}

#[derive(Debug, Deserialize)]
struct OptunaOutput {
    optuna: String,
    curves: Vec<Vec<f64>>,
    overhead_secs_per_trial: f64,
}

impl SamplerResult {
    /// Summary of best-so-far regret `curves` (one per seed).
    fn new(sampler: String, curves: &[Vec<f64>], overhead_secs_per_trial: f64) -> Self {
        let finals: Vec<f64> = curves.iter().filter_map(|c| c.last().copied()).collect();
        SamplerResult {
            sampler,
            median_final_regret: median(finals.clone()),
            mean_final_regret: finals.iter().sum::<f64>() / finals.len().max(1) as f64,
            seeds_at_optimum: finals.iter().filter(|&&r| r < 1e-9).count(),
            final_regrets: finals,
            overhead_secs_per_trial,
            median_curve: median_curve(curves),
        }
    }
}

fn median_curve(curves: &[Vec<f64>]) -> Vec<f64> {
    let n = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|t| median(curves.iter().map(|c| c[t]).collect()))
        .collect()
}

/// Our TPE against Optuna's on Branin and Hartmann-6: the same trials and seeds count;
/// prints median regret curves, final regrets and the sampler overhead per trial.
pub fn search(args: &SearchBenchArgs) -> Result<()> {
    use autodl_search::tpe::{Config, TpeSettings, testfns};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    if args.trials < 11 || args.seeds == 0 {
        bail!("need --trials ≥ 11 (10 are random start-up trials) and --seeds ≥ 1");
    }
    let python = bench_python(args.python.as_deref())?;
    let script = repo_path("scripts/bench_search.py");
    type Objective = Box<dyn Fn(&Config) -> f64>;
    let mut functions: Vec<(&'static str, autodl_search::tpe::TpeSpace, Objective, f64)> = vec![
        (
            "branin",
            testfns::branin_space(),
            Box::new(testfns::branin),
            testfns::BRANIN_MIN,
        ),
        (
            "hartmann6",
            testfns::hartmann6_space(),
            Box::new(testfns::hartmann6),
            testfns::HARTMANN6_MIN,
        ),
    ];
    // The NAS table: minimise minus the final validation accuracy of the cell's network; the
    // Python side gets the same function as a lookup from every cell's code.
    let objective_file = dir_for_objective()?;
    if let Some(path) = &args.nas_table {
        let table = crate::nas::read_table(path)?;
        let rows = table.lookup()?;
        let losses: std::collections::BTreeMap<String, f64> = rows
            .iter()
            .map(|(cell, &row)| (cell.code(), -table.final_valid(row)))
            .collect();
        let optimum = losses.values().copied().fold(f64::INFINITY, f64::min);
        autodl_artifacts::io::write_json(
            &objective_file,
            &serde_json::json!({ "optimum": optimum, "losses": losses }),
        )?;
        let space = table.space();
        let tpe_space = space.tpe_space();
        let f = move |c: &Config| {
            let cell = space
                .decode(c)
                .cell
                .expect("a cells-only space decodes to a cell");
            losses[&cell.code()]
        };
        functions.push(("nas_table", tpe_space, Box::new(f), optimum));
    }
    let settings = TpeSettings {
        ei_candidates: args
            .ei_candidates
            .unwrap_or(TpeSettings::default().ei_candidates),
        ..TpeSettings::default()
    };
    let mut results = Vec::new();
    for (name, space, f, optimum) in functions {
        eprintln!(
            "bench search: {name}, {} trials × {} seeds; autodl TPE: {} random start-up trials, {} candidates; Optuna TPE: its defaults (10, 24)",
            args.trials, args.seeds, settings.startup_trials, settings.ei_candidates
        );
        let mut curves = Vec::new();
        let mut sampler_secs = 0.0;
        for seed in 0..args.seeds as u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut history: Vec<(Config, f64)> = Vec::with_capacity(args.trials);
            let (mut best, mut curve) = (f64::INFINITY, Vec::with_capacity(args.trials));
            for _ in 0..args.trials {
                let t0 = Instant::now();
                let c = space.suggest(&history, settings, &mut rng);
                sampler_secs += t0.elapsed().as_secs_f64();
                let loss = f(&c);
                best = best.min(loss);
                curve.push(best - optimum);
                history.push((c, loss));
            }
            curves.push(curve);
        }
        let ours = SamplerResult::new(
            "autodl TPE".into(),
            &curves,
            sampler_secs / (args.trials * args.seeds) as f64,
        );
        let out = Command::new(&python)
            .arg(&script)
            .args(["--function", name])
            .arg("--objective")
            .arg(&objective_file)
            .args(["--trials", &args.trials.to_string()])
            .args(["--seeds", &args.seeds.to_string()])
            .output()
            .context("starting the Optuna worker")?;
        let optuna: OptunaOutput = parse_last_json(&out, "the Optuna worker")?;
        let theirs = SamplerResult::new(
            format!("Optuna {} TPE", optuna.optuna),
            &optuna.curves,
            optuna.overhead_secs_per_trial,
        );
        println!(
            "\n{name}: median best-so-far regret over {} seeds",
            args.seeds
        );
        println!(
            "| trials | autodl TPE | {} |\n|---:|---:|---:|",
            theirs.sampler
        );
        let marks: Vec<usize> = (1..=args.trials)
            .filter(|t| t % 10 == 0 || *t == args.trials)
            .collect();
        for t in marks {
            println!(
                "| {t} | {:.4} | {:.4} |",
                ours.median_curve[t - 1],
                theirs.median_curve[t - 1]
            );
        }
        println!(
            "final regret, median: autodl {:.4}, Optuna {:.4}; mean: autodl {:.4}, Optuna {:.4}; seeds at the optimum: autodl {}, Optuna {} of {}",
            ours.median_final_regret,
            theirs.median_final_regret,
            ours.mean_final_regret,
            theirs.mean_final_regret,
            ours.seeds_at_optimum,
            theirs.seeds_at_optimum,
            args.seeds
        );
        println!(
            "sampler overhead per trial: autodl {:.3} ms, Optuna {:.3} ms (Optuna / autodl = {:.1}×)",
            ours.overhead_secs_per_trial * 1e3,
            theirs.overhead_secs_per_trial * 1e3,
            theirs.overhead_secs_per_trial / ours.overhead_secs_per_trial
        );
        results.push(SearchBenchFunction {
            function: name.into(),
            trials: args.trials,
            seeds: args.seeds,
            autodl: ours,
            optuna: theirs,
            optuna_version: optuna.optuna,
        });
    }
    autodl_artifacts::io::write_json(&args.out, &results)?;
    eprintln!("raw results: {}", args.out.display());
    std::fs::remove_file(&objective_file).ok();
    Ok(())
}

/// Where the NAS objective is written for the Python side.
fn dir_for_objective() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("autodl-bench-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("nas-objective.json"))
}
