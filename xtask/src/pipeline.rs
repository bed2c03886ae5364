//! `cargo xtask run`: the whole pipeline, stage by stage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::arch::ArchitectureSpec;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::drift::DriftReference;
use autodl_artifacts::export::{ExportedModel, OutputKind, ParityCheck};
use autodl_artifacts::io::{read_json, sha256_file, write_json};
use autodl_artifacts::model::{
    BaselineResult, CrossValidation, CvCandidate, EnsembleMember, EnsembleRecord, EpochRecord,
    NetworkWeights, TrainedModel,
};
use autodl_artifacts::profile::DataProfile;
use autodl_artifacts::run::{ArtifactEntry, DataSource, RunManifest, paths};
use autodl_artifacts::table::{Matrix, MetricValue, PreparedData, Task};
use autodl_artifacts::transform::{FeatureTransform, TargetEncoding};
use autodl_artifacts::trial::{SearchHistory, TrialOutcome};
use autodl_criteria::RunFacts;
use autodl_search::{Budget, Candidate, Evaluator, SearchConfig, SearchSpace, Strategy};

use crate::progress::Terminal;
use crate::{machine, report};

/// The embedded default dataset (see datasets/README.md for its provenance).
const EMBEDDED_DIGITS: &[u8] = include_bytes!("../../datasets/digits.csv");

/// Largest allowed difference between burn's and tract's outputs.
pub const PARITY_TOLERANCE: f64 = 1e-4;

/// Arguments of `cargo xtask run`.
#[derive(Clone)]
pub struct RunArgs {
    pub data: Option<PathBuf>,
    pub target: Option<String>,
    /// A labels file to join to the data (see `crate::data::load`).
    pub labels: Option<PathBuf>,
    pub test: Option<PathBuf>,
    pub task: Option<Task>,
    /// Keep each group of this column in one split.
    pub group_column: Option<String>,
    /// Split by time on this column.
    pub time_column: Option<String>,
    pub out: Option<PathBuf>,
    pub budget_secs: f64,
    pub max_trials: Option<u32>,
    pub seed: u64,
    pub strategy: Strategy,
    /// What the search optimises.
    pub objective: autodl_search::Objective,
    pub grid_g_per_kwh: f64,
    /// Runs in all for the stability criterion: this one, then `repeats − 1` more with the
    /// seeds that follow, each in `<run>/repeats/seed-<seed>`.
    pub repeats: usize,
    /// Repeat the run with the same seed (into `<run>/reproduce`) and compare trials and
    /// weights, for the reproducibility criterion.
    pub check_reproducibility: bool,
}

/// Completed trials kept for the ensemble: the best this many by score.
const ENSEMBLE_CANDIDATES: usize = 5;

/// Candidates cross-validated on small data: the best this many of the search.
const CV_CANDIDATES: usize = 3;

/// Share of the time budget kept for cross-validation when the data stage made folds.
const CV_BUDGET_SHARE: f64 = 0.25;

/// Retrains each of the best `candidates` (trials, best first) on every fold and returns
/// their held-out metrics; the one with the best mean is chosen. Stops at `ctx`'s deadline:
/// a candidate not trained on every fold by then is left out, and with none left (or only
/// the first) there is nothing to choose between, so `None`.
fn cross_validate(
    candidates: &[(u32, f64)],
    history: &SearchHistory,
    folds: &[autodl_artifacts::table::Fold],
    data: &PreparedData,
    target_scale: f64,
    ctx: &RunContext,
) -> Option<CrossValidation> {
    let metric = data.task.metric();
    let mut done = Vec::new();
    'candidates: for &(trial, search_valid) in candidates {
        let record = history.trials.iter().find(|r| r.trial == trial)?;
        let mut fold_metrics = Vec::new();
        for (k, fold) in folds.iter().enumerate() {
            let fold_ctx = RunContext {
                seed: ctx.derive_seed(&format!("cv-{trial}-{k}")),
                progress: Arc::new(autodl_artifacts::context::Silent),
                ..ctx.clone()
            };
            let fold_data = autodl_train::TrainData {
                task: data.task,
                n_outputs: data.n_outputs(),
                target_scale,
                train: &fold.train,
                valid: &fold.valid,
            };
            let result = autodl_train::train_with(
                &record.architecture,
                &record.hyperparams,
                &fold_data,
                &fold_ctx,
                autodl_train::Fidelity::FULL,
                None,
            );
            match result {
                Ok(r) if r.finished => match r.outcome {
                    TrialOutcome::Completed { valid_metric, .. } => {
                        fold_metrics.push(valid_metric.value)
                    }
                    // A diverged fold counts as the worst score.
                    _ => fold_metrics.push(if metric.higher_is_better() {
                        0.0
                    } else {
                        f64::INFINITY
                    }),
                },
                // Out of time (or failed): this candidate and those after it are left out.
                _ => break 'candidates,
            }
        }
        let n = fold_metrics.len() as f64;
        let mean = fold_metrics.iter().sum::<f64>() / n;
        let std = (fold_metrics.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
            / (n - 1.0).max(1.0))
        .sqrt();
        done.push(CvCandidate {
            trial,
            search_valid,
            fold_metrics,
            mean,
            std,
        });
    }
    if done.len() < 2 {
        return None;
    }
    // Ties keep the search's order.
    let chosen = done
        .iter()
        .fold(&done[0], |a, b| {
            if metric.score(b.mean) > metric.score(a.mean) {
                b
            } else {
                a
            }
        })
        .trial;
    Some(CrossValidation {
        folds: folds.len(),
        metric,
        candidates: done,
        chosen_trial: chosen,
    })
}

/// A completed trial's result, kept for the final model and the ensemble.
struct Kept {
    score: f64,
    trial: u32,
    weights: NetworkWeights,
    history: Vec<EpochRecord>,
}

