//! Self-assessment: the survey's ten criteria, scored from what a run measured.
//!
//! In: [`RunFacts`], the measurements the orchestrator collected while running the pipeline.
//! Out: a [`Scorecard`] with all ten criteria in the survey's order. Each criterion either
//! carries a measured value with the method that produced it, or says why it is not measured
//! and what would measure it. Nothing is estimated without saying so, and no number is invented.
//!
//! ```
//! use autodl_artifacts::criteria::Criterion;
//! use autodl_artifacts::table::{MetricValue, Task};
//! use autodl_criteria::{RunFacts, assess};
//! let facts = RunFacts::example();
//! let card = assess(&facts);
//! assert_eq!(card.criteria.len(), 10);
//! assert_eq!(card.criteria[1].criterion, Criterion::SolutionQuality);
//! ```

pub mod novelty;

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::criteria::{Assessment, Criterion, CriterionEntry, Measurement, Scorecard};
use autodl_artifacts::export::ParityCheck;
use autodl_artifacts::table::{Matrix, Metric, MetricValue, Task};

/// Power drawn per busy CPU core, in watts, when no energy counter is readable. A stated
/// assumption (a typical server core under load, package power divided by cores), not a
/// measurement; the scorecard says so.
pub const ASSUMED_WATTS_PER_CORE: f64 = 10.0;

/// Default grid carbon intensity in g CO2e per kWh (a world-average figure).
pub const DEFAULT_GRID_G_PER_KWH: f64 = 475.0;

/// Energy used by the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Energy {
    /// Read from a hardware counter (RAPL), in joules.
    Measured {
        /// Joules.
        joules: f64,
        /// The counter read.
        source: String,
    },
    /// No counter was readable; estimate from CPU time at [`ASSUMED_WATTS_PER_CORE`].
    Unavailable {
        /// Why no counter was read.
        reason: String,
    },
}

/// What the orchestrator measured during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    /// The run.
    pub run_id: String,
    /// The task.
    pub task: Task,
    /// Test metric of the final model.
    pub test_metric: MetricValue,
    /// Validation metric of the final model.
    pub valid_metric: MetricValue,
    /// Test metric of the linfa baseline, if it could be fitted.
    pub baseline_test_metric: Option<(String, MetricValue)>,
    /// Test metric of the trivial predictor (majority class or training mean).
    pub trivial_test_metric: MetricValue,
    /// Wall seconds of the whole run.
    pub wall_secs: f64,
    /// CPU seconds (user + system) of the process, if readable.
    pub cpu_secs: Option<f64>,
    /// Trials evaluated, and how many diverged.
    pub trials: usize,
    /// Trials that diverged.
    pub diverged_trials: usize,
    /// Seconds into the search at which the best-so-far validation score first came within 5%
    /// of the final best.
    pub time_to_95pct_secs: Option<f64>,
    /// Trainable parameters of the final model.
    pub parameters: usize,
    /// Multiply–accumulates per prediction.
    pub inference_macs: usize,
    /// The final architecture in words.
    pub architecture: String,
    /// Test metric recomputed from the weights as read back from disk.
    pub reloaded_test_metric: Option<MetricValue>,
    /// The run's export parity check.
    pub parity: Option<ParityCheck>,
    /// Artifacts written and read back with a schema check.
    pub artifacts_checked: usize,
    /// Artifacts that failed that check.
    pub artifacts_failed: usize,
    /// Warnings raised during the run.
    pub warnings: Vec<String>,
    /// Energy.
    pub energy: Energy,
    /// Grid carbon intensity, g CO2e per kWh.
    pub grid_g_per_kwh: f64,
    /// The final architecture's distance ([`novelty::architecture_distance`]) from each of
    /// the search space's default architectures, with their descriptions.
    pub novelty: Vec<(String, f64)>,
    /// The final architecture trained for a fixed number of epochs on growing fractions of the
    /// training rows: (fraction, rows, seconds, validation metric).
    pub scaling: Vec<ScalePoint>,
    /// Permutation importance of each input column on the test split, largest first, in the
    /// metric's units (see [`permutation_importance`]).
    pub feature_importance: Vec<(String, f64)>,
    /// (seed, test metric) of this run and of its repeats with other seeds (`--repeats`).
    pub repeats: Vec<(u64, f64)>,
    /// The result of rerunning with the same seed, when asked for.
    pub rerun: Option<RerunCheck>,
    /// Hyper-parameter importance from the search (factor, correlation ratio η²), largest first.
    pub hp_importance: Vec<(String, f64)>,
    /// The chosen candidate's held-out metric on each cross-validation fold (small data).
    pub fold_metrics: Vec<f64>,
}

