//! Search strategies and the search loop.

use std::collections::VecDeque;
use std::time::Instant;

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::trial::{SearchHistory, TrialOutcome, TrialRecord};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::genome::{Genome, SearchSpace};
use crate::graph::check_dag;
use crate::{Candidate, Evaluator, Result, SearchError};

/// How candidates are proposed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Independent uniform samples from the space.
    Random,
    /// Regularized (aging) evolution: a population of `population`; each step samples
    /// `tournament` members, mutates the best, adds the child and removes the oldest member.
    RegularizedEvolution {
        /// Population size (the first this many trials are random).
        population: usize,
        /// Tournament size.
        tournament: usize,
    },
}

impl Strategy {
    /// The default: regularized evolution with a population of 12 and tournaments of 4.
    pub fn default_evolution() -> Self {
        Strategy::RegularizedEvolution {
            population: 12,
            tournament: 4,
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::RegularizedEvolution { .. } => "regularized_evolution",
        }
    }
}

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Stop after this many trials.
    pub max_trials: Option<u32>,
    /// Stop proposing trials once this many seconds have passed.
    pub seconds: Option<f64>,
}

impl Budget {
    /// A budget of `n` trials and no time limit.
    pub fn trials(n: u32) -> Self {
        Budget {
            max_trials: Some(n),
            seconds: None,
        }
    }
}

/// Strategy and budget.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// The budget.
    pub budget: Budget,
}

impl SearchConfig {
    fn validate(&self) -> Result<()> {
        if self.budget.max_trials.is_none() && self.budget.seconds.is_none() {
            return Err(SearchError::Config(
                "a budget needs a trial cap or a time limit".into(),
            ));
        }
        if let Strategy::RegularizedEvolution {
            population,
            tournament,
        } = self.strategy
            && (population < 2 || tournament < 1 || tournament > population)
        {
            return Err(SearchError::Config(format!(
                "evolution needs population >= 2 and 1 <= tournament <= population (got {population}, {tournament})"
            )));
        }
        Ok(())
    }
}

/// Runs the search until the budget is spent or `ctx` asks to stop, and returns every trial.
/// The same seed, space, budget in trials and evaluator give the same history.
pub fn search(
    cfg: &SearchConfig,
    space: &SearchSpace,
    evaluator: &mut dyn Evaluator,
    ctx: &RunContext,
) -> Result<SearchHistory> {
    cfg.validate()?;
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.derive_seed("search"));
    let mut trials: Vec<TrialRecord> = Vec::new();
    // Aging population of (trial index, genome, score).
    let mut population: VecDeque<(usize, Genome, f64)> = VecDeque::new();
    ctx.progress
        .start("search", cfg.budget.max_trials.map(u64::from));
    let stopped_because = loop {
        let n = trials.len() as u32;
        if cfg.budget.max_trials.is_some_and(|m| n >= m) {
            break format!("trial budget of {n} reached");
        }
        if let Some(s) = cfg.budget.seconds
            && start.elapsed().as_secs_f64() >= s
        {
            break format!("time budget of {s} s reached");
        }
        if ctx.should_stop() {
            break "stopped by the caller (deadline or cancellation)".into();
        }

        let defaults = space.defaults();
        let (genome, proposed_by, parent, mutation) = match cfg.strategy {
            _ if (n as usize) < defaults.len() => {
                (defaults[n as usize].clone(), "default", None, None)
            }
            Strategy::RegularizedEvolution {
                population: size,
                tournament,
            } if population.len() >= size => {
                let contenders: Vec<&(usize, Genome, f64)> = population
                    .iter()
                    .collect::<Vec<_>>()
                    .choose_multiple(&mut rng, tournament)
                    .copied()
                    .collect();
                let best = contenders
                    .iter()
                    .max_by(|a, b| a.2.total_cmp(&b.2))
                    .expect("tournament is non-empty");
                let (child, what) = space.mutate(&best.1, &mut rng);
                (child, "mutation", Some(best.0 as u32), Some(what))
            }
            _ => (space.sample(&mut rng), "random", None, None),
        };
        let architecture = space.render(&genome);
        check_dag(&architecture)?;
        let candidate = Candidate {
            architecture,
            hyperparams: genome.hyperparams.clone(),
        };
        let t0 = Instant::now();
        let outcome = evaluator.evaluate(n, &candidate);
        let score = outcome.score().unwrap_or(f64::NEG_INFINITY);
        if let Strategy::RegularizedEvolution {
            population: size, ..
        } = cfg.strategy
        {
            population.push_back((trials.len(), genome, score));
            if population.len() > size {
                population.pop_front();
            }
        }
        let parameters = candidate.architecture.parameter_count().unwrap_or(0);
        trials.push(TrialRecord {
            trial: n,
            proposed_by: proposed_by.into(),
            parent,
            mutation,
            architecture: candidate.architecture,
            hyperparams: candidate.hyperparams,
            parameters,
            outcome,
            seconds: t0.elapsed().as_secs_f64(),
            finished_at_secs: start.elapsed().as_secs_f64(),
        });
        let best = best_trial(&trials).and_then(|b| trials[b as usize].outcome.score());
        ctx.progress.update(
            trials.len() as u64,
            &format!(
                "trial {n}: {} · best score {}",
                describe(&trials[n as usize].outcome),
                best.map_or("-".into(), |b| format!("{b:.4}"))
            ),
        );
    };
    ctx.progress.finish(&stopped_because);
    Ok(SearchHistory {
        schema_version: SCHEMA_VERSION,
        strategy: cfg.strategy.name().into(),
        seed: ctx.seed,
        budget_secs: cfg.budget.seconds,
        max_trials: cfg.budget.max_trials,
        best_trial: best_trial(&trials),
        trials,
        stopped_because,
    })
}

