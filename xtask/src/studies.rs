//! `cargo xtask search worker|show` and `cargo xtask bench workers`: studies shared by many
//! worker processes through Optuna's journal format (a file, or a Redis server).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autodl_artifacts::context::RunContext;
use autodl_search::study::{
    self, Asha, Claimed, Direction, Evaluation, Sampler, Study, StudyObjective, StudySettings,
    TrialState, WorkerOptions,
};
use autodl_search::tpe::{Config, Param, ParamKind, TpeSettings, TpeSpace, testfns};
use autodl_search::{Cell, CellOp, SearchSpace};
use clap::{Args, Subcommand, ValueEnum};

use crate::nas::{NasTable, read_table};

/// `cargo xtask search ...`.
#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Join a study (creating it when missing) and evaluate trials until its budget is spent.
    ///
    /// Any number of workers, on one machine or many, share a study through --storage: a
    /// journal file (Optuna's JournalFileBackend format, with its lock) or a Redis server
    /// (Optuna's JournalRedisBackend layout). Python Optuna opens the same study with
    /// `optuna.load_study(study_name=..., storage=JournalStorage(...))`, and these workers
    /// continue studies that Python Optuna started (same parameter names and distributions).
    ///
    /// Rerunning a killed search resumes it: the trials of dead workers are marked failed and
    /// enqueued again with the same parameters; completed trials are kept and never repeated;
    /// the sampler's proposals continue exactly where they stopped (proposal k is seeded by
    /// the study's seed and k, and its history is the log). The study records its sampler,
    /// seed, pruner and budget when created; later workers use those.
    Worker(WorkerArgs),
    /// Print a study's trials and its best one.
    Show(ShowArgs),
}

/// The objective a worker evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Branin on [-5, 10] × [0, 15] (parameters x, y; minimum 0.397887).
    Branin,
    /// Hartmann-6 on [0, 1]^6 (parameters x0..x5; minimum −3.32237).
    Hartmann6,
    /// The NAS table (bench/nas-table.json): a NAS-Bench-201-style cell (six edges, each
    /// none, skip, conv or pool) trained on MNIST-1D; validation accuracy after each of 6
    /// epochs, reported as intermediate values (the pruner's rungs), maximised.
    NasTable,
    /// Networks trained on --data (the pipeline's search space for that data: dense blocks,
    /// or convolutions and cells for signals and images, with every training option). Each
    /// worker prepares the data with the same seed, so all workers see the same split. The
    /// value is the validation score (the metric, negated when lower is better), maximised;
    /// each epoch's score is reported (the pruner's rungs are epochs).
    Train,
}

/// How trials are proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    /// Tree-structured Parzen Estimator (10 random start-up trials, then the model).
    Tpe,
    /// Uniform random.
    Random,
}

/// Extra cost added to each trial, to model an expensive objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostArg {
    /// Busy computation on one core (the given milliseconds of CPU time).
    Cpu,
    /// Waiting (as on a remote machine or an accelerator).
    Sleep,
}