/// Trains candidates with autodl-train and keeps the weights of the best few so far.
struct TrainEvaluator<'a> {
    data: &'a PreparedData,
    target_scale: f64,
    ctx: &'a RunContext,
    /// Best first, at most [`ENSEMBLE_CANDIDATES`].
    top: Vec<Kept>,
    /// Training state of trials that successive halving may continue.
    checkpoints: std::collections::HashMap<u32, autodl_train::Checkpoint>,
}

impl Evaluator for TrainEvaluator<'_> {
    fn evaluate(&mut self, trial: u32, candidate: &Candidate) -> TrialOutcome {
        self.evaluate_partial(trial, candidate, usize::MAX).0
    }

    fn evaluate_partial(
        &mut self,
        trial: u32,
        candidate: &Candidate,
        epochs: usize,
    ) -> (TrialOutcome, bool) {
        let ctx = RunContext {
            seed: self.ctx.derive_seed(&format!("trial-{trial}")),
            progress: Arc::new(autodl_artifacts::context::Silent),
            ..self.ctx.clone()
        };
        let data = autodl_train::TrainData::of(self.data, self.target_scale);
        let fidelity = if epochs == usize::MAX {
            autodl_train::Fidelity::FULL
        } else {
            autodl_train::Fidelity::epochs(epochs)
        };
        // A promoted trial continues from where it stopped.
        let resume = self.checkpoints.remove(&trial);
        let result = autodl_train::train_with(
            &candidate.architecture,
            &candidate.hyperparams,
            &data,
            &ctx,
            fidelity,
            resume.as_ref(),
        );
        match result {
            Err(e) => (
                TrialOutcome::Failed {
                    reason: e.to_string(),
                },
                true,
            ),
            Ok(result) => {
                // A continued trial replaces its earlier entry.
                self.top.retain(|k| k.trial != trial);
                if let (Some(score), Some(weights)) = (result.outcome.score(), result.weights) {
                    // Ties keep the earlier trial first, as the search's own best does.
                    let at = self.top.partition_point(|k| {
                        k.score > score || (k.score == score && k.trial < trial)
                    });
                    if at < ENSEMBLE_CANDIDATES {
                        self.top.insert(
                            at,
                            Kept {
                                score,
                                trial,
                                weights,
                                history: result.history,
                            },
                        );
                        self.top.truncate(ENSEMBLE_CANDIDATES);
                    }
                }
                if !result.finished
                    && let Some(checkpoint) = result.checkpoint
                {
                    self.checkpoints.insert(trial, checkpoint);
                }
                (result.outcome, result.finished)
            }
        }
    }

    fn discard(&mut self, trial: u32) {
        self.checkpoints.remove(&trial);
    }
}

/// The ratio of the largest to the smallest class count in training (classification only).
fn imbalance(data: &PreparedData) -> Option<f64> {
    if !data.task.is_classification() {
        return None;
    }
    let mut counts = vec![0usize; data.n_classes];
    for &y in &data.train.y {
        counts[y as usize] += 1;
    }
    let max = *counts.iter().max()?;
    let min = *counts.iter().filter(|&&c| c > 0).min()?;
    Some(max as f64 / min as f64)
}

/// Writes a JSON artifact and records it in the manifest list.
fn put_json<T: serde::Serialize>(
    run: &Path,
    rel: &str,
    kind: &str,
    value: &T,
    list: &mut Vec<ArtifactEntry>,
) -> Result<()> {
    write_json(&run.join(rel), value)?;
    record(run, rel, kind, list)
}

/// Records an already written file in the manifest list, with its hash and size.
fn record(run: &Path, rel: &str, kind: &str, list: &mut Vec<ArtifactEntry>) -> Result<()> {
    let path = run.join(rel);
    list.push(ArtifactEntry {
        kind: kind.into(),
        path: rel.into(),
        sha256: sha256_file(&path)?,
        bytes: std::fs::metadata(&path)
            .with_context(|| format!("{}", path.display()))?
            .len(),
    });
    Ok(())
}

fn stage(n: usize, name: &str, what: &str) {
    eprintln!("[{n}/7] {name}: {what}");
}

