//! The NAS table: every architecture of a small cell space trained once with fixed seeds
//! (`cargo xtask bench nas-table`), and strategies compared on it in milliseconds
//! (`cargo xtask bench nas`), after NAS-Bench-201 (Dong & Yang 2020).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::bench::median;
use anyhow::{Context, Result, bail};
use autodl_artifacts::arch::InputShape;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::table::{MetricValue, PreparedData};
use autodl_artifacts::trial::{Hyperparams, TrialOutcome};
use autodl_search::{Candidate, Cell, Evaluator, SearchSpace, Strategy};
use serde::{Deserialize, Serialize};

/// How a table was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableAbout {
    /// The command that made it.
    pub command: String,
    /// Training file (validation is split from it) and its SHA-256.
    pub data: String,
    pub data_sha256: String,
    /// Test file and its SHA-256.
    pub test: String,
    pub test_sha256: String,
    pub target: String,
    pub train_rows: usize,
    pub valid_rows: usize,
    pub test_rows: usize,
    pub input_features: usize,
    pub input_shape: InputShape,
    pub outputs: usize,
    /// Channels of the first stage (the second has twice as many).
    pub channels: usize,
    /// Epochs every architecture is trained for.
    pub epochs: usize,
    /// Seed of the split and of every architecture's initialisation, shuffles and dropout.
    pub seed: u64,
    /// The training options (the same for every architecture).
    pub hyperparams: Hyperparams,
    /// The macro skeleton, with the cell of all-convolution edges.
    pub skeleton: String,
    /// 4096 cells, of which this many are connected…
    pub connected_cells: usize,
    /// …and compute this many different networks (the table's rows).
    pub distinct_architectures: usize,
    /// Sum of the training times (seconds) and the wall-clock time of the whole run.
    pub train_seconds: f64,
    pub wall_seconds: f64,
    /// Parallel training jobs.
    pub jobs: usize,
    pub machine: String,
    /// The git commit of the code that made the table.
    pub commit: String,
}

/// One architecture of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableArch {
    /// [`autodl_artifacts::arch::ArchitectureSpec::canonical_key`] of the network.
    pub key: String,
    /// The first cell (in enumeration order) that renders to it.
    pub cell: String,
    /// How many connected cells render to it.
    pub cells: usize,
    pub parameters: usize,
    pub macs: usize,
    /// Validation accuracy after each epoch.
    pub valid_accuracy: Vec<f64>,
    /// Test accuracy of the weights of the best validation epoch.
    pub test_accuracy: f64,
    pub train_seconds: f64,
}

/// The table file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NasTable {
    pub about: TableAbout,
    /// Sorted by key.
    pub archs: Vec<TableArch>,
}

impl NasTable {
    /// The search space the table covers.
    pub fn space(&self) -> SearchSpace {
        let a = &self.about;
        SearchSpace::cell_benchmark(
            a.input_features,
            a.input_shape,
            a.outputs,
            a.channels,
            a.epochs,
        )
    }

    /// The table row of every one of the 4096 cells (a disconnected cell maps to its
    /// [`Cell::repaired`] form, as TPE proposals do), by cell.
    pub fn lookup(&self) -> Result<HashMap<Cell, usize>> {
        let by_key = self.rows_by_key();
        let keys = cell_keys(&self.space())?;
        Cell::all()
            .map(|cell| {
                let key = &keys[&cell.repaired()];
                let row = by_key
                    .get(key.as_str())
                    .with_context(|| format!("the table has no row for cell {}", cell.code()))?;
                Ok((cell, *row))
            })
            .collect()
    }

    /// Each row's index by its network's canonical key.
    pub fn rows_by_key(&self) -> HashMap<&str, usize> {
        self.archs
            .iter()
            .enumerate()
            .map(|(i, a)| (a.key.as_str(), i))
            .collect()
    }