/// `cargo xtask search worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The study's name.
    #[arg(long)]
    pub study: String,
    /// Where the study lives: a journal file path (created when missing), or
    /// redis://HOST:PORT[/DB][?prefix=P] (Optuna's Redis journal; default prefix empty, as
    /// Optuna's).
    #[arg(long)]
    pub storage: String,
    /// What to evaluate.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Branin)]
    pub objective: ObjectiveArg,
    /// The NAS table, for --objective nas-table.
    #[arg(long, default_value = "bench/nas-table.json")]
    pub nas_table: PathBuf,
    /// The table to train on, for --objective train (CSV, Parquet, Arrow IPC or JSON lines).
    #[arg(long, required_if_eq("objective", "train"))]
    pub data: Option<PathBuf>,
    /// Target column, for --objective train (default: inferred as by `cargo xtask run`).
    #[arg(long)]
    pub target: Option<String>,
    /// Seed of the data split and of each network's training, for --objective train.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Sampler, when this worker creates the study.
    #[arg(long, value_enum, default_value_t = SamplerArg::Tpe)]
    pub sampler: SamplerArg,
    /// Sampler seed, when this worker creates the study.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Trials the study runs, not counting failed ones, when this worker creates it (without
    /// it the study runs until its workers are stopped, or until --max-trials each).
    #[arg(long)]
    pub n_trials: Option<usize>,
    /// Asynchronous successive halving across all workers (when this worker creates the
    /// study): at steps min-step·eta^k a trial goes on only if it is in the best 1/eta of the
    /// trials that reached that step.
    #[arg(long)]
    pub asha: bool,
    /// First rung of --asha.
    #[arg(long, default_value_t = 1)]
    pub asha_min_step: i64,
    /// Reduction factor of --asha.
    #[arg(long, default_value_t = 3)]
    pub asha_eta: i64,
    /// Trials this worker takes at most.
    #[arg(long)]
    pub max_trials: Option<usize>,
    /// No new trial is taken after this many seconds.
    #[arg(long)]
    pub timeout_secs: Option<f64>,
    /// Heartbeat interval while a trial runs, in seconds (0: none).
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_secs: f64,
    /// A running trial of a worker on another host with no heartbeat for this long is failed
    /// and enqueued again (on this host, a worker's trials are retried as soon as its process
    /// is gone).
    #[arg(long, default_value_t = 120.0)]
    pub stale_after_secs: f64,
    /// Milliseconds of extra cost per trial (see --cost).
    #[arg(long, default_value_t = 0)]
    pub cost_ms: u64,
    /// Kind of the extra cost.
    #[arg(long, value_enum, default_value_t = CostArg::Cpu)]
    pub cost: CostArg,
    /// Print only the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Write this worker's summary as JSON here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// `cargo xtask search show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The study's name.
    #[arg(long)]
    pub study: String,
    /// Where the study lives (as for `search worker`).
    #[arg(long)]
    pub storage: String,
    /// Print the trials as JSON lines (number, state, value, params) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the optimisation history as an SVG plot here: each complete trial's value
    /// and the best so far, by trial number.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

fn categorical(name: &str, choices: usize) -> Param {
    Param {
        name: name.into(),
        kind: ParamKind::Categorical { choices },
        active_when: None,
    }
}

/// The NAS table as a study objective: one categorical per cell edge.
struct NasObjective {
    table: NasTable,
    rows: HashMap<Cell, usize>,
    space: TpeSpace,
}

impl NasObjective {
    fn load(path: &std::path::Path) -> Result<Self> {
        let table = read_table(path)?;
        let rows = table.lookup()?;
        let space = TpeSpace {
            params: Cell::EDGES
                .iter()
                .map(|(a, b)| categorical(&format!("edge_{a}_{b}"), CellOp::ALL.len()))
                .collect(),
        };
        Ok(NasObjective { table, rows, space })
    }
}

/// Networks trained on a prepared table, epoch by epoch.
struct TrainObjective {
    data: autodl_artifacts::table::PreparedData,
    target_scale: f64,
    space: SearchSpace,
    ctx: RunContext,
}

impl TrainObjective {
    fn load(path: &std::path::Path, target: Option<String>, seed: u64) -> Result<Self> {
        let loaded = crate::data::load(path, target, None)?;
        let ctx = RunContext::new(seed, std::env::temp_dir());
        let cfg = autodl_data::PrepareConfig::new(&loaded.target);
        let prepared = autodl_data::prepare(&cfg, &loaded.table, &loaded.sha, &ctx)?;
        let data = prepared.data;
        let space =
            SearchSpace::for_input(data.feature_names.len(), data.input_shape, data.n_outputs());
        eprintln!(
            "  target {}: {} training and {} validation rows, {} features",
            loaded.target,
            data.train.y.len(),
            data.valid.y.len(),
            data.feature_names.len()
        );
        Ok(TrainObjective {
            target_scale: prepared.transform.target_scale(),
            data,
            space,
            ctx,
        })
    }