/// Runs the pipeline and returns the run directory.
pub fn run(args: RunArgs) -> Result<PathBuf> {
    let started = Instant::now();
    let rapl_start = machine::rapl_joules();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if !(args.budget_secs > 0.0 && args.budget_secs.is_finite()) {
        bail!(
            "--budget-secs must be a positive number of seconds, got {}",
            args.budget_secs
        );
    }

    // Where the data comes from: a file, or the embedded default written into the run.
    let (stem, data_path, target) = match &args.data {
        Some(p) => {
            let stem = p
                .file_stem()
                .map_or("data".into(), |s| s.to_string_lossy().into_owned());
            (stem, Some(p.clone()), args.target.clone())
        }
        None => (
            "digits".to_string(),
            None,
            Some(args.target.clone().unwrap_or_else(|| "digit".into())),
        ),
    };
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{stem}-{started_unix}")));
    if run_dir.join(paths::MANIFEST).exists() {
        bail!(
            "{} already holds a run; give another --out (nothing was overwritten)",
            run_dir.display()
        );
    }
    let run_id = run_dir
        .file_name()
        .map_or("run".into(), |s| s.to_string_lossy().into_owned());
    let ctx = RunContext {
        progress: Arc::new(Terminal::default()),
        ..RunContext::new(args.seed, &run_dir)
    };
    let mut artifacts = Vec::new();
    let mut stage_secs = BTreeMap::new();
    let mut warnings = Vec::new();

    // 1. Data.
    let t = Instant::now();
    let (data_path, shown_path) = match data_path {
        Some(p) => (p.clone(), p.display().to_string()),
        None => {
            let p = run_dir.join("data/embedded-digits.csv");
            autodl_artifacts::io::write_atomic(&p, EMBEDDED_DIGITS)?;
            (p, "embedded:digits.csv".to_string())
        }
    };
    stage(1, "data", &format!("reading {shown_path}"));
    let loaded = crate::data::load(&data_path, target, args.labels.as_deref())?;
    let mut cfg = autodl_data::PrepareConfig::new(&loaded.target);
    cfg.task = args.task;
    cfg.group_column = args.group_column.clone();
    cfg.time_column = args.time_column.clone();
    let sha = loaded.sha.clone();
    let mut prepared = match &args.test {
        Some(test_path) => {
            eprintln!(
                "  test split: {} (the data file is split into training and validation)",
                test_path.display()
            );
            let test_table = autodl_data::read_table(test_path)?;
            autodl_data::prepare_with_test(&cfg, &loaded.table, &test_table, &sha, &ctx)?
        }
        None => autodl_data::prepare(&cfg, &loaded.table, &sha, &ctx)?,
    };
    prepared.profile.formulation = loaded.formulation;
    let target = loaded.target;
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let data = &prepared.data;
    let profile = &prepared.profile;
    let transform = &prepared.transform;
    eprintln!(
        "  {} rows × {} columns; task: {} ({}); {} features after encoding; split {}/{}/{}",
        profile.n_rows,
        profile.columns.len(),
        profile.task,
        profile.task_reason,
        data.feature_names.len(),
        data.train.y.len(),
        data.valid.y.len(),
        data.test.y.len()
    );
    put_json(&run_dir, paths::PROFILE, "profile", profile, &mut artifacts)?;
    put_json(
        &run_dir,
        paths::TRANSFORM,
        "transform",
        transform,
        &mut artifacts,
    )?;
    for (rel, kind, split) in [
        (paths::TRAIN, "train_split", &data.train),
        (paths::VALID, "valid_split", &data.valid),
        (paths::TEST, "test_split", &data.test),
    ] {
        autodl_data::write_matrix(
            &split.x,
            &split.y,
            &data.feature_names,
            &format!("target:{target}"),
            &run_dir.join(rel),
        )?;
        record(&run_dir, rel, kind, &mut artifacts)?;
    }
    autodl_data::write_table(&prepared.raw_test, &run_dir.join(paths::TEST_RAW))?;
    record(&run_dir, paths::TEST_RAW, "test_raw", &mut artifacts)?;
    stage_secs.insert("data".to_string(), t.elapsed().as_secs_f64());

    // 2. Baseline.
    let t = Instant::now();
    let target_scale = transform.target_scale();
    stage(
        2,
        "baseline",
        "fitting the linfa baseline on the same split",
    );
    let baseline = match autodl_train::baseline(data, target_scale) {
        Ok(b) => {
            eprintln!(
                "  {}: test {} {:.4}",
                b.name, b.test_metric.name, b.test_metric.value
            );
            Some(b)
        }
        Err(e) => {
            let w = format!("baseline skipped: {e}");
            eprintln!("  warning: {w}");
            warnings.push(w);
            None
        }
    };
    stage_secs.insert("baseline".to_string(), t.elapsed().as_secs_f64());

    // 3. Search and training.
    let t = Instant::now();
    stage(
        3,
        "search",
        &format!(
            "{} over {} DAGs, budget {} s{}",
            args.strategy.name(),
            if data.input_shape.is_spatial() {
                "convolutional and dense"
            } else {
                "dense-block"
            },
            args.budget_secs,
            args.max_trials
                .map_or(String::new(), |n| format!(" or {n} trials"))
        ),
    );
    let mut space =
        SearchSpace::for_input(data.feature_names.len(), data.input_shape, data.n_outputs());
    if let Some(ratio) = imbalance(data) {
        // Offer class weights when the largest training class outnumbers the smallest 3:1.
        if ratio >= 3.0 {
            space.balanced_class_weights = vec![false, true];
        }
    }
    // On small data a share of the budget is kept for cross-validating the best candidates.
    let search_started = Instant::now();
    let search_secs = if prepared.folds.is_empty() {
        args.budget_secs
    } else {
        args.budget_secs * (1.0 - CV_BUDGET_SHARE)
    };
    let search_cfg = SearchConfig {
        strategy: args.strategy.clone(),
        budget: Budget {
            max_trials: args.max_trials,
            seconds: Some(search_secs),
        },
        objective: args.objective,
    };
    // Training stops at the end of the budget (plus the epoch under way).
    let search_ctx = RunContext {
        deadline: Some(search_started + Duration::from_secs_f64(search_secs)),
        ..ctx.clone()
    };
    let mut evaluator = TrainEvaluator {
        data,
        target_scale,
        ctx: &search_ctx,
        top: Vec::new(),
        checkpoints: Default::default(),
    };
    let history = autodl_search::search(&search_cfg, &space, &mut evaluator, &search_ctx)?;
    put_json(&run_dir, paths::TRIALS, "trials", &history, &mut artifacts)?;
    let (done, diverged, failed) = history.counts();
    eprintln!(
        "  {} trials: {done} completed, {diverged} diverged, {failed} failed",
        history.trials.len()
    );
    let mut top = std::mem::take(&mut evaluator.top);
    if top.is_empty() {
        // Say why: the first failure's reason, else what the budget allowed.
        let first_failure = history.trials.iter().find_map(|t| match &t.outcome {
            TrialOutcome::Failed { reason } => Some(reason.clone()),
            _ => None,
        });
        bail!(
            "no trial completed ({} trials: {diverged} diverged, {failed} failed); {}",
            history.trials.len(),
            first_failure.map_or_else(
                || "raise --budget-secs or lower the learning-rate range".to_string(),
                |r| format!("first failure: {r}")
            )
        );
    }
    let cross_validation = if prepared.folds.is_empty() || top.len() < 2 {
        None
    } else {
        let cv_ctx = RunContext {
            deadline: Some(search_started + Duration::from_secs_f64(args.budget_secs)),
            ..ctx.clone()
        };
        let metric = data.task.metric();
        let candidates: Vec<(u32, f64)> = top
            .iter()
            .take(CV_CANDIDATES)
            .map(|k| match &history.trials[k.trial as usize].outcome {
                TrialOutcome::Completed { valid_metric, .. } => (k.trial, valid_metric.value),
                _ => (k.trial, f64::NAN),
            })
            .collect();
        eprintln!(
            "  cross-validating the best {} candidates on {} folds",
            candidates.len(),
            prepared.folds.len()
        );
        let cv = cross_validate(
            &candidates,
            &history,
            &prepared.folds,
            data,
            target_scale,
            &cv_ctx,
        );
        match &cv {
            None => eprintln!(
                "  cross-validation did not finish two candidates in the budget; keeping the best on validation"
            ),
            Some(cv) => {
                for c in &cv.candidates {
                    eprintln!(
                        "    trial {:3}: validation {} {:.4}, folds {:.4} ± {:.4}{}",
                        c.trial,
                        metric.name(),
                        c.search_valid,
                        c.mean,
                        c.std,
                        if c.trial == cv.chosen_trial {
                            "  ← chosen"
                        } else {
                            ""
                        }
                    );
                }
                // The chosen candidate leads; the ensemble is built around it.
                let at = top
                    .iter()
                    .position(|k| k.trial == cv.chosen_trial)
                    .expect("a kept trial");
                let chosen = top.remove(at);
                top.insert(0, chosen);
            }
        }
        cv
    };
    let architecture_of = |trial: u32| {
        &history
            .trials
            .iter()
            .find(|r| r.trial == trial)
            .expect("kept trials are recorded")
            .architecture
    };
    let members: Vec<(&ArchitectureSpec, &NetworkWeights)> = top
        .iter()
        .map(|k| (architecture_of(k.trial), &k.weights))
        .collect();
    let choice = autodl_train::choose_ensemble(&members, data.task, &data.valid, target_scale)?;
    let single = &choice.sizes[0];
    let chosen = &choice.sizes[choice.chosen - 1];
    if choice.sizes.len() > 1 {
        // The kept ensemble, or else the best of two or more on the metric.
        let metric = data.task.metric();
        let (k, value, _) = if choice.chosen > 1 {
            chosen
        } else {
            choice.sizes[1..]
                .iter()
                .max_by(|a, b| metric.score(a.1.value).total_cmp(&metric.score(b.1.value)))
                .expect("two or more sizes")
        };
        eprintln!(
            "  ensemble: mean of the top {k} networks, validation {} {:.4} vs best single {:.4} → {}",
            single.1.name,
            value.value,
            single.1.value,
            if choice.chosen > 1 {
                "keeping the ensemble (ties go to the larger)"
            } else {
                "keeping the single network"
            }
        );
    }
    let ensemble_members: Vec<(&ArchitectureSpec, &NetworkWeights)> =
        members[..choice.chosen].to_vec();
    let (best_trial, weights, curve) = (top[0].trial, &top[0].weights, top[0].history.clone());
    let best = history
        .trials
        .iter()
        .find(|r| r.trial == best_trial)
        .expect("best trial is recorded");
    stage_secs.insert("search".to_string(), t.elapsed().as_secs_f64());

    // 4. The final model: weights saved, test metric computed once.
    let t = Instant::now();
    stage(
        4,
        "model",
        &format!("trial {best_trial}: {}", best.architecture.describe()),
    );
    weights.write(&run_dir.join(paths::WEIGHTS))?;
    record(&run_dir, paths::WEIGHTS, "weights", &mut artifacts)?;
    let mut member_records = Vec::new();
    if ensemble_members.len() > 1 {
        // The best network's weights are the file above; the others go beside it.
        for (k, kept) in top[1..ensemble_members.len()].iter().enumerate() {
            let rel = format!("model/ensemble-{}-trial-{}.safetensors", k + 1, kept.trial);
            kept.weights.write(&run_dir.join(&rel))?;
            record(&run_dir, &rel, "ensemble_weights", &mut artifacts)?;
            member_records.push((kept.trial, rel));
        }
    }
    let burn_test = autodl_train::predict_mean(&ensemble_members, data.task, &data.test.x)?;
    let metric = data.task.metric();
    let test_metric = score(metric, &burn_test, &data.test.y, target_scale);
    let TrialOutcome::Completed { valid_metric, .. } = &best.outcome else {
        unreachable!("the best trial completed")
    };
    // The deployed model's validation result: the ensemble's when it is kept.
    let valid_metric = if choice.chosen > 1 {
        &chosen.1
    } else {
        valid_metric
    };
    let ensemble = (choice.sizes.len() > 1)
        .then(|| -> Result<EnsembleRecord> {
            let mut members = Vec::new();
            for (k, kept) in top[..choice.chosen].iter().enumerate() {
                if choice.chosen == 1 {
                    break;
                }
                let rel = if k == 0 {
                    paths::WEIGHTS.to_string()
                } else {
                    member_records[k - 1].1.clone()
                };
                members.push(EnsembleMember {
                    trial: kept.trial,
                    architecture: architecture_of(kept.trial).clone(),
                    weights_sha256: sha256_file(&run_dir.join(&rel))?,
                    weights_path: rel,
                    valid_metric: match &history.trials[kept.trial as usize].outcome {
                        TrialOutcome::Completed { valid_metric, .. } => valid_metric.clone(),
                        other => unreachable!("kept trials completed: {other:?}"),
                    },
                });
            }
            Ok(EnsembleRecord {
                sizes: choice.sizes.clone(),
                chosen_size: choice.chosen,
                kept: choice.chosen > 1,
                members,
            })
        })
        .transpose()?;
    let parameters: usize = ensemble_members
        .iter()
        .map(|(spec, _)| spec.parameter_count().unwrap_or(0))
        .sum();
    let model = TrainedModel {
        schema_version: SCHEMA_VERSION,
        trial: best_trial,
        architecture: best.architecture.clone(),
        hyperparams: best.hyperparams.clone(),
        weights_path: paths::WEIGHTS.into(),
        weights_sha256: sha256_file(&run_dir.join(paths::WEIGHTS))?,
        parameters,
        history: curve,
        valid_metric: valid_metric.clone(),
        test_metric: test_metric.clone(),
        baseline: baseline.clone(),
        ensemble,
        cross_validation,
    };
    put_json(&run_dir, paths::MODEL, "model", &model, &mut artifacts)?;
    eprintln!(
        "  test {} {:.4} (validation {:.4})",
        metric.name(),
        test_metric.value,
        valid_metric.value
    );
    stage_secs.insert("model".to_string(), t.elapsed().as_secs_f64());

    // 5. Export and parity.
    let t = Instant::now();
    stage(
        5,
        "deploy",
        "exporting ONNX and checking tract against burn on the test split",
    );
    let output = match &transform.target_encoding {
        TargetEncoding::Classes { labels } => OutputKind::Probabilities {
            labels: labels.clone(),
        },
        TargetEncoding::Standardized { mean, std } => OutputKind::StandardizedValue {
            mean: *mean,
            std: *std,
        },
    };
    // The graph imputes, clips and standardises the numeric columns itself: it takes them raw.
    let opts = autodl_deploy::ExportOptions {
        feature_names: data.feature_names.clone(),
        output: output.clone(),
        preprocess: Some(transform.clone()),
    };
    let bytes = autodl_deploy::to_onnx_ensemble(&ensemble_members, &opts)?;
    autodl_artifacts::io::write_atomic(&run_dir.join(paths::ONNX), &bytes)?;
    record(&run_dir, paths::ONNX, "onnx", &mut artifacts)?;
    let runner = autodl_deploy::OnnxRunner::load(&run_dir.join(paths::ONNX))?;
    // From the raw test rows, so that the comparison covers the preprocessing in the graph.
    let test_inputs = autodl_deploy::input_rows(runner.inputs(), transform, &prepared.raw_test)?;
    let tract_test = runner.run_inputs(&test_inputs)?;
    let diff = autodl_deploy::max_abs_diff(&tract_test, &burn_test);
    let parity = ParityCheck {
        runtime: "tract".into(),
        reference: "burn".into(),
        rows_from: "test split (raw rows into the graph, transformed rows into burn)".into(),
        rows: data.test.x.n_rows,
        max_abs_diff: diff,
        tolerance: PARITY_TOLERANCE,
        passed: diff <= PARITY_TOLERANCE,
    };
    let compressed = compress(
        &run_dir,
        &bytes,
        (&runner, &tract_test),
        &test_inputs,
        data,
        target_scale,
        &mut artifacts,
    )?;
    let exported = ExportedModel {
        schema_version: SCHEMA_VERSION,
        onnx_path: paths::ONNX.into(),
        onnx_sha256: sha256_file(&run_dir.join(paths::ONNX))?,
        ir_version: autodl_deploy::IR_VERSION,
        opset: autodl_deploy::OPSET,
        inputs: autodl_deploy::graph_inputs(&opts),
        output_name: autodl_deploy::OUTPUT_NAME.into(),
        value_output_name: matches!(output, OutputKind::StandardizedValue { .. })
            .then(|| autodl_deploy::VALUE_OUTPUT.into()),
        feature_names: data.feature_names.clone(),
        output,
        parity: parity.clone(),
        compressed: Some(compressed),
    };
    put_json(&run_dir, paths::EXPORT, "export", &exported, &mut artifacts)?;
    eprintln!(
        "  model.onnx: {} bytes; tract vs burn max |Δ| = {:.2e} ({})",
        bytes.len(),
        diff,
        if parity.passed { "ok" } else { "FAILED" }
    );
    if !parity.passed {
        warnings.push(format!(
            "export parity failed: max |Δ| {diff:e} > {PARITY_TOLERANCE:e}"
        ));
    }
    stage_secs.insert("deploy".to_string(), t.elapsed().as_secs_f64());

    // 6. Monitoring reference, and a self-check on the test split.
    let t = Instant::now();
    stage(
        6,
        "monitor",
        "building the drift reference from the training rows",
    );
    let reference = autodl_monitor::build_reference(
        transform,
        &prepared.raw_train,
        &format!("training split of {sha}"),
    )?;
    put_json(
        &run_dir,
        paths::DRIFT_REFERENCE,
        "drift_reference",
        &reference,
        &mut artifacts,
    )?;
    let test_drift = autodl_monitor::detect(
        &reference,
        &prepared.raw_test,
        &autodl_monitor::DriftConfig::default(),
    )?;
    eprintln!(
        "  test split against the reference: {}",
        if test_drift.drift_detected {
            format!("drift in {}", test_drift.drifted_columns.join(", "))
        } else {
            "no drift".into()
        }
    );
    stage_secs.insert("monitor".to_string(), t.elapsed().as_secs_f64());

    // 7. Self-assessment: reload what was written, score the criteria, write the report.
    let t = Instant::now();
    stage(
        7,
        "criteria",
        "re-reading the artifacts and scoring the ten criteria",
    );
    let (checked, failed_checks, reloaded) = reload_check(&run_dir, &prepared.raw_test, metric);
    for f in &failed_checks {
        warnings.push(f.clone());
    }
    let scaling = scaling(
        &best.architecture,
        &best.hyperparams,
        data,
        target_scale,
        &ctx,
    );
    // Permutation importance of each input column (its features shuffled together) on the
    // test split, for the deployed model (the ensemble when kept).
    let mut groups = Vec::new();
    let mut at = 0;
    for step in &transform.steps {
        groups.push((step.column().to_string(), at..at + step.width()));
        at += step.width();
    }
    let feature_importance = autodl_criteria::permutation_importance(
        &data.test.x,
        &groups,
        |x| match autodl_train::predict_mean(&ensemble_members, data.task, x) {
            Ok(out) => metric.score(score(metric, &out, &data.test.y, target_scale).value),
            Err(_) => f64::NAN,
        },
        3,
        ctx.derive_seed("permutation-importance"),
    );
    // Stability: the whole run again with the next seeds (same data, budget and settings).
    let mut repeats = vec![(args.seed, test_metric.value)];
    for k in 1..args.repeats {
        let seed = args.seed + k as u64;
        stage(
            7,
            "criteria",
            &format!(
                "stability: repeating the run with seed {seed} ({k} of {})",
                args.repeats - 1
            ),
        );
        let again = run(RunArgs {
            out: Some(run_dir.join(format!("repeats/seed-{seed}"))),
            seed,
            repeats: 1,
            check_reproducibility: false,
            ..args.clone()
        })?;
        let m: RunManifest = read_json(&again.join(paths::MANIFEST))?;
        repeats.push((seed, m.test_metric.value));
    }
    // Reproducibility: the same run again, with the same seed and settings, compared.
    let rerun = if args.check_reproducibility {
        stage(
            7,
            "criteria",
            "reproducibility: repeating the run with the same seed",
        );
        let again = run(RunArgs {
            out: Some(run_dir.join("reproduce")),
            repeats: 1,
            check_reproducibility: false,
            ..args.clone()
        })?;
        Some(compare_reruns(&run_dir, &again)?)
    } else {
        None
    };
    let cpu_secs = machine::cpu_seconds();
    let facts = RunFacts {
        run_id: run_id.clone(),
        task: data.task,
        test_metric: test_metric.clone(),
        valid_metric: valid_metric.clone(),
        baseline_test_metric: baseline
            .as_ref()
            .map(|b| (b.name.clone(), b.test_metric.clone())),
        trivial_test_metric: autodl_criteria::trivial_metric(
            data.task,
            &data.train.y,
            &data.test.y,
            target_scale,
        ),
        wall_secs: started.elapsed().as_secs_f64(),
        cpu_secs,
        trials: history.trials.len(),
        diverged_trials: diverged,
        time_to_95pct_secs: time_to_within_5pct(&history),
        parameters: model.parameters,
        inference_macs: ensemble_members
            .iter()
            .map(|(spec, _)| spec.inference_macs().unwrap_or(0))
            .sum(),
        architecture: if ensemble_members.len() > 1 {
            format!(
                "mean of {} networks, the best: {}",
                ensemble_members.len(),
                best.architecture.describe()
            )
        } else {
            best.architecture.describe()
        },
        reloaded_test_metric: reloaded,
        parity: Some(parity.clone()),
        artifacts_checked: checked,
        artifacts_failed: failed_checks.len(),
        warnings: warnings.clone(),
        energy: machine::energy_between(&rapl_start),
        grid_g_per_kwh: args.grid_g_per_kwh,
        novelty: space
            .defaults()
            .iter()
            .filter_map(|g| {
                let default = space.render(g);
                autodl_criteria::novelty::architecture_distance(&best.architecture, &default)
                    .map(|d| (default.describe(), d))
            })
            .collect(),
        scaling,
        feature_importance,
        repeats,
        rerun,
        hp_importance: {
            let mut v: Vec<(String, f64)> = autodl_search::analysis::importance(&history)
                .into_iter()
                .map(|i| (i.factor, i.eta_squared))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            v
        },
        fold_metrics: model
            .cross_validation
            .as_ref()
            .and_then(|cv| {
                cv.candidates
                    .iter()
                    .find(|c| c.trial == cv.chosen_trial)
                    .map(|c| c.fold_metrics.clone())
            })
            .unwrap_or_default(),
    };
    let scorecard = autodl_criteria::assess(&facts);
    put_json(
        &run_dir,
        paths::CRITERIA,
        "criteria",
        &scorecard,
        &mut artifacts,
    )?;
    stage_secs.insert("criteria".to_string(), t.elapsed().as_secs_f64());

    let manifest = RunManifest {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.clone(),
        started_unix,
        seed: args.seed,
        data: DataSource {
            path: shown_path,
            sha256: sha,
            rows: profile.n_rows,
            columns: profile.columns.len(),
            target: target.clone(),
        },
        task: data.task,
        test_metric: test_metric.clone(),
        baseline_test_metric: baseline.as_ref().map(|b| b.test_metric.clone()),
        versions: {
            // With the versions, the worker threads the stages could use (the environment a
            // rerun should match).
            let mut v = machine::versions();
            v.insert("threads".into(), ctx.threads.to_string());
            v
        },
        stage_seconds: stage_secs,
        artifacts: artifacts.clone(),
    };
    let report = report::render(&report::ReportInput {
        manifest: &manifest,
        profile,
        transform,
        history: &history,
        model: &model,
        exported: &exported,
        test_drift: &test_drift,
        scorecard: &scorecard,
        warnings: &warnings,
    });
    autodl_artifacts::io::write_atomic(&run_dir.join(paths::REPORT), report.as_bytes())?;
    let mut manifest = manifest;
    record(&run_dir, paths::REPORT, "report", &mut manifest.artifacts)?;
    write_json(&run_dir.join(paths::MANIFEST), &manifest)?;
    // The same report as one self-contained HTML file with the plots. It is derived from the
    // artifacts above and rewritten by `cargo xtask report` (with any monitoring plots added
    // since), so the manifest does not pin its hash.
    crate::report_html::write(&run_dir)?;

    print_summary(
        &manifest,
        &model,
        baseline.as_ref(),
        &history,
        &parity,
        &run_dir,
        started.elapsed(),
    );
    if !parity.passed {
        bail!(
            "the exported model disagrees with the trained network (max |Δ| {diff:e} > {PARITY_TOLERANCE:e}); see {}",
            run_dir.join(paths::EXPORT).display()
        );
    }
    Ok(run_dir)
}

