//! Reading a finished search: the accuracy–size Pareto front, and which choices mattered.

use autodl_artifacts::arch::{Norm, Op};
use autodl_artifacts::trial::{SearchHistory, TrialRecord};

/// Completed trials with a finite score, and that score.
fn completed(history: &SearchHistory) -> Vec<(&TrialRecord, f64)> {
    history
        .trials
        .iter()
        .filter_map(|t| t.outcome.score().filter(|s| s.is_finite()).map(|s| (t, s)))
        .collect()
}

/// The completed trials that no other completed trial beats on both score (higher) and
/// parameter count (lower), ordered by parameter count.
pub fn pareto_front(history: &SearchHistory) -> Vec<u32> {
    pareto_front_by(history, |t| t.parameters as f64)
}

/// The completed trials that no other completed trial beats on both score (higher) and
/// `cost` (lower), ordered by cost.
pub fn pareto_front_by(history: &SearchHistory, cost: impl Fn(&TrialRecord) -> f64) -> Vec<u32> {
    let done: Vec<(&TrialRecord, f64, f64)> = completed(history)
        .into_iter()
        .map(|(t, s)| (t, s, cost(t)))
        .collect();
    let mut front: Vec<(&TrialRecord, f64, f64)> = done
        .iter()
        .filter(|(_, s, c)| {
            !done
                .iter()
                .any(|(_, os, oc)| (os >= s && oc <= c) && (os > s || oc < c))
        })
        .copied()
        .collect();
    front.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.trial.cmp(&b.0.trial)));
    // Equal points: keep the earliest trial.
    front.dedup_by(|b, a| a.2 == b.2 && a.1 == b.1);
    front.iter().map(|(t, _, _)| t.trial).collect()
}

/// How much of the variance of the validation score one factor explains.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The factor (a training option or an architecture summary).
    pub factor: String,
    /// The correlation ratio η²: between-level variance over total variance, in `[0, 1]`.
    pub eta_squared: f64,
    /// Distinct levels seen (continuous factors are cut at their quartiles).
    pub levels: usize,
}

/// Each factor's correlation ratio η² over the completed trials: a first-order variance
/// decomposition without a surrogate model, so interactions are not separated and factors with
/// many levels look more important on few trials (the level count is reported beside it).
/// Empty with fewer than five completed trials.
pub fn importance(history: &SearchHistory) -> Vec<Importance> {
    let done = completed(history);
    if done.len() < 5 {
        return Vec::new();
    }
    let count = |t: &TrialRecord, f: fn(&Op) -> bool| {
        t.architecture.nodes.iter().filter(|n| f(&n.op)).count() as f64
    };
    let factors: Vec<Factor> = vec![
        (
            "learning rate",
            Box::new(|t| t.hyperparams.learning_rate.ln()),
            true,
        ),
        (
            "weight decay",
            Box::new(|t| t.hyperparams.weight_decay.ln()),
            true,
        ),
        ("parameters", Box::new(|t| (t.parameters as f64).ln()), true),
        (
            "batch size",
            Box::new(|t| t.hyperparams.batch_size as f64),
            false,
        ),
        (
            "max epochs",
            Box::new(|t| t.hyperparams.max_epochs as f64),
            false,
        ),
        (
            "early stopping",
            Box::new(|t| f64::from(u8::from(t.hyperparams.early_stopping()))),
            false,
        ),
        ("optimizer", Box::new(optimizer_level), false),
        (
            "schedule",
            Box::new(|t| t.hyperparams.schedule as u8 as f64),
            false,
        ),
        (
            "warm-up epochs",
            Box::new(|t| t.hyperparams.warmup_epochs as f64),
            false,
        ),
        (
            "gradient clipping",
            Box::new(|t| t.hyperparams.grad_clip_norm.unwrap_or(0.0)),
            false,
        ),
        (
            "label smoothing",
            Box::new(|t| t.hyperparams.label_smoothing),
            false,
        ),
        (
            "shift augmentation",
            Box::new(|t| t.hyperparams.augment_shift as f64),
            false,
        ),
        (
            "noise augmentation",
            Box::new(|t| t.hyperparams.augment_noise),
            false,
        ),
        ("mixup α", Box::new(|t| t.hyperparams.mixup_alpha), false),
        (
            "rotation augmentation",
            Box::new(|t| t.hyperparams.augment_rotate),
            false,
        ),
        (
            "convolutions",
            Box::new(move |t| count(t, |op| matches!(op, Op::Conv { .. }))),
            false,
        ),
        (
            "dense layers",
            Box::new(move |t| count(t, |op| matches!(op, Op::Dense { .. }))),
            false,
        ),
        (
            "batch norm",
            Box::new(move |t| {
                (count(t, |op| matches!(op, Op::Norm { kind: Norm::Batch })) > 0.0) as u8 as f64
            }),
            false,
        ),
        (
            "skip connections",
            Box::new(move |t| {
                (count(t, |op| matches!(op, Op::Add | Op::Concat)) > 0.0) as u8 as f64
            }),
            false,
        ),
    ];
    let scores: Vec<f64> = done.iter().map(|(_, s)| *s).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let total: f64 = scores.iter().map(|s| (s - mean).powi(2)).sum();
    let mut out: Vec<Importance> = factors
        .into_iter()
        .filter_map(|(name, value, continuous)| {
            let values: Vec<f64> = done.iter().map(|(t, _)| value(t)).collect();
            let levels = if continuous {
                quartile_levels(&values)
            } else {
                values.clone()
            };
            let mut groups: Vec<(f64, Vec<f64>)> = Vec::new();
            for (level, &score) in levels.iter().zip(&scores) {
                match groups.iter_mut().find(|(l, _)| l == level) {
                    Some((_, g)) => g.push(score),
                    None => groups.push((*level, vec![score])),
                }
            }
            if groups.len() < 2 {
                return None;
            }
            let between: f64 = groups
                .iter()
                .map(|(_, g)| {
                    let m = g.iter().sum::<f64>() / g.len() as f64;
                    g.len() as f64 * (m - mean).powi(2)
                })
                .sum();
            Some(Importance {
                factor: name.into(),
                eta_squared: if total > 0.0 { between / total } else { 0.0 },
                levels: groups.len(),
            })
        })
        .collect();
    out.sort_by(|a, b| b.eta_squared.total_cmp(&a.eta_squared));
    out
}