    fn evaluate(
        &self,
        config: &Config,
        report: &mut dyn FnMut(i64, f64) -> autodl_search::Result<bool>,
    ) -> Evaluation {
        let genome = self.space.decode(config);
        let architecture = self.space.render(&genome);
        if let Err(e) = autodl_search::check_dag(&architecture) {
            return Evaluation::Failed(e.to_string());
        }
        let hp = &genome.hyperparams;
        // Seeded by the configuration: a retried trial trains exactly as the first try.
        let ctx = RunContext {
            seed: self.ctx.derive_seed(&format!("{config:?}")),
            progress: std::sync::Arc::new(autodl_artifacts::context::Silent),
            ..self.ctx.clone()
        };
        let data = autodl_train::TrainData::of(&self.data, self.target_scale);
        let mut checkpoint: Option<autodl_train::Checkpoint> = None;
        for epoch in 1.. {
            let result = autodl_train::train_with(
                &architecture,
                hp,
                &data,
                &ctx,
                autodl_train::Fidelity::epochs(epoch),
                checkpoint.as_ref(),
            );
            let result = match result {
                Ok(r) => r,
                Err(e) => return Evaluation::Failed(e.to_string()),
            };
            let Some(score) = result.outcome.score() else {
                return Evaluation::Failed(format!("training ended as {:?}", result.outcome));
            };
            match report(epoch as i64, score) {
                Ok(true) => {}
                Ok(false) => return Evaluation::Pruned,
                Err(e) => return Evaluation::Failed(e.to_string()),
            }
            if result.finished || result.checkpoint.is_none() {
                return Evaluation::Value(score);
            }
            checkpoint = result.checkpoint;
        }
        unreachable!("the epochs loop returns")
    }
}

/// An objective plus optional extra cost per trial.
struct Costed {
    kind: ObjectiveArg,
    nas: Option<NasObjective>,
    train: Option<TrainObjective>,
    space: TpeSpace,
    cost: Option<(CostArg, Duration)>,
}

impl Costed {
    fn new(args: &WorkerArgs) -> Result<Self> {
        let (mut nas, mut train) = (None, None);
        let space = match args.objective {
            ObjectiveArg::Branin => testfns::branin_space(),
            ObjectiveArg::Hartmann6 => testfns::hartmann6_space(),
            ObjectiveArg::NasTable => nas
                .insert(NasObjective::load(&args.nas_table)?)
                .space
                .clone(),
            ObjectiveArg::Train => {
                let path = args
                    .data
                    .as_ref()
                    .context("--objective train needs --data")?;
                let t = TrainObjective::load(path, args.target.clone(), args.data_seed)?;
                train.insert(t).space.tpe_space()
            }
        };
        Ok(Costed {
            kind: args.objective,
            nas,
            train,
            space,
            cost: (args.cost_ms > 0).then(|| (args.cost, Duration::from_millis(args.cost_ms))),
        })
    }

    fn direction(&self) -> Direction {
        match self.kind {
            ObjectiveArg::NasTable | ObjectiveArg::Train => Direction::Maximize,
            ObjectiveArg::Branin | ObjectiveArg::Hartmann6 => Direction::Minimize,
        }
    }

    fn spend(&self) {
        match self.cost {
            None => {}
            Some((CostArg::Sleep, d)) => std::thread::sleep(d),
            Some((CostArg::Cpu, d)) => {
                // This thread's CPU time (Linux), so that the work per trial is the same however
                // many processes share the cores; the wall clock elsewhere.
                let cpu = || -> Option<Duration> {
                    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
                    Some(Duration::from_nanos(s.split(' ').next()?.parse().ok()?))
                };
                let (t, c0) = (Instant::now(), cpu());
                let spent = || match (c0, cpu()) {
                    (Some(a), Some(b)) => b.saturating_sub(a),
                    _ => t.elapsed(),
                };
                let mut x = 1.0f64;
                while spent() < d {
                    for _ in 0..1000 {
                        x = (x * 1.000_000_1).sin() + 1.0;
                    }
                }
                std::hint::black_box(x);
            }
        }
    }
}

impl StudyObjective for Costed {
    fn space(&self) -> &TpeSpace {
        &self.space
    }