/// Median single-row latency of `runner` over (up to 200 of) the rows of `inputs`, in µs.
fn single_row_latency_us(
    runner: &autodl_deploy::OnnxRunner,
    inputs: &[autodl_deploy::InputRows],
) -> Result<f64> {
    let n = inputs.first().map_or(0, autodl_deploy::InputRows::n_rows);
    let rows: Vec<Vec<autodl_deploy::InputRows>> = (0..n.min(200))
        .map(|i| inputs.iter().map(|b| b.rows(i..i + 1)).collect())
        .collect();
    for row in rows.iter().take(20) {
        runner.run_inputs(row)?;
    }
    let mut times = Vec::with_capacity(rows.len());
    for row in &rows {
        let t = Instant::now();
        runner.run_inputs(row)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(crate::bench::median(times))
}

/// Writes the int8-weight variant of the exported model (`bytes`) beside it and measures
/// what it changes against the float model (`float`: its runner and test outputs): size,
/// single-row latency, the test metric and the largest output difference.
fn compress(
    run_dir: &Path,
    bytes: &[u8],
    float: (&autodl_deploy::OnnxRunner, &Matrix),
    inputs: &[autodl_deploy::InputRows],
    data: &PreparedData,
    target_scale: f64,
    artifacts: &mut Vec<ArtifactEntry>,
) -> Result<autodl_artifacts::export::CompressedModel> {
    let q = autodl_deploy::quantize_weights(bytes)?;
    autodl_artifacts::io::write_atomic(&run_dir.join(paths::ONNX_INT8), &q.bytes)?;
    record(run_dir, paths::ONNX_INT8, "onnx_int8", artifacts)?;
    let runner = autodl_deploy::OnnxRunner::from_bytes(&q.bytes)?;
    let outputs = runner.run_inputs(inputs)?;
    let test_metric = score(data.task.metric(), &outputs, &data.test.y, target_scale);
    let float_metric = score(data.task.metric(), float.1, &data.test.y, target_scale);
    let latency_us = [
        single_row_latency_us(&runner, inputs)?,
        single_row_latency_us(float.0, inputs)?,
    ];
    eprintln!(
        "  {}: {} bytes ({:.2}× of float; {} weight tensors as int8); test {} {:.4} (float {:.4}); single-row latency {:.0} µs (float {:.0} µs)",
        paths::ONNX_INT8,
        q.bytes.len(),
        q.bytes.len() as f64 / bytes.len() as f64,
        q.tensors,
        test_metric.name,
        test_metric.value,
        float_metric.value,
        latency_us[0],
        latency_us[1]
    );
    Ok(autodl_artifacts::export::CompressedModel {
        method: format!(
            "weight-only int8, symmetric, one scale per output channel ({} tensors of {} values)",
            q.tensors, q.values
        ),
        onnx_path: paths::ONNX_INT8.into(),
        onnx_sha256: sha256_file(&run_dir.join(paths::ONNX_INT8))?,
        bytes: q.bytes.len() as u64,
        float_bytes: bytes.len() as u64,
        latency_us,
        test_metric,
        max_abs_diff: autodl_deploy::max_abs_diff(&outputs, float.1),
    })
}

/// The metric of outputs against targets; regression errors are scaled back to target units.
pub fn score(
    metric: autodl_artifacts::table::Metric,
    outputs: &Matrix,
    y: &[f32],
    target_scale: f64,
) -> MetricValue {
    MetricValue::new(metric, metric.compute_scaled(outputs, y, target_scale))
}

/// Compares a run with its rerun: trial records with their clock readings left out, and the
/// final weights byte for byte.
fn compare_reruns(run: &Path, again: &Path) -> Result<autodl_criteria::RerunCheck> {
    let trials = |dir: &Path| -> Result<Vec<serde_json::Value>> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(paths::TRIALS))?)?;
        Ok(v["trials"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut t| {
                if let Some(o) = t.as_object_mut() {
                    o.remove("seconds");
                    o.remove("finished_at_secs");
                }
                t
            })
            .collect())
    };
    let (a, b) = (trials(run)?, trials(again)?);
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
    let weights = |dir: &Path| std::fs::read(dir.join(paths::WEIGHTS));
    Ok(autodl_criteria::RerunCheck {
        trials: [a.len(), b.len()],
        differing_trials: differing,
        same_weights: weights(run)? == weights(again)?,
        weights_sha256: sha256_file(&run.join(paths::WEIGHTS))?,
    })
}