fn describe(outcome: &TrialOutcome) -> String {
    match outcome {
        TrialOutcome::Completed { valid_metric, .. } => {
            format!("{} {:.4}", valid_metric.name, valid_metric.value)
        }
        TrialOutcome::Diverged { epoch, .. } => format!("diverged in epoch {epoch}"),
        TrialOutcome::Failed { reason } => format!("failed ({reason})"),
    }
}

/// The completed trial with the highest score (the earliest on ties).
fn best_trial(trials: &[TrialRecord]) -> Option<u32> {
    trials
        .iter()
        .filter_map(|t| t.outcome.score().map(|s| (t.trial, s)))
        .fold(None, |best: Option<(u32, f64)>, (t, s)| match best {
            Some((_, bs)) if bs >= s => best,
            _ => Some((t, s)),
        })
        .map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::table::MetricValue;

    /// A deterministic objective with a known optimum: prefers 3 blocks of width 128 and a
    /// learning rate near 3e-3. Diverges for learning rates above 8e-3.
    fn objective(_: u32, c: &Candidate) -> TrialOutcome {
        let lr = c.hyperparams.learning_rate;
        if lr > 8e-3 {
            return TrialOutcome::Diverged {
                epoch: 1,
                loss: "NaN".into(),
            };
        }
        let dense: Vec<usize> = c
            .architecture
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                autodl_artifacts::arch::Op::Dense { units } => Some(units),
                _ => None,
            })
            .collect();
        let score = -((dense.len() as f64 - 3.0).abs())
            - dense
                .iter()
                .map(|&w| ((w as f64).log2() - 7.0).abs())
                .sum::<f64>()
                * 0.3
            - (lr.ln() - 3e-3f64.ln()).abs();
        TrialOutcome::Completed {
            valid_metric: MetricValue {
                name: "score".into(),
                value: score,
            },
            score,
            epochs: 1,
            best_epoch: 1,
        }
    }

    fn run(strategy: Strategy, seed: u64, trials: u32) -> SearchHistory {
        let cfg = SearchConfig {
            strategy,
            budget: Budget::trials(trials),
        };
        let mut eval = objective;
        search(
            &cfg,
            &SearchSpace::for_data(10, 3),
            &mut eval,
            &RunContext::new(seed, "."),
        )
        .unwrap()
    }

    #[test]
    fn same_seed_same_history_and_every_trial_recorded() {
        // Identical except wall-clock timings.
        let untimed = |mut h: SearchHistory| {
            for t in &mut h.trials {
                (t.seconds, t.finished_at_secs) = (0.0, 0.0);
            }
            h
        };
        let a = untimed(run(Strategy::default_evolution(), 3, 40));
        let b = untimed(run(Strategy::default_evolution(), 3, 40));
        assert_eq!(a.trials.len(), 40);
        assert_eq!(a, b);
        assert!(
            a.trials
                .iter()
                .any(|t| t.proposed_by == "mutation" && t.parent.is_some() && t.mutation.is_some())
        );
        let (done, diverged, failed) = a.counts();
        assert_eq!(done + diverged + failed, 40);
        let best = a.best().unwrap();
        assert!(a.trials.iter().all(
            |t| t.outcome.score().unwrap_or(f64::NEG_INFINITY) <= best.outcome.score().unwrap()
        ));
    }

    #[test]
    fn evolution_beats_random_on_a_known_objective() {
        // Mean best score over 10 seeds, 60 trials each.
        let mean_best = |s: &dyn Fn() -> Strategy| -> f64 {
            (0..10)
                .map(|seed| run(s(), seed, 60).best().unwrap().outcome.score().unwrap())
                .sum::<f64>()
                / 10.0
        };
        let evo = mean_best(&Strategy::default_evolution);
        let random = mean_best(&|| Strategy::Random);
        assert!(evo > random, "evolution {evo} vs random {random}");
    }

    #[test]
    fn time_budget_and_bad_config() {
        let cfg = SearchConfig {
            strategy: Strategy::Random,
            budget: Budget {
                max_trials: None,
                seconds: Some(0.0),
            },
        };
        let mut eval = objective;
        let h = search(
            &cfg,
            &SearchSpace::for_data(3, 2),
            &mut eval,
            &RunContext::new(0, "."),
        )
        .unwrap();
        assert!(h.trials.is_empty() && h.stopped_because.contains("time budget"));
        let bad = SearchConfig {
            strategy: Strategy::RegularizedEvolution {
                population: 1,
                tournament: 3,
            },
            budget: Budget::trials(3),
        };
        assert!(
            search(
                &bad,
                &SearchSpace::for_data(3, 2),
                &mut eval,
                &RunContext::new(0, ".")
            )
            .is_err()
        );
    }
}