    fn evaluate(
        &mut self,
        _number: usize,
        config: &Config,
        report: &mut dyn FnMut(i64, f64) -> autodl_search::Result<bool>,
    ) -> Evaluation {
        self.spend();
        match (&self.nas, self.kind) {
            (_, ObjectiveArg::Branin) => Evaluation::Value(testfns::branin(config)),
            (_, ObjectiveArg::Hartmann6) => Evaluation::Value(testfns::hartmann6(config)),
            (Some(nas), ObjectiveArg::NasTable) => {
                let mut edges = [CellOp::None; 6];
                for (e, v) in edges.iter_mut().zip(config) {
                    *e = CellOp::ALL[v.unwrap_or(0.0) as usize % CellOp::ALL.len()];
                }
                let Some(&row) = nas.rows.get(&Cell { edges }) else {
                    return Evaluation::Failed("cell not in the NAS table".into());
                };
                let curve = &nas.table.archs[row].valid_accuracy;
                for (epoch, &acc) in curve.iter().enumerate() {
                    match report(epoch as i64 + 1, acc) {
                        Ok(true) => {}
                        Ok(false) => return Evaluation::Pruned,
                        Err(e) => return Evaluation::Failed(e.to_string()),
                    }
                }
                Evaluation::Value(*curve.last().unwrap_or(&0.0))
            }
            (None, ObjectiveArg::NasTable) => Evaluation::Failed("no NAS table loaded".into()),
            (_, ObjectiveArg::Train) => match &self.train {
                Some(t) => t.evaluate(config, report),
                None => Evaluation::Failed("no data loaded".into()),
            },
        }
    }
}

fn best_of(study: &Study) -> Option<(usize, f64)> {
    let dir = study.settings().direction;
    study
        .trials()
        .into_iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((t.number, *t.values.as_ref()?.first()?)))
        .min_by(|a, b| dir.loss(a.1).total_cmp(&dir.loss(b.1)))
}