/// A rerun of the whole run with the same seed and settings, compared with the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RerunCheck {
    /// Trials in the run and in the rerun.
    pub trials: [usize; 2],
    /// Trials whose records differ (clock readings left out), counting missing ones.
    pub differing_trials: usize,
    /// Whether the final weights are byte for byte the same.
    pub same_weights: bool,
    /// SHA-256 of the run's final weights.
    pub weights_sha256: String,
}

/// Permutation importance: for each group of feature columns (the features one input column
/// became), the mean loss of `score` over `repeats` shuffles of that group's rows (the
/// group's columns moved together, so a one-hot block stays one-hot), largest first.
/// `score` is larger-is-better; positive importance means the model relied on the column.
pub fn permutation_importance(
    x: &Matrix,
    groups: &[(String, std::ops::Range<usize>)],
    score: impl Fn(&Matrix) -> f64,
    repeats: usize,
    seed: u64,
) -> Vec<(String, f64)> {
    let base = score(x);
    let mut state = seed;
    let mut out: Vec<(String, f64)> = groups
        .iter()
        .map(|(name, cols)| {
            let mut loss = 0.0;
            for _ in 0..repeats.max(1) {
                let mut order: Vec<usize> = (0..x.n_rows).collect();
                for i in (1..order.len()).rev() {
                    state = autodl_artifacts::context::splitmix64(state);
                    order.swap(i, (state % (i as u64 + 1)) as usize);
                }
                let mut shuffled = x.clone();
                for (r, &from) in order.iter().enumerate() {
                    for c in cols.clone() {
                        shuffled.data[r * x.n_cols + c] = x.data[from * x.n_cols + c];
                    }
                }
                loss += base - score(&shuffled);
            }
            (name.clone(), loss / repeats.max(1) as f64)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// One fit of the scalability measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePoint {
    /// Share of the training rows.
    pub fraction: f64,
    /// Rows trained on.
    pub rows: usize,
    /// Wall seconds of the fit.
    pub secs: f64,
    /// Epochs of the fit.
    pub epochs: usize,
    /// Validation metric after it.
    pub valid_metric: f64,
}

/// Least-squares slope of `ln secs` against `ln rows`: the exponent `b` of `secs ∝ rows^b`.
pub fn growth_exponent(points: &[ScalePoint]) -> Option<f64> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.rows > 0 && p.secs > 0.0)
        .map(|p| ((p.rows as f64).ln(), p.secs.ln()))
        .collect();
    if xy.len() < 2 {
        return None;
    }
    let n = xy.len() as f64;
    let (mx, my) = (
        xy.iter().map(|p| p.0).sum::<f64>() / n,
        xy.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

impl RunFacts {
    /// A filled-in example (for documentation and tests).
    pub fn example() -> Self {
        RunFacts {
            run_id: "example".into(),
            task: Task::Multiclass,
            test_metric: MetricValue::new(Metric::Accuracy, 0.97),
            valid_metric: MetricValue::new(Metric::Accuracy, 0.98),
            baseline_test_metric: Some((
                "logistic".into(),
                MetricValue::new(Metric::Accuracy, 0.95),
            )),
            trivial_test_metric: MetricValue::new(Metric::Accuracy, 0.1),
            wall_secs: 60.0,
            cpu_secs: Some(70.0),
            trials: 30,
            diverged_trials: 1,
            time_to_95pct_secs: Some(5.0),
            parameters: 10_000,
            inference_macs: 9_000,
            architecture: "dense(128) → relu → output(10)".into(),
            reloaded_test_metric: Some(MetricValue::new(Metric::Accuracy, 0.97)),
            parity: None,
            artifacts_checked: 8,
            artifacts_failed: 0,
            warnings: vec![],
            energy: Energy::Unavailable {
                reason: "no RAPL".into(),
            },
            grid_g_per_kwh: DEFAULT_GRID_G_PER_KWH,
            novelty: vec![("dense(64) → relu → output(3)".into(), 0.4)],
            scaling: vec![],
            feature_importance: vec![("a".into(), 0.2)],
            repeats: vec![(42, 0.97)],
            rerun: None,
            hp_importance: vec![("learning rate".into(), 0.3)],
            fold_metrics: vec![],
        }
    }
}

fn m(name: &str, value: f64, unit: &str) -> Measurement {
    Measurement {
        name: name.into(),
        value,
        unit: unit.into(),
    }
}

fn measured(value: f64, unit: &str, method: String, details: Vec<Measurement>) -> Assessment {
    Assessment::Measured {
        value,
        unit: unit.into(),
        method,
        details,
    }
}

fn not_measured(reason: &str) -> Assessment {
    Assessment::NotMeasured {
        reason: reason.into(),
    }
}

/// The test metric a trivial predictor reaches: the training majority class for
/// classification, the training mean for regression (targets standardised, errors scaled back
/// with `target_scale`).
pub fn trivial_metric(
    task: Task,
    train_y: &[f32],
    test_y: &[f32],
    target_scale: f64,
) -> MetricValue {
    let metric = task.metric();
    if task.is_classification() {
        let mut counts = std::collections::BTreeMap::<i64, usize>::new();
        for &y in train_y {
            *counts.entry(y as i64).or_default() += 1;
        }
        let majority = counts
            .iter()
            .max_by_key(|(c, n)| (**n, -**c))
            .map_or(0, |(c, _)| *c);
        let correct = test_y.iter().filter(|&&y| y as i64 == majority).count();
        MetricValue::new(metric, correct as f64 / test_y.len().max(1) as f64)
    } else {
        let mean = train_y.iter().map(|&y| y as f64).sum::<f64>() / train_y.len().max(1) as f64;
        let outputs = Matrix::new(test_y.len(), 1, vec![mean as f32; test_y.len()]);
        MetricValue::new(
            metric,
            metric.compute_scaled(&outputs, test_y, target_scale),
        )
    }
}

/// Scores the run on all ten criteria.
pub fn assess(f: &RunFacts) -> Scorecard {
    let metric = f.task.metric();
    let unit = metric.name();
    let mut criteria = Vec::with_capacity(10);
    for criterion in Criterion::ALL {
        let assessment = match criterion {
            Criterion::Novelty => match f
                .novelty
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
            {
                Some((nearest, d)) => measured(
                    *d,
                    "distance",
                    format!(
                        "distance of the final architecture from {} (conventional) architecture, `{nearest}`: \
                         the mean of the edit distance between their operations in topological order \
                         (substitution within a kind costs ½) over the longer length, and the share of unshared \
                         edges by (source, destination) kind; 0 is a default architecture unchanged, 1 shares \
                         nothing with it",
                        if f.novelty.len() == 1 {
                            "the search space's default".to_string()
                        } else {
                            format!("the nearest of the search space's {} defaults", f.novelty.len())
                        }
                    ),
                    f.novelty
                        .iter()
                        .map(|(name, d)| m(&format!("distance from {name}"), *d, ""))
                        .collect(),
                ),
                None => not_measured("no default architecture to compare the final one with"),
            },
            Criterion::SolutionQuality => {
                let mut details = vec![
                    m("validation", f.valid_metric.value, unit),
                    m("trivial predictor (test)", f.trivial_test_metric.value, unit),
                ];
                if let Some((name, b)) = &f.baseline_test_metric {
                    details.push(m(&format!("{name} (test)"), b.value, unit));
                }
                measured(
                    f.test_metric.value,
                    unit,
                    format!(
                        "{} of the final model on the held-out test split, computed once after model selection; \
                         compared with the linfa baseline and a trivial predictor on the same split",
                        metric.name()
                    ),
                    details,
                )
            }
            Criterion::Efficiency => {
                let mut details = vec![
                    m("trials", f.trials as f64, ""),
                    m("diverged trials", f.diverged_trials as f64, ""),
                ];
                if let Some(cpu) = f.cpu_secs {
                    details.push(m("CPU time", cpu, "s"));
                }
                if let Some(t) = f.time_to_95pct_secs {
                    details.push(m("search time to within 5% of the final validation score", t, "s"));
                }
                measured(
                    f.wall_secs,
                    "s",
                    "wall-clock time of the whole run (monotonic clock); CPU time from /proc/self/stat".into(),
                    details,
                )
            }
            Criterion::Stability if f.repeats.len() >= 2 => {
                let n = f.repeats.len() as f64;
                let mean = f.repeats.iter().map(|r| r.1).sum::<f64>() / n;
                let sd = (f.repeats.iter().map(|r| (r.1 - mean).powi(2)).sum::<f64>() / (n - 1.0))
                    .sqrt();
                measured(
                    sd,
                    unit,
                    format!(
                        "sample standard deviation of the test {unit} over {} whole runs (splits, search and \
                         training) with seeds {}, same data, budget and settings",
                        f.repeats.len(),
                        f.repeats
                            .iter()
                            .map(|r| r.0.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    std::iter::once(m("mean", mean, unit))
                        .chain(
                            f.repeats
                                .iter()
                                .map(|(seed, v)| m(&format!("seed {seed}"), *v, unit)),
                        )
                        .collect(),
                )
            }
            Criterion::Stability => not_measured(
                "one run only: `cargo xtask run --repeats N` (N ≥ 2) repeats the whole run with the next seeds \
                 and reports the spread of the test metric",
            ),
            Criterion::Interpretability => measured(
                f.parameters as f64,
                "parameters",
                format!(
                    "model size as the measure of how much there is to understand: trainable parameters of `{}`; \
                     then the permutation importance of the input columns on the test split (the {} lost when \
                     a column's values are shuffled across rows, mean of 3 shuffles), the 5 largest; then the \
                     search's hyper-parameter importance (correlation ratio η² of each factor with the \
                     validation score over the completed trials), the 3 largest; the report draws the \
                     architecture",
                    f.architecture, unit
                ),
                std::iter::once(m(
                    "multiply-accumulates per prediction",
                    f.inference_macs as f64,
                    "",
                ))
                .chain(
                    f.feature_importance
                        .iter()
                        .take(5)
                        .map(|(c, v)| m(&format!("importance of {c}"), *v, unit)),
                )
                .chain(
                    f.hp_importance
                        .iter()
                        .take(3)
                        .map(|(c, v)| m(&format!("η² of {c} (search)"), *v, "")),
                )
                .collect(),
            ),
            Criterion::Reproducibility if f.rerun.is_some() => {
                let r = f.rerun.as_ref().expect("checked");
                let differences = r.differing_trials + usize::from(!r.same_weights);
                let mut details = vec![
                    m("trials in the run", r.trials[0] as f64, ""),
                    m("trials in the rerun", r.trials[1] as f64, ""),
                    m("differing trials", r.differing_trials as f64, ""),
                    m("same final weights (1 yes, 0 no)", f64::from(u8::from(r.same_weights)), ""),
                ];
                if let Some(re) = &f.reloaded_test_metric {
                    details.push(m("test metric recomputed from the saved model", re.value, unit));
                }
                measured(
                    differences as f64,
                    "differences",
                    format!(
                        "the whole run was repeated with the same seed and settings (into reproduce/) and \
                         compared: every trial record, leaving out its clock readings, and the final weights \
                         byte for byte (sha256 {}); the value counts differing trials plus 1 if the weights \
                         differ, so 0 means reproduced. The saved model was also read back and rescored. \
                         Seed, data hash, versions, the lock file's hash and the thread count are in manifest.json",
                        &r.weights_sha256[..12.min(r.weights_sha256.len())]
                    ),
                    details,
                )
            }
            Criterion::Reproducibility => match &f.reloaded_test_metric {
                Some(r) => measured(
                    (r.value - f.test_metric.value).abs(),
                    unit,
                    "the saved artifacts (transform, architecture, safetensors weights) were read back from disk \
                     and the test metric recomputed; the value is its absolute difference from the reported one. \
                     Seed, data hash and versions are recorded in manifest.json; `cargo xtask run \
                     --check-reproducibility` also reruns the whole run and compares trials and weights"
                        .into(),
                    vec![m("recomputed test metric", r.value, unit)],
                ),
                None => not_measured("the saved model could not be reloaded"),
            },
            Criterion::EngineeringQuality => match &f.parity {
                Some(p) => measured(
                    p.max_abs_diff,
                    "max abs diff",
                    format!(
                        "largest difference between {} and {} outputs on the {} ({} rows), tolerance {:e}; \
                         plus every artifact re-read with its schema check",
                        p.runtime, p.reference, p.rows_from, p.rows, p.tolerance
                    ),
                    vec![
                        m("parity passed", if p.passed { 1.0 } else { 0.0 }, "bool"),
                        m("artifacts checked", f.artifacts_checked as f64, ""),
                        m("artifacts failing", f.artifacts_failed as f64, ""),
                        m("warnings", f.warnings.len() as f64, ""),
                    ],
                ),
                None => not_measured("the model was not exported, so there is no parity check"),
            },
            Criterion::Scalability => match growth_exponent(&f.scaling) {
                Some(b) => measured(
                    b,
                    "exponent",
                    format!(
                        "the final architecture trained for {} epochs on {} of the training rows (seeded \
                         subsets, one thread); the value is b in seconds ∝ rows^b, fitted by least squares on \
                         the logarithms (1: cost grows in proportion to the data); the validation metric after \
                         each fit is a learning curve",
                        f.scaling.first().map_or(0, |p| p.epochs),
                        f.scaling
                            .iter()
                            .map(|p| format!("{:.0}%", p.fraction * 100.0))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    f.scaling
                        .iter()
                        .flat_map(|p| {
                            let share = format!("{:.0}% ({} rows)", p.fraction * 100.0, p.rows);
                            [
                                m(&format!("seconds at {share}"), p.secs, "s"),
                                m(&format!("validation {unit} at {share}"), p.valid_metric, unit),
                            ]
                        })
                        .collect(),
                ),
                None => not_measured("the fits on growing data fractions did not complete"),
            },
            Criterion::Generalizability => {
                let mut details = Vec::new();
                let mut method = "validation metric minus test metric of the final model: the optimism of \
                                  model selection (positive means the test split scored worse)"
                    .to_string();
                if f.fold_metrics.len() >= 2 {
                    let n = f.fold_metrics.len() as f64;
                    let mean = f.fold_metrics.iter().sum::<f64>() / n;
                    let sd = (f.fold_metrics.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0))
                        .sqrt();
                    details.push(m("cross-validation folds: mean", mean, unit));
                    details.push(m("cross-validation folds: standard deviation", sd, unit));
                    method.push_str(&format!(
                        "; and the spread of the chosen network's held-out {unit} over {} cross-validation folds",
                        f.fold_metrics.len()
                    ));
                }
                method.push_str(
                    "; the score on shifted data comes from `cargo xtask monitor` once it has seen new data",
                );
                measured(f.valid_metric.value - f.test_metric.value, unit, method, details)
            }
            Criterion::EcoFriendliness => {
                let (joules, method) = match (&f.energy, f.cpu_secs) {
                    (Energy::Measured { joules, source }, _) => (Some(*joules), format!("energy read from {source}")),
                    (Energy::Unavailable { reason }, Some(cpu)) => (
                        Some(cpu * ASSUMED_WATTS_PER_CORE),
                        format!(
                            "ESTIMATE: no energy counter ({reason}); CPU seconds × an assumed {ASSUMED_WATTS_PER_CORE} W per busy core"
                        ),
                    ),
                    (Energy::Unavailable { reason }, None) => (None, reason.clone()),
                };
                match joules {
                    Some(j) => {
                        let kwh = j / 3.6e6;
                        measured(
                            kwh * 1000.0,
                            "Wh",
                            format!("{method}; CO2e at {} g/kWh", f.grid_g_per_kwh),
                            vec![m("CO2e", kwh * f.grid_g_per_kwh, "g")],
                        )
                    }
                    None => not_measured(&format!("neither an energy counter nor CPU time was readable: {method}")),
                }
            }
        };
        criteria.push(CriterionEntry {
            criterion,
            assessment,
        });
    }
    Scorecard {
        schema_version: SCHEMA_VERSION,
        run_id: f.run_id.clone(),
        criteria,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_importance_finds_the_column_the_score_uses() {
        // Five rows, three columns; the score is high when column 1 is increasing.
        let x = Matrix::new(
            5,
            3,
            (0..15)
                .map(|i| if i % 3 == 1 { (i / 3) as f32 } else { 7.0 })
                .collect(),
        );
        let score = |m: &Matrix| {
            (1..m.n_rows)
                .filter(|&r| m.row(r)[1] > m.row(r - 1)[1])
                .count() as f64
        };
        let groups = [
            ("a".to_string(), 0..1),
            ("b".to_string(), 1..2),
            ("c".to_string(), 2..3),
        ];
        let imp = permutation_importance(&x, &groups, score, 3, 1);
        assert_eq!(imp[0].0, "b");
        assert!(imp[0].1 > 0.0);
        assert!(imp[1..].iter().all(|(_, v)| *v == 0.0), "{imp:?}");
    }

    #[test]
    fn stability_is_the_spread_over_repeats() {
        let mut f = RunFacts::example();
        let card = assess(&f);
        assert!(matches!(
            card.criteria[3].assessment,
            Assessment::NotMeasured { .. }
        ));
        f.repeats = vec![(1, 0.9), (2, 0.8), (3, 0.85)];
        match &assess(&f).criteria[3].assessment {
            Assessment::Measured { value, details, .. } => {
                assert!((value - 0.05).abs() < 1e-12, "{value}");
                assert_eq!(details.len(), 4);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn growth_exponent_recovers_a_power_law() {
        let point = |rows: usize, secs: f64| ScalePoint {
            fraction: 0.0,
            rows,
            secs,
            epochs: 2,
            valid_metric: 0.0,
        };
        let linear = [point(100, 1.0), point(200, 2.0), point(400, 4.0)];
        assert!((growth_exponent(&linear).unwrap() - 1.0).abs() < 1e-12);
        let quadratic = [point(100, 1.0), point(200, 4.0), point(400, 16.0)];
        assert!((growth_exponent(&quadratic).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(growth_exponent(&[point(100, 1.0)]), None);
    }

    #[test]
    fn all_ten_in_order_and_values_come_from_the_facts() {
        let mut facts = RunFacts::example();
        let card = assess(&facts);
        assert_eq!(
            card.criteria
                .iter()
                .map(|c| c.criterion)
                .collect::<Vec<_>>(),
            Criterion::ALL
        );
        let value = |card: &Scorecard, c: Criterion| match &card
            .criteria
            .iter()
            .find(|e| e.criterion == c)
            .unwrap()
            .assessment
        {
            Assessment::Measured { value, .. } => Some(*value),
            Assessment::NotMeasured { .. } => None,
        };
        assert_eq!(value(&card, Criterion::SolutionQuality), Some(0.97));
        assert!((value(&card, Criterion::Generalizability).unwrap() - 0.01).abs() < 1e-12);
        // 70 CPU seconds at 10 W = 700 J = 0.1944 Wh.
        assert!((value(&card, Criterion::EcoFriendliness).unwrap() - 700.0 / 3600.0).abs() < 1e-12);
        assert_eq!(value(&card, Criterion::Stability), None);
        facts.cpu_secs = None;
        assert_eq!(value(&assess(&facts), Criterion::EcoFriendliness), None);
    }

    #[test]
    fn trivial_predictor() {
        let t = trivial_metric(
            Task::Multiclass,
            &[0.0, 1.0, 1.0],
            &[1.0, 0.0, 1.0, 2.0],
            1.0,
        );
        assert_eq!(t.value, 0.5);
        let r = trivial_metric(Task::Regression, &[1.0, 3.0], &[2.0, 4.0], 10.0);
        // Mean 2: errors 0 and 2 → rmse √2, times scale 10.
        assert!((r.value - 10.0 * 2f64.sqrt()).abs() < 1e-9);
    }
}