/// Epochs of each fit of the scalability measurement.
const SCALE_EPOCHS: usize = 2;

/// The final architecture and hyper-parameters trained for [`SCALE_EPOCHS`] epochs on 25%, 50%
/// and all of the training rows (the trainer's seeded subsets), on one thread without the
/// run's deadline: seconds and validation metric of each fit, for the scalability criterion.
fn scaling(
    arch: &ArchitectureSpec,
    hp: &autodl_artifacts::trial::Hyperparams,
    data: &PreparedData,
    target_scale: f64,
    ctx: &RunContext,
) -> Vec<autodl_criteria::ScalePoint> {
    let train = autodl_train::TrainData::of(data, target_scale);
    let ctx = RunContext {
        deadline: None,
        threads: 1,
        progress: Arc::new(autodl_artifacts::context::Silent),
        ..ctx.clone()
    };
    let n = data.train.y.len();
    [0.25, 0.5, 1.0]
        .into_iter()
        .filter_map(|fraction| {
            let fidelity = autodl_train::Fidelity {
                epochs: Some(SCALE_EPOCHS),
                data_fraction: fraction,
            };
            let t = Instant::now();
            let r = autodl_train::train_with(arch, hp, &train, &ctx, fidelity, None).ok()?;
            let secs = t.elapsed().as_secs_f64();
            let TrialOutcome::Completed { valid_metric, .. } = r.outcome else {
                return None;
            };
            Some(autodl_criteria::ScalePoint {
                fraction,
                rows: ((n as f64 * fraction).ceil() as usize).clamp(2.min(n), n),
                secs,
                epochs: SCALE_EPOCHS,
                valid_metric: valid_metric.value,
            })
        })
        .collect()
}