/// `cargo xtask search worker`.
pub fn worker(args: &WorkerArgs) -> Result<()> {
    let mut objective = Costed::new(args)?;
    let settings = StudySettings {
        name: args.study.clone(),
        direction: objective.direction(),
        sampler: match args.sampler {
            SamplerArg::Tpe => Sampler::Tpe(TpeSettings::default()),
            SamplerArg::Random => Sampler::Random,
        },
        seed: args.seed,
        pruner: args.asha.then_some(Asha {
            min_step: args.asha_min_step,
            eta: args.asha_eta,
        }),
        n_trials: args.n_trials,
        stale_after: Duration::from_secs_f64(args.stale_after_secs.max(1.0)),
    };
    let journal = study::journal::open(&args.storage)
        .with_context(|| format!("opening the study storage {}", args.storage))?;
    let space = objective.space.clone();
    let mut study = Study::open(journal, settings, space)
        .with_context(|| format!("opening study {} in {}", args.study, args.storage))?;
    let s = study.settings().clone();
    let done_before = study
        .trials()
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    eprintln!(
        "search worker {}: study {} in {}: {} trials so far ({done_before} complete); \
         sampler {}, seed {}, pruner {}, budget {}",
        study.worker_id(),
        s.name,
        study.describe(),
        study.trials().len(),
        match s.sampler {
            Sampler::Random => "random",
            Sampler::Tpe(_) => "tpe",
        },
        s.seed,
        s.pruner.map_or("none".to_string(), |a| format!(
            "ASHA (first rung {}, eta {})",
            a.min_step, a.eta
        )),
        s.n_trials
            .map_or("none (until stopped)".to_string(), |n| format!(
                "{n} trials"
            ))
    );
    let options = WorkerOptions {
        heartbeat: (args.heartbeat_secs > 0.0)
            .then(|| Duration::from_secs_f64(args.heartbeat_secs)),
        max_trials: args.max_trials,
        deadline: args
            .timeout_secs
            .map(|t| Instant::now() + Duration::from_secs_f64(t)),
    };
    let quiet = args.quiet;
    let summary = study::run_worker(
        &mut study,
        &mut objective,
        &options,
        &mut |c: &Claimed, e: &Evaluation, study: &Study| {
            if quiet {
                return;
            }
            let what = match e {
                Evaluation::Value(v) => format!("{v:.6}"),
                Evaluation::Pruned => "pruned".to_string(),
                Evaluation::Failed(why) => format!("failed: {why}"),
            };
            let best =
                best_of(study).map_or(String::new(), |(n, v)| format!("; best {v:.6} (trial {n})"));
            eprintln!(
                "  trial {:>4}{}: {what}{best}",
                c.number,
                if c.was_waiting { " (waiting)" } else { "" }
            );
        },
        // Repairs and retries are shown even with --quiet.
        &mut |notice| eprintln!("  note: {notice}"),
    )?;
    study.sync()?;
    let best = best_of(&study);
    eprintln!(
        "search worker: {} complete, {} pruned, {} failed{} in {:.1} s; study best {}",
        summary.complete,
        summary.pruned,
        summary.failed,
        if summary.dropped > 0 {
            format!(
                ", {} dropped (failed by another worker meanwhile)",
                summary.dropped
            )
        } else {
            String::new()
        },
        summary.seconds,
        best.map_or("none yet".to_string(), |(n, v)| format!(
            "{v:.6} (trial {n})"
        ))
    );
    if let Some(path) = &args.summary {
        let json = serde_json::json!({"summary": summary, "worker_id": study.worker_id(),
            "best": best.map(|(n, v)| serde_json::json!({"number": n, "value": v}))});
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `cargo xtask search show`.
pub fn show(args: &ShowArgs) -> Result<()> {
    let mut journal = study::journal::open(&args.storage)?;
    let ops = journal.read(0)?;
    let mut replay = study::Replay::default();
    replay.apply_all(&ops)?;
    let Some(entry) = replay.study_by_name(&args.study) else {
        let names: Vec<&str> = replay.studies.values().map(|s| s.name.as_str()).collect();
        bail!(
            "no study {} in {} (it has: {})",
            args.study,
            args.storage,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let trials: Vec<_> = replay.trials_of(entry.id).collect();
    if args.json {
        for t in &trials {
            let params: serde_json::Map<String, serde_json::Value> = t
                .params
                .iter()
                .map(|(k, v)| (k.clone(), t.distributions[k].external(*v)))
                .collect();
            println!(
                "{}",
                serde_json::json!({"number": t.number, "state": t.state,
                    "values": t.values, "params": params})
            );
        }
        return Ok(());
    }
    let dir = entry
        .directions
        .first()
        .copied()
        .unwrap_or(Direction::Minimize);
    println!(
        "study {} ({} trials, {:?}) in {}",
        entry.name,
        trials.len(),
        dir,
        args.storage
    );
    println!("{:>6}  {:<8}  {:>12}  params", "trial", "state", "value");
    for t in &trials {
        let value = t
            .values
            .as_ref()
            .and_then(|v| v.first())
            .map_or("-".to_string(), |v| format!("{v:.6}"));
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", t.distributions[k].external(*v)))
            .collect();
        println!(
            "{:>6}  {:<8}  {:>12}  {}",
            t.number,
            format!("{:?}", t.state),
            value,
            params.join(" ")
        );
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &trials {
        *counts.entry(format!("{:?}", t.state)).or_default() += 1;
    }
    let best = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((t.number, *t.values.as_ref()?.first()?)))
        .min_by(|a, b| dir.loss(a.1).total_cmp(&dir.loss(b.1)));
    if let Some(path) = &args.plot {
        let values: Vec<(f64, f64)> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t.number as f64, *t.values.as_ref()?.first()?)))
            .collect();
        let mut best: Vec<(f64, f64)> = Vec::new();
        for &(n, v) in &values {
            let b = best
                .last()
                .map_or(v, |&(_, b)| if dir.loss(v) < dir.loss(b) { v } else { b });
            best.push((n, b));
        }
        let svg = crate::report_html::line_chart(
            &format!("study {}: optimisation history", entry.name),
            "trial number",
            "objective value",
            &[("trial value", values), ("best so far", best)],
        );
        let svg = svg
            .trim()
            .trim_start_matches("<figure>")
            .trim_end_matches("</figure>");
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("plot: {}", path.display());
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    println!(
        "states: {}; best: {}",
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        best.map_or("none".to_string(), |(n, v)| format!("{v:.6} (trial {n})"))
    );
    Ok(())
}

/// `cargo xtask bench workers`.
#[derive(Debug, Clone, Args)]
pub struct WorkersBenchArgs {
    /// Worker process counts to compare.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4])]
    pub workers: Vec<usize>,
    /// Trials per study.
    #[arg(long, default_value_t = 120)]
    pub trials: usize,
    /// Milliseconds of cost per trial.
    #[arg(long, default_value_t = 50)]
    pub cost_ms: u64,
    /// Kinds of cost to measure (cpu: bounded by the cores; sleep: waiting, as on remote
    /// machines or accelerators).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CostArg::Sleep, CostArg::Cpu])]
    pub cost: Vec<CostArg>,
    /// Storage: `file` (a journal in a temporary folder) or a redis:// URI (each study gets
    /// its own prefix).
    #[arg(long, default_value = "file")]
    pub storage: String,
    /// Sampler of the studies.
    #[arg(long, value_enum, default_value_t = SamplerArg::Tpe)]
    pub sampler: SamplerArg,
}

/// `cargo xtask bench workers`: trials per second with 1, 2, 4… worker processes on one study.
pub fn bench_workers(args: &WorkersBenchArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("autodl-bench-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "bench workers: {} trials of Hartmann-6 ({} sampler) per study, {} ms extra cost per \
         trial; storage {}; {cores} cores",
        args.trials,
        match args.sampler {
            SamplerArg::Tpe => "tpe",
            SamplerArg::Random => "random",
        },
        args.cost_ms,
        args.storage
    );
    println!("| cost | workers | seconds | trials/s | speed-up over 1 worker |");
    println!("|---|---:|---:|---:|---:|");
    for &cost in &args.cost {
        let mut base = None;
        for &n in &args.workers {
            let name = format!("bench-{cost:?}-{n}-{}", std::process::id()).to_lowercase();
            let storage = if args.storage == "file" {
                dir.join(format!("{name}.log")).display().to_string()
            } else {
                let sep = if args.storage.contains('?') { '&' } else { '?' };
                format!("{}{sep}prefix={name}", args.storage)
            };
            // The study is created first, so that the timed workers only join it.
            let create = Command::new(&exe)
                .args(["search", "worker", "--quiet", "--objective", "hartmann6"])
                .args(["--study", &name, "--storage", &storage])
                .args(["--n-trials", &args.trials.to_string(), "--max-trials", "0"])
                .args(["--sampler", &format!("{:?}", args.sampler).to_lowercase()])
                .stderr(Stdio::null())
                .status()?;
            if !create.success() {
                bail!("creating study {name} in {storage} failed");
            }
            let t0 = Instant::now();
            let children: Vec<_> = (0..n)
                .map(|_| {
                    Command::new(&exe)
                        .args(["search", "worker", "--quiet", "--objective", "hartmann6"])
                        .args(["--study", &name, "--storage", &storage])
                        .args(["--cost-ms", &args.cost_ms.to_string()])
                        .args(["--cost", &format!("{cost:?}").to_lowercase()])
                        .stderr(Stdio::null())
                        .spawn()
                })
                .collect::<std::io::Result<_>>()?;
            for mut c in children {
                if !c.wait()?.success() {
                    bail!("a worker of study {name} failed");
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            // Every trial exactly once, whatever the number of workers.
            let mut journal = study::journal::open(&storage)?;
            let mut replay = study::Replay::default();
            replay.apply_all(&journal.read(0)?)?;
            let entry = replay
                .study_by_name(&name)
                .context("the benchmark study vanished")?;
            let complete = replay
                .trials_of(entry.id)
                .filter(|t| t.state == TrialState::Complete)
                .count();
            if complete != args.trials {
                bail!(
                    "study {name}: {complete} complete trials, expected {}",
                    args.trials
                );
            }
            let rate = args.trials as f64 / secs;
            let speedup = rate / *base.get_or_insert(rate);
            println!(
                "| {} | {n} | {secs:.2} | {rate:.1} | {speedup:.2}× |",
                format!("{cost:?}").to_lowercase()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