    /// Final validation accuracy of row `i`.
    pub fn final_valid(&self, i: usize) -> f64 {
        *self.archs[i].valid_accuracy.last().unwrap_or(&0.0)
    }
}

/// The canonical key of every connected cell's network in `space`.
fn cell_keys(space: &SearchSpace) -> Result<HashMap<Cell, String>> {
    let skeleton = space
        .only_cells
        .as_deref()
        .context("not a cells-only space")?;
    Cell::all()
        .filter(Cell::is_connected)
        .map(|cell| {
            let g = autodl_search::Genome {
                cell: Some(cell),
                ..skeleton.clone()
            };
            Ok((cell, space.render(&g).canonical_key()?))
        })
        .collect()
}

/// Settings of `cargo xtask bench nas-table`.
#[derive(Debug, Clone)]
pub struct TableArgs {
    pub data: PathBuf,
    pub test: PathBuf,
    pub target: String,
    pub channels: usize,
    pub epochs: usize,
    /// Training rows used (the first of the shuffled training split), at most.
    pub train_rows: usize,
    pub seed: u64,
    pub jobs: usize,
    pub limit: Option<usize>,
    pub out: PathBuf,
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU model and count, from `/proc/cpuinfo` where there is one.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {cpus} CPUs available")
}

/// Trains every distinct architecture of the cell space and writes the table.
pub fn generate(args: &TableArgs) -> Result<()> {
    if args.epochs == 0 || args.channels == 0 || args.jobs == 0 {
        bail!("--epochs, --channels and --jobs must be at least 1");
    }
    let started = Instant::now();
    // The code that trains is the code checked out now.
    let commit = git_commit();
    let ctx = RunContext::new(args.seed, std::env::temp_dir());
    let table = autodl_data::read_table(&args.data)?;
    let test_table = autodl_data::read_table(&args.test)?;
    let data_sha = autodl_artifacts::io::sha256_file(&args.data)?;
    let cfg = autodl_data::PrepareConfig::new(&args.target);
    let mut prepared = autodl_data::prepare_with_test(&cfg, &table, &test_table, &data_sha, &ctx)?;
    // The split is shuffled: its first rows are a random subset.
    let train = &mut prepared.data.train;
    let keep = args.train_rows.min(train.y.len());
    let cols = train.x.n_cols;
    train.x =
        autodl_artifacts::table::Matrix::new(keep, cols, train.x.data[..keep * cols].to_vec());
    train.y.truncate(keep);
    let data: &PreparedData = &prepared.data;
    if data.n_classes < 2 {
        bail!(
            "the NAS table needs a classification target; '{}' is not one",
            args.target
        );
    }
    if !data.input_shape.is_spatial() {
        bail!(
            "the NAS table's cells need a signal or image input; {} has plain vector features",
            args.data.display()
        );
    }
    let space = SearchSpace::cell_benchmark(
        data.feature_names.len(),
        data.input_shape,
        data.n_outputs(),
        args.channels,
        args.epochs,
    );
    let skeleton = space.only_cells.clone().context("a cells-only space")?;
    let keys = cell_keys(&space)?;
    // Distinct networks in order of their first cell.
    let mut firsts: Vec<(String, Cell, usize)> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for cell in Cell::all().filter(Cell::is_connected) {
        let key = keys[&cell].as_str();
        match seen.get(key) {
            Some(&i) => firsts[i].2 += 1,
            None => {
                seen.insert(key, firsts.len());
                firsts.push((key.to_string(), cell, 1));
            }
        }
    }
    let distinct = firsts.len();
    let todo = args.limit.unwrap_or(distinct).min(distinct);
    eprintln!(
        "nas-table: {} connected cells, {distinct} distinct networks; training {todo} for {} epochs on {} ({} train / {} valid rows, test {}), {} jobs",
        keys.len(),
        args.epochs,
        args.data.display(),
        data.train.y.len(),
        data.valid.y.len(),
        data.test.y.len(),
        args.jobs
    );
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let rows: Mutex<Vec<TableArch>> = Mutex::new(Vec::with_capacity(todo));
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= todo || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let (key, cell, cells) = &firsts[i];
                    let genome = autodl_search::Genome {
                        cell: Some(*cell),
                        ..(*skeleton).clone()
                    };
                    let spec = space.render(&genome);
                    let t0 = Instant::now();
                    let train = autodl_train::TrainData::of(data, 1.0);
                    let run = RunContext {
                        progress: Arc::new(autodl_artifacts::context::Silent),
                        ..ctx.clone()
                    };
                    let result = autodl_train::train(&spec, &genome.hyperparams, &train, &run)
                        .map_err(anyhow::Error::from)
                        .and_then(|r| {
                            let weights = r.weights.context("training kept no weights")?;
                            let p =
                                autodl_train::predict(&spec, &weights, data.task, &data.test.x)?;
                            let metric = autodl_artifacts::table::Metric::Accuracy;
                            Ok((r.history, metric.compute_scaled(&p, &data.test.y, 1.0)))
                        });
                    let (history, test_accuracy) = match result {
                        Ok(r) => r,
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("cell {}: {e:#}", cell.code()));
                            break;
                        }
                    };
                    let row = TableArch {
                        key: key.clone(),
                        cell: cell.code(),
                        cells: *cells,
                        parameters: spec.parameter_count().unwrap_or(0),
                        macs: spec.inference_macs().unwrap_or(0),
                        valid_accuracy: history.iter().map(|e| e.valid_metric).collect(),
                        test_accuracy,
                        train_seconds: t0.elapsed().as_secs_f64(),
                    };
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    let elapsed = started.elapsed().as_secs_f64();
                    eprintln!(
                        "  [{n}/{todo}] {} valid {:.4} test {:.4} ({:.1} s) · eta {:.0} s",
                        row.cell,
                        row.valid_accuracy.last().unwrap_or(&0.0),
                        row.test_accuracy,
                        row.train_seconds,
                        elapsed / n as f64 * (todo - n) as f64
                    );
                    rows.lock().unwrap().push(row);
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().unwrap().first() {
        bail!("training failed: {e}");
    }
    let mut archs = rows.into_inner().unwrap();
    archs.sort_by(|a, b| a.key.cmp(&b.key));
    let about = TableAbout {
        command: format!(
            "cargo xtask bench nas-table --data {} --test {} --target {} --channels {} --epochs {} --train-rows {} --seed {} --jobs {}{}",
            args.data.display(),
            args.test.display(),
            args.target,
            args.channels,
            args.epochs,
            args.train_rows,
            args.seed,
            args.jobs,
            args.limit
                .map_or(String::new(), |l| format!(" --limit {l}"))
        ),
        data: args.data.display().to_string(),
        data_sha256: data_sha,
        test: args.test.display().to_string(),
        test_sha256: autodl_artifacts::io::sha256_file(&args.test)?,
        target: args.target.clone(),
        train_rows: data.train.y.len(),
        valid_rows: data.valid.y.len(),
        test_rows: data.test.y.len(),
        input_features: data.feature_names.len(),
        input_shape: data.input_shape,
        outputs: data.n_outputs(),
        channels: args.channels,
        epochs: args.epochs,
        seed: args.seed,
        hyperparams: skeleton.hyperparams.clone(),
        skeleton: space.render(&skeleton).describe(),
        connected_cells: keys.len(),
        distinct_architectures: distinct,
        train_seconds: archs.iter().map(|a| a.train_seconds).sum(),
        wall_seconds: started.elapsed().as_secs_f64(),
        jobs: args.jobs,
        machine: machine(),
        commit,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    autodl_artifacts::io::write_json(&args.out, &NasTable { about, archs })?;
    eprintln!(
        "wrote {} ({todo} architectures, {:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads a table written by [`generate`].
pub fn read_table(path: &Path) -> Result<NasTable> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the NAS table {}", path.display()))?;
    let table: NasTable = serde_json::from_str(&text)
        .with_context(|| format!("parsing the NAS table {}", path.display()))?;
    if table.archs.len() != table.about.distinct_architectures {
        bail!(
            "{} is partial: {} of {} architectures (made with --limit?)",
            path.display(),
            table.archs.len(),
            table.about.distinct_architectures
        );
    }
    Ok(table)
}

/// Looks candidates up in the table instead of training them; the cost is counted in epochs.
pub struct TableEvaluator<'a> {
    table: &'a NasTable,
    rows: HashMap<&'a str, usize>,
    /// Epochs each trial has been trained for so far.
    trained: HashMap<u32, usize>,
    /// Epochs spent in all.
    pub spent_epochs: usize,
    /// After each fully trained candidate: (epochs spent so far, its table row).
    pub finished: Vec<(usize, usize)>,
    /// Stop once this many epochs are spent (sets `cancel`).
    budget_epochs: usize,
    cancel: Arc<AtomicBool>,
}