/// Seconds into the search at which the best-so-far score first came within 5% of the final
/// best (for accuracy: ≥ 95% of it; for errors: ≤ final / 0.95).
fn time_to_within_5pct(history: &SearchHistory) -> Option<f64> {
    let best = history.best()?;
    let TrialOutcome::Completed {
        valid_metric: final_metric,
        ..
    } = &best.outcome
    else {
        return None;
    };
    let higher = final_metric.name == "accuracy";
    history.trials.iter().find_map(|t| match &t.outcome {
        TrialOutcome::Completed { valid_metric, .. } => {
            let ok = if higher {
                valid_metric.value >= 0.95 * final_metric.value
            } else {
                valid_metric.value <= final_metric.value / 0.95
            };
            ok.then_some(t.finished_at_secs)
        }
        _ => None,
    })
}

/// Re-reads every JSON artifact with its schema check, reloads transform and weights from disk,
/// and recomputes the test metric from the raw test rows. Returns (artifacts checked, failures,
/// recomputed metric).
fn reload_check(
    run: &Path,
    raw_test: &autodl_artifacts::table::RawTable,
    metric: autodl_artifacts::table::Metric,
) -> (usize, Vec<String>, Option<MetricValue>) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut check = |r: Result<(), autodl_artifacts::ArtifactError>, what: &str| {
        checked += 1;
        if let Err(e) = r {
            failures.push(format!("{what} failed to re-read: {e}"));
        }
    };
    check(
        read_json::<DataProfile>(&run.join(paths::PROFILE)).map(drop),
        paths::PROFILE,
    );
    check(
        read_json::<SearchHistory>(&run.join(paths::TRIALS)).map(drop),
        paths::TRIALS,
    );
    check(
        read_json::<ExportedModel>(&run.join(paths::EXPORT)).map(drop),
        paths::EXPORT,
    );
    check(
        read_json::<DriftReference>(&run.join(paths::DRIFT_REFERENCE)).map(drop),
        paths::DRIFT_REFERENCE,
    );
    let reloaded = (|| -> Result<MetricValue> {
        let transform: FeatureTransform = read_json(&run.join(paths::TRANSFORM))?;
        let model: TrainedModel = read_json(&run.join(paths::MODEL))?;
        // The deployed model: the kept ensemble's members, else the single network.
        let mut members = vec![(
            model.architecture.clone(),
            NetworkWeights::read(&run.join(&model.weights_path))?,
        )];
        if let Some(e) = model.ensemble.as_ref().filter(|e| e.kept) {
            members.clear();
            for m in &e.members {
                members.push((
                    m.architecture.clone(),
                    NetworkWeights::read(&run.join(&m.weights_path))?,
                ));
            }
        }
        let refs: Vec<(&ArchitectureSpec, &NetworkWeights)> =
            members.iter().map(|(a, w)| (a, w)).collect();
        let x = transform.transform(raw_test)?;
        let y = transform.encode_target(
            raw_test
                .column(&transform.target)
                .context("target column")?,
        )?;
        let out = autodl_train::predict_mean(&refs, transform.task, &x)?;
        Ok(score(metric, &out, &y, transform.target_scale()))
    })();
    checked += 3;
    match reloaded {
        Ok(m) => (checked, failures, Some(m)),
        Err(e) => {
            failures.push(format!("reloading the model failed: {e:#}"));
            (checked, failures, None)
        }
    }
}