/// A factor's name, how to read it off a trial, and whether it is continuous.
type Factor = (&'static str, Box<dyn Fn(&TrialRecord) -> f64>, bool);

fn optimizer_level(t: &TrialRecord) -> f64 {
    match t.hyperparams.optimizer {
        autodl_artifacts::trial::Optimizer::Sgd { .. } => 0.0,
        autodl_artifacts::trial::Optimizer::Adam => 1.0,
        autodl_artifacts::trial::Optimizer::AdamW => 2.0,
    }
}

/// Each value's quartile (0–3) among `values`.
fn quartile_levels(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cut = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let (q1, q2, q3) = (cut(0.25), cut(0.5), cut(0.75));
    values
        .iter()
        .map(|&v| {
            if v <= q1 {
                0.0
            } else if v <= q2 {
                1.0
            } else if v <= q3 {
                2.0
            } else {
                3.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Budget, Candidate, SearchConfig, SearchSpace, Strategy, search};
    use autodl_artifacts::context::RunContext;
    use autodl_artifacts::table::MetricValue;
    use autodl_artifacts::trial::TrialOutcome;

    /// A score that depends on the learning rate only (and a little on nothing else).
    fn history() -> SearchHistory {
        let mut eval = |_: u32, c: &Candidate| {
            let score = -(c.hyperparams.learning_rate.ln() - 3e-3f64.ln()).abs();
            TrialOutcome::Completed {
                valid_metric: MetricValue {
                    name: "score".into(),
                    value: score,
                },
                score,
                epochs: 1,
                best_epoch: 1,
            }
        };
        let cfg = SearchConfig {
            strategy: Strategy::Random,
            budget: Budget::trials(60),
            objective: crate::Objective::Score,
        };
        search(
            &cfg,
            &SearchSpace::for_data(8, 2),
            &mut eval,
            &RunContext::new(3, "."),
        )
        .unwrap()
    }

    #[test]
    fn the_factor_that_drives_the_score_ranks_first() {
        let imp = importance(&history());
        assert_eq!(imp[0].factor, "learning rate", "{imp:?}");
        assert!(imp[0].eta_squared > 0.5, "{imp:?}");
        assert!(imp.iter().all(|i| (0.0..=1.0).contains(&i.eta_squared)));
        // Factors unrelated to the score explain far less.
        let dense = imp.iter().find(|i| i.factor == "dense layers").unwrap();
        assert!(dense.eta_squared < imp[0].eta_squared / 2.0, "{imp:?}");
    }

    #[test]
    fn the_pareto_front_is_undominated_and_ordered_by_size() {
        let h = history();
        let front = pareto_front(&h);
        assert!(!front.is_empty());
        let get = |id: u32| h.trials.iter().find(|t| t.trial == id).unwrap();
        for w in front.windows(2) {
            let (a, b) = (get(w[0]), get(w[1]));
            // Larger networks on the front must score better.
            assert!(a.parameters < b.parameters, "{front:?}");
            assert!(a.outcome.score().unwrap() < b.outcome.score().unwrap());
        }
        for t in &h.trials {
            let s = t.outcome.score().unwrap();
            let dominated = h.trials.iter().any(|o| {
                let os = o.outcome.score().unwrap();
                os >= s && o.parameters <= t.parameters && (os > s || o.parameters < t.parameters)
            });
            assert_eq!(
                !dominated,
                front.contains(&t.trial)
                    || front.iter().any(|&f| {
                        let ft = get(f);
                        ft.parameters == t.parameters && ft.outcome.score() == t.outcome.score()
                    }),
                "trial {}",
                t.trial
            );
        }
    }
}