impl<'a> TableEvaluator<'a> {
    pub fn new(table: &'a NasTable, budget_epochs: usize, cancel: Arc<AtomicBool>) -> Self {
        TableEvaluator {
            table,
            rows: table.rows_by_key(),
            trained: HashMap::new(),
            spent_epochs: 0,
            finished: Vec::new(),
            budget_epochs,
            cancel,
        }
    }
}

impl Evaluator for TableEvaluator<'_> {
    fn evaluate(&mut self, trial: u32, candidate: &Candidate) -> TrialOutcome {
        self.evaluate_partial(trial, candidate, usize::MAX).0
    }

    fn evaluate_partial(
        &mut self,
        trial: u32,
        candidate: &Candidate,
        epochs: usize,
    ) -> (TrialOutcome, bool) {
        let row = candidate
            .architecture
            .canonical_key()
            .ok()
            .and_then(|k| self.rows.get(k.as_str()).copied());
        let Some(row) = row else {
            return (
                TrialOutcome::Failed {
                    reason: "not in the NAS table".into(),
                },
                true,
            );
        };
        let curve = &self.table.archs[row].valid_accuracy;
        let upto = epochs.min(curve.len()).max(1);
        let before = self.trained.insert(trial, upto).unwrap_or(0);
        self.spent_epochs += upto.saturating_sub(before);
        let done = upto == curve.len();
        if done {
            self.finished.push((self.spent_epochs, row));
        }
        if self.spent_epochs >= self.budget_epochs {
            self.cancel.store(true, Ordering::Relaxed);
        }
        let value = curve[upto - 1];
        (
            TrialOutcome::Completed {
                valid_metric: MetricValue {
                    name: "accuracy".into(),
                    value,
                },
                score: value,
                epochs: upto,
                best_epoch: upto,
            },
            done,
        )
    }
}