fn print_summary(
    manifest: &RunManifest,
    model: &TrainedModel,
    baseline: Option<&BaselineResult>,
    history: &SearchHistory,
    parity: &ParityCheck,
    run_dir: &Path,
    elapsed: Duration,
) {
    let name = &manifest.test_metric.name;
    let rows: Vec<(String, String)> = vec![
        (
            "data".into(),
            format!(
                "{} ({} rows, target '{}')",
                manifest.data.path, manifest.data.rows, manifest.data.target
            ),
        ),
        ("task".into(), manifest.task.to_string()),
        (
            format!("test {name}"),
            format!("{:.4}", manifest.test_metric.value),
        ),
        (
            format!("validation {name}"),
            format!("{:.4}", model.valid_metric.value),
        ),
        (
            format!("baseline test {name}"),
            baseline.map_or("-".into(), |b| {
                format!("{:.4} ({})", b.test_metric.value, b.name)
            }),
        ),
        (
            "trials".into(),
            format!("{} ({})", history.trials.len(), history.strategy),
        ),
        (
            "model".into(),
            match model.ensemble.as_ref().filter(|e| e.kept) {
                Some(e) => format!(
                    "{} parameters: mean of {} networks (trials {}); the best: {}",
                    model.parameters,
                    e.chosen_size,
                    e.member_trials(),
                    model.architecture.describe()
                ),
                None => format!(
                    "{} parameters: {}",
                    model.parameters,
                    model.architecture.describe()
                ),
            },
        ),
        (
            "onnx parity".into(),
            format!(
                "max |Δ| {:.2e} vs burn ({})",
                parity.max_abs_diff,
                if parity.passed { "ok" } else { "FAILED" }
            ),
        ),
        (
            "wall time".into(),
            format!("{:.1} s", elapsed.as_secs_f64()),
        ),
        ("run directory".into(), run_dir.display().to_string()),
    ];
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    println!("{:-<1$}", "", width + 60);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    println!("{:-<1$}", "", width + 60);
}