/// Settings of `cargo xtask bench nas`.
#[derive(Debug, Clone)]
pub struct NasBenchArgs {
    pub table: PathBuf,
    pub seeds: usize,
    /// Budget in full trainings (epochs / the table's epochs).
    pub evaluations: usize,
    pub out: PathBuf,
}

/// One strategy's runs on the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyRuns {
    pub strategy: String,
    /// Full-training equivalents to reach the top 1% (validation), per seed; `None` when the
    /// budget ran out first.
    pub to_top1: Vec<Option<f64>>,
    pub median_to_top1: Option<f64>,
    /// Median validation regret of the incumbent after 1, 2, … full-training equivalents;
    /// `None` while most runs have no fully trained network yet.
    pub median_regret: Vec<Option<f64>>,
    /// Median test accuracy of the final incumbent.
    pub median_final_test: f64,
    /// Median wall-clock seconds per run (the strategy's own overhead; lookups are free).
    pub median_seconds: f64,
}

/// The comparison file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NasBenchReport {
    pub table: String,
    pub distinct_architectures: usize,
    pub top1_count: usize,
    pub top1_threshold: f64,
    pub best_valid: f64,
    pub seeds: usize,
    pub evaluations: usize,
    pub strategies: Vec<StrategyRuns>,
}

/// Median of values where `None` (not reached) ranks above every number.
fn median_censored(v: &[Option<f64>]) -> Option<f64> {
    let mut sorted: Vec<f64> = v.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
    sorted.sort_by(f64::total_cmp);
    let m = median(sorted);
    m.is_finite().then_some(m)
}

/// The strategies compared, by name.
pub fn compared_strategies() -> Vec<Strategy> {
    vec![
        Strategy::Random,
        Strategy::default_evolution(),
        Strategy::RegularizedEvolution {
            population: 12,
            tournament: 4,
        },
        Strategy::default_tpe(),
        Strategy::SuccessiveHalving {
            bracket: 9,
            eta: 3,
            min_epochs: 1,
        },
        Strategy::Hyperband {
            bracket: 9,
            eta: 3,
            min_epochs: 1,
        },
        Strategy::Bohb {
            bracket: 9,
            eta: 3,
            min_epochs: 1,
        },
    ]
}

/// A strategy's name with the settings that tell variants apart.
fn label(strategy: &Strategy) -> String {
    match strategy {
        Strategy::RegularizedEvolution {
            population,
            tournament,
        } => format!("evolution ({population}/{tournament})"),
        Strategy::Tpe { startup_trials } => format!("tpe ({startup_trials} start-up)"),
        other => other.name().to_string(),
    }
}

/// Runs every strategy `seeds` times on the table and compares them.
pub fn bench(args: &NasBenchArgs) -> Result<NasBenchReport> {
    let table = read_table(&args.table)?;
    // Every cell must render to a row: a table made by other rendering code is refused.
    table.lookup()?;
    let space = table.space();
    let n = table.archs.len();
    let mut finals: Vec<f64> = (0..n).map(|i| table.final_valid(i)).collect();
    finals.sort_by(|a, b| b.total_cmp(a));
    let top1_count = n.div_ceil(100);
    let threshold = finals[top1_count - 1];
    let best = finals[0];
    let epochs = table.about.epochs;
    eprintln!(
        "bench nas: {n} architectures; best validation accuracy {best:.4}; top 1% = the best {top1_count} (validation ≥ {threshold:.4}); {} seeds × {} full trainings",
        args.seeds, args.evaluations
    );
    let mut strategies = Vec::new();
    for strategy in compared_strategies() {
        let mut to_top1 = Vec::new();
        let mut curves = Vec::new();
        let mut tests = Vec::new();
        let mut seconds = Vec::new();
        for seed in 0..args.seeds as u64 {
            let ctx = RunContext::new(seed, std::env::temp_dir());
            let mut eval =
                TableEvaluator::new(&table, args.evaluations * epochs, ctx.cancel.clone());
            let cfg = autodl_search::SearchConfig {
                strategy: strategy.clone(),
                budget: autodl_search::Budget {
                    max_trials: Some((args.evaluations * 20) as u32),
                    seconds: None,
                },
                objective: autodl_search::Objective::Score,
            };
            let t0 = Instant::now();
            autodl_search::search(&cfg, &space, &mut eval, &ctx)?;
            seconds.push(t0.elapsed().as_secs_f64());
            // The incumbent: the best fully trained architecture so far.
            let mut incumbent: Option<usize> = None;
            let mut curve = vec![f64::NAN; args.evaluations];
            let mut reached = None;
            let mut k = 0;
            for unit in 1..=args.evaluations {
                while k < eval.finished.len() && eval.finished[k].0 <= unit * epochs {
                    let row = eval.finished[k].1;
                    if incumbent.is_none_or(|i| table.final_valid(row) > table.final_valid(i)) {
                        incumbent = Some(row);
                    }
                    if reached.is_none() && table.final_valid(row) >= threshold {
                        reached = Some(eval.finished[k].0 as f64 / epochs as f64);
                    }
                    k += 1;
                }
                // No incumbent yet counts as worse than any regret (infinite).
                curve[unit - 1] = incumbent.map_or(f64::INFINITY, |i| best - table.final_valid(i));
            }
            tests.push(incumbent.map_or(0.0, |i| table.archs[i].test_accuracy));
            to_top1.push(reached);
            curves.push(curve);
        }
        let median_regret: Vec<Option<f64>> = (0..args.evaluations)
            .map(|t| Some(median(curves.iter().map(|c| c[t]).collect())).filter(|m| m.is_finite()))
            .collect();
        let runs = StrategyRuns {
            strategy: label(&strategy),
            median_to_top1: median_censored(&to_top1),
            to_top1,
            median_regret,
            median_final_test: median(tests),
            median_seconds: median(seconds),
        };
        eprintln!(
            "  {:<22} median full trainings to the top 1%: {}",
            runs.strategy,
            runs.median_to_top1
                .map_or(format!("> {}", args.evaluations), |m| format!("{m:.1}"))
        );
        strategies.push(runs);
    }
    let report = NasBenchReport {
        table: args.table.display().to_string(),
        distinct_architectures: n,
        top1_count,
        top1_threshold: threshold,
        best_valid: best,
        seeds: args.seeds,
        evaluations: args.evaluations,
        strategies,
    };
    print_report(&report);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    autodl_artifacts::io::write_json(&args.out, &report)?;
    let svg = args.out.with_extension("svg");
    std::fs::write(&svg, regret_svg(&report))?;
    let md = args.out.with_extension("md");
    std::fs::write(&md, markdown(&report, &svg))?;
    eprintln!(
        "raw results: {}; report with the regret plot: {} ({})",
        args.out.display(),
        md.display(),
        svg.display()
    );
    Ok(report)
}

const COLOURS: [&str; 8] = [
    "#444444", "#1f77b4", "#17becf", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Median regret against full trainings, one line per strategy (log-scaled x axis).
fn regret_svg(r: &NasBenchReport) -> String {
    use std::fmt::Write as _;
    let (w, h, left, bottom, top, right) = (760.0, 420.0, 60.0, 50.0, 20.0, 190.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let ymax = r
        .strategies
        .iter()
        .flat_map(|s| s.median_regret.iter().flatten().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let xmax = (r.evaluations as f64).ln();
    let x = |k: usize| left + (k as f64).ln() / xmax * pw;
    let y = |v: f64| top + ph - v / ymax * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    for k in [1usize, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
        if k > r.evaluations {
            break;
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{k}</text>"#,
            x(k),
            top + ph + 16.0
        );
    }
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.3}</text>"#,
            left - 6.0,
            y(v) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">full trainings (log scale)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">median validation regret</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, st) in r.strategies.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = st
            .median_regret
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| format!("{:.1},{:.1}", x(k + 1), y(v))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = top + 16.0 * i as f64 + 8.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + pw + 12.0,
            left + pw + 32.0,
            left + pw + 38.0,
            ly + 4.0,
            st.strategy
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The comparison as a Markdown report: the table, the plot, a text rendering of it.
fn markdown(r: &NasBenchReport, svg: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Strategies on the NAS table\n\n{} architectures ({}); top 1% = the best {} \
         (validation accuracy ≥ {:.4}; best {:.4}). {} seeds per strategy, a budget of {} full \
         trainings each; multi-fidelity strategies pay for the epochs they use.\n",
        r.distinct_architectures,
        r.table,
        r.top1_count,
        r.top1_threshold,
        r.best_valid,
        r.seeds,
        r.evaluations
    );
    let _ = writeln!(
        s,
        "| strategy | median full trainings to the top 1% | reached in | median final test accuracy | median seconds per run |\n|---|---:|---:|---:|---:|"
    );
    for st in &r.strategies {
        let reached = st.to_top1.iter().filter(|x| x.is_some()).count();
        let _ = writeln!(
            s,
            "| {} | {} | {reached}/{} | {:.4} | {:.3} |",
            st.strategy,
            st.median_to_top1
                .map_or(format!("> {}", r.evaluations), |m| format!("{m:.1}")),
            st.to_top1.len(),
            st.median_final_test,
            st.median_seconds
        );
    }
    let name = svg
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let _ = writeln!(s, "\n![median regret against full trainings]({name})\n");
    // The same curves as text: one letter per strategy, log-scaled x.
    let (cols, rows) = (64usize, 14usize);
    let ymax = r
        .strategies
        .iter()
        .flat_map(|st| st.median_regret.iter().flatten().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut grid = vec![vec![' '; cols]; rows];
    let letters: Vec<char> = ('a'..='z').collect();
    // The full trainings each column shows (log-spaced).
    let at: Vec<usize> = (0..cols)
        .map(|c| {
            let k = ((c as f64 / (cols - 1) as f64) * (r.evaluations as f64).ln()).exp();
            (k.round() as usize).clamp(1, r.evaluations)
        })
        .collect();
    for (i, st) in r.strategies.iter().enumerate() {
        for (c, &k) in at.iter().enumerate() {
            let Some(v) = st.median_regret[k - 1] else {
                continue;
            };
            let row = rows - 1 - ((v / ymax) * (rows - 1) as f64).round() as usize;
            if grid[row][c] == ' ' {
                grid[row][c] = letters[i];
            }
        }
    }
    let _ = writeln!(s, "```\nregret {ymax:.3}");
    for row in grid {
        let _ = writeln!(s, "  │{}", row.into_iter().collect::<String>());
    }
    let _ = writeln!(
        s,
        "  └{}\n   1 … {} full trainings (log scale)",
        "─".repeat(cols),
        r.evaluations
    );
    for (i, st) in r.strategies.iter().enumerate() {
        let _ = writeln!(s, "   {} = {}", letters[i], st.strategy);
    }
    let _ = writeln!(s, "```");
    s
}

fn print_report(r: &NasBenchReport) {
    println!(
        "\nNAS table: {} architectures; top 1% = validation accuracy ≥ {:.4} (best {:.4}); {} seeds",
        r.distinct_architectures, r.top1_threshold, r.best_valid, r.seeds
    );
    println!(
        "\n| strategy | median full trainings to the top 1% | reached in | median final test accuracy |"
    );
    println!("|---|---:|---:|---:|");
    for s in &r.strategies {
        let reached = s.to_top1.iter().filter(|x| x.is_some()).count();
        println!(
            "| {} | {} | {reached}/{} | {:.4} |",
            s.strategy,
            s.median_to_top1
                .map_or(format!("> {}", r.evaluations), |m| format!("{m:.1}")),
            s.to_top1.len(),
            s.median_final_test
        );
    }
    println!(
        "\nmedian validation regret (best accuracy in the table − incumbent's) after k full trainings:"
    );
    let names: Vec<&str> = r.strategies.iter().map(|s| s.strategy.as_str()).collect();
    println!("| k | {} |", names.join(" | "));
    println!("|---:|{}", "---:|".repeat(names.len()));
    for k in (1..=r.evaluations).filter(|k| [1, 2, 5].contains(k) || k % 10 == 0) {
        let cells: Vec<String> = r
            .strategies
            .iter()
            .map(|s| s.median_regret[k - 1].map_or("-".into(), |v| format!("{v:.4}")))
            .collect();
        println!("| {k} | {} |", cells.join(" | "));
    }
}
