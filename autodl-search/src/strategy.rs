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
    /// Independent uniform samples from the space, and nothing else: unlike the other
    /// strategies it does not start from the space's conventional defaults
    /// ([`SearchSpace::defaults`]). It is the baseline the others are measured against.
    Random,
    /// Regularized (aging) evolution: a population of `population`; each step samples
    /// `tournament` members, mutates the best, adds the child and removes the oldest member.
    /// While the population fills, every other trial (the odd-numbered ones, once there are
    /// two members) is already such a mutation, with a tournament among the members so far:
    /// short budgets exploit as well as explore.
    RegularizedEvolution {
        /// Population size (until it is reached, even-numbered trials are random).
        population: usize,
        /// Tournament size.
        tournament: usize,
    },
    /// Tree-structured Parzen Estimator over the genome's flat encoding (block counts, each
    /// block's choices, every training option; conditional parameters), after
    /// `startup_trials` random ones.
    Tpe {
        /// Random proposals before the model is used.
        startup_trials: usize,
    },
    /// BOHB (Falkner et al. 2018): Hyperband's brackets (see [`Strategy::Hyperband`]) whose
    /// new candidates come from TPE, fitted on the scores at the highest rung with at least 10
    /// observations (random until then).
    Bohb {
        /// Candidates in the largest bracket (a power of `eta`).
        bracket: usize,
        /// Keep the best `1/eta` at each rung.
        eta: usize,
        /// Epochs at the first rung of the largest bracket.
        min_epochs: usize,
    },
    /// Hyperband (Li et al. 2018): successive halving in brackets that trade the number of
    /// candidates against their first-rung epochs, cycling from the most exploratory
    /// (`bracket` candidates at `min_epochs`) to the least (few candidates, each started with
    /// `eta^s_max` times the epochs), where `s_max = log_eta(bracket)`. Bracket `s` has
    /// `⌈(s_max + 1) · eta^s / (s + 1)⌉` random candidates starting at
    /// `min_epochs · eta^(s_max − s)` epochs.
    Hyperband {
        /// Candidates in the largest bracket (a power of `eta`).
        bracket: usize,
        /// Keep the best `1/eta` at each rung.
        eta: usize,
        /// Epochs at the first rung of the largest bracket.
        min_epochs: usize,
    },
    /// Successive halving in repeated brackets, with epochs as the fidelity: each bracket
    /// trains `bracket` new candidates for `min_epochs`, keeps the best `1/eta` and continues
    /// them (from their checkpoints) to `eta` times the epochs, and so on until one is left,
    /// which trains to the end. Brackets after the first draw half their candidates as
    /// mutations of the best trials so far.
    SuccessiveHalving {
        /// New candidates per bracket.
        bracket: usize,
        /// Keep the best `1/eta` at each rung.
        eta: usize,
        /// Epochs at the first rung.
        min_epochs: usize,
    },
}

impl Strategy {
    /// The default: regularized evolution with a population of 6 and tournaments of 3. On the
    /// NAS table (`cargo xtask bench nas`) it needed 27.5 full trainings to reach the top 1%
    /// against random search's 244.5; only successive halving (25.5) was faster, and that lost
    /// to random search in the pipeline. In the pipeline at equal wall-clock (120 s) it has
    /// beaten random search on MNIST-1D in most comparisons (seeds 1–6 on two 2-core AMD EPYCs:
    /// 64 test rows only it gets right against 28 with AVX-512, 89 against 37 on a Zen 3),
    /// though runs of seeds 1–3 on slower machines went to random search or tied on validation
    /// when few or no mutations fit the budget; on digits the two are indistinguishable (18
    /// seeds on a Xeon: 21 rows against 19; 6 on each EPYC: 4 against 3 and 0 against 3);
    /// ARCHITECTURE.md has the numbers.
    pub fn default_evolution() -> Self {
        Strategy::RegularizedEvolution {
            population: 6,
            tournament: 3,
        }
    }

    /// Successive halving with brackets of 9, eta 3, and 3 epochs at the first rung.
    pub fn default_halving() -> Self {
        Strategy::SuccessiveHalving {
            bracket: 9,
            eta: 3,
            min_epochs: 3,
        }
    }

    /// Hyperband with a largest bracket of 9 at 3 epochs, eta 3: brackets of 9 at 3 epochs, 5
    /// at 9, 3 at 27.
    pub fn default_hyperband() -> Self {
        Strategy::Hyperband {
            bracket: 9,
            eta: 3,
            min_epochs: 3,
        }
    }

    /// BOHB with Hyperband's brackets: the largest of 9 at 3 epochs, eta 3.
    pub fn default_bohb() -> Self {
        Strategy::Bohb {
            bracket: 9,
            eta: 3,
            min_epochs: 3,
        }
    }

    /// TPE with Optuna's 10 random start-up trials.
    pub fn default_tpe() -> Self {
        Strategy::Tpe { startup_trials: 10 }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::RegularizedEvolution { .. } => "regularized_evolution",
            Strategy::SuccessiveHalving { .. } => "successive_halving",
            Strategy::Tpe { .. } => "tpe",
            Strategy::Bohb { .. } => "bohb",
            Strategy::Hyperband { .. } => "hyperband",
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

/// What the search optimises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The validation score alone.
    #[default]
    Score,
    /// The validation score (higher) and the parameter count (lower) together: candidates
    /// are compared by Pareto rank (see [`pareto_ranks`]).
    ScoreAndParameters,
    /// The validation score and the multiply-adds per prediction (lower; the inference-cost
    /// estimate) together.
    ScoreAndMacs,
}

impl Objective {
    /// The cost the second objective minimises for `trial`, if there is one.
    pub fn cost(&self, trial: &TrialRecord) -> Option<f64> {
        match self {
            Objective::Score => None,
            Objective::ScoreAndParameters => Some(trial.parameters as f64),
            Objective::ScoreAndMacs => Some(trial.macs as f64),
        }
    }
}

/// Non-dominated sorting of `(score, cost)` points (score higher, cost lower is better): rank
/// 0 is the Pareto front, rank 1 the front once rank 0 is removed, and so on.
pub fn pareto_ranks(points: &[(f64, f64)]) -> Vec<usize> {
    let dominates =
        |a: (f64, f64), b: (f64, f64)| a.0 >= b.0 && a.1 <= b.1 && (a.0 > b.0 || a.1 < b.1);
    let mut rank = vec![usize::MAX; points.len()];
    let mut level = 0;
    while rank.contains(&usize::MAX) {
        let current: Vec<usize> = (0..points.len())
            .filter(|&i| rank[i] == usize::MAX)
            .filter(|&i| {
                !(0..points.len()).any(|j| rank[j] == usize::MAX && dominates(points[j], points[i]))
            })
            .collect();
        for i in current {
            rank[i] = level;
        }
        level += 1;
    }
    rank
}

/// Strategy, budget and objective.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// The budget.
    pub budget: Budget,
    /// What to optimise (the score alone unless set).
    #[serde(default)]
    pub objective: Objective,
}

impl SearchConfig {
    fn validate(&self) -> Result<()> {
        if self.objective != Objective::Score
            && !matches!(
                self.strategy,
                Strategy::Random | Strategy::RegularizedEvolution { .. } | Strategy::Tpe { .. }
            )
        {
            return Err(SearchError::Config(format!(
                "the two-objective search works with random search, evolution and TPE; {} promotes by score alone",
                self.strategy.name()
            )));
        }
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
        if let Strategy::SuccessiveHalving {
            bracket,
            eta,
            min_epochs,
        }
        | Strategy::Bohb {
            bracket,
            eta,
            min_epochs,
        }
        | Strategy::Hyperband {
            bracket,
            eta,
            min_epochs,
        } = self.strategy
            && (eta < 2 || bracket < eta || min_epochs < 1)
        {
            return Err(SearchError::Config(format!(
                "successive halving needs eta >= 2, bracket >= eta and min_epochs >= 1 (got bracket {bracket}, eta {eta}, min_epochs {min_epochs})"
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
    match cfg.strategy {
        Strategy::SuccessiveHalving {
            bracket,
            eta,
            min_epochs,
        } => {
            let rungs = (bracket, eta, min_epochs);
            return search_halving(cfg, space, evaluator, ctx, rungs, Brackets::Halving);
        }
        Strategy::Hyperband {
            bracket,
            eta,
            min_epochs,
        } => {
            let rungs = (bracket, eta, min_epochs);
            return search_halving(cfg, space, evaluator, ctx, rungs, Brackets::Hyperband);
        }
        Strategy::Bohb {
            bracket,
            eta,
            min_epochs,
        } => {
            let rungs = (bracket, eta, min_epochs);
            return search_halving(cfg, space, evaluator, ctx, rungs, Brackets::Bohb);
        }
        _ => {}
    }
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.derive_seed("search"));
    let mut trials: Vec<TrialRecord> = Vec::new();
    // Aging population of (trial index, genome, score, cost of the second objective).
    let mut population: VecDeque<(usize, Genome, f64, f64)> = VecDeque::new();
    let two_objectives = cfg.objective != Objective::Score;
    // TPE's observations: encoded genomes and losses (negated scores).
    let tpe_space = space.tpe_space();
    let mut observed: Vec<(crate::tpe::Config, f64)> = Vec::new();
    // The second objective's cost of each observation (its score is in `observed`).
    let mut costs: Vec<f64> = Vec::new();
    ctx.progress
        .start("search", cfg.budget.max_trials.map(u64::from));
    let defaults = space.defaults();
    let stopped_because = loop {
        let n = trials.len() as u32;
        if let Some(why) = budget_exhausted(cfg, ctx, start, Some(n)) {
            break why;
        }
        let (genome, proposed_by, parent, mutation) = match cfg.strategy {
            _ if (n as usize) < defaults.len() && cfg.strategy != Strategy::Random => {
                (defaults[n as usize].clone(), "default", None, None)
            }
            Strategy::RegularizedEvolution {
                population: size,
                tournament,
            } if population.len() >= size || (population.len() >= 2 && n % 2 == 1) => {
                let contenders: Vec<&(usize, Genome, f64, f64)> = population
                    .iter()
                    .collect::<Vec<_>>()
                    .choose_multiple(&mut rng, tournament.min(population.len()))
                    .copied()
                    .collect();
                // One objective: the best score wins. Two: the lowest Pareto rank within the
                // population wins, ties by score.
                let ranks = if two_objectives {
                    let points: Vec<(f64, f64)> = population.iter().map(|p| (p.2, p.3)).collect();
                    let ranks = pareto_ranks(&points);
                    population
                        .iter()
                        .zip(ranks)
                        .map(|(p, r)| (p.0, r))
                        .collect()
                } else {
                    std::collections::HashMap::new()
                };
                let rank = |c: &(usize, Genome, f64, f64)| ranks.get(&c.0).copied().unwrap_or(0);
                let best = contenders
                    .iter()
                    .max_by(|a, b| rank(b).cmp(&rank(a)).then(a.2.total_cmp(&b.2)))
                    .expect("tournament is non-empty");
                let (child, what) = space.mutate(&best.1, &mut rng);
                // Why this parent: the tournament it won.
                let rivals: Vec<String> = contenders
                    .iter()
                    .filter(|c| c.0 != best.0)
                    .map(|c| format!("{} ({})", c.0, score_text(c.2)))
                    .collect();
                let pareto = if two_objectives {
                    format!(" and Pareto rank {} in the population", rank(best))
                } else {
                    String::new()
                };
                let why = format!(
                    "{what}; parent won a tournament of {} with score {}{pareto} against trials {}",
                    contenders.len(),
                    score_text(best.2),
                    rivals.join(", ")
                );
                (child, "mutation", Some(best.0 as u32), Some(why))
            }
            Strategy::Tpe { startup_trials } => {
                let settings = crate::tpe::TpeSettings {
                    startup_trials,
                    ..Default::default()
                };
                // Two objectives: TPE's loss is the Pareto rank, ties by score.
                let ranked: Vec<(crate::tpe::Config, f64)>;
                let losses = if two_objectives {
                    let points: Vec<(f64, f64)> = observed
                        .iter()
                        .zip(&costs)
                        .map(|((_, loss), &c)| (-loss, c))
                        .collect();
                    ranked = observed
                        .iter()
                        .zip(pareto_ranks(&points))
                        .map(|((c, loss), r)| (c.clone(), r as f64 + 0.5 * loss.clamp(-1.0, 1.0)))
                        .collect();
                    &ranked
                } else {
                    &observed
                };
                let config = tpe_space.suggest(losses, settings, &mut rng);
                let by = if observed.len() < startup_trials {
                    "random"
                } else {
                    "tpe"
                };
                (space.decode(&config), by, None, None)
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
        let parameters = candidate.architecture.parameter_count().unwrap_or(0);
        let macs = candidate.architecture.inference_macs().unwrap_or(0);
        let record = TrialRecord {
            trial: n,
            proposed_by: proposed_by.into(),
            parent,
            mutation,
            architecture: candidate.architecture,
            hyperparams: candidate.hyperparams,
            parameters,
            macs,
            outcome,
            seconds: t0.elapsed().as_secs_f64(),
            rungs: None,
            finished_at_secs: start.elapsed().as_secs_f64(),
        };
        let cost = cfg.objective.cost(&record).unwrap_or(0.0);
        if let Strategy::Tpe { .. } = cfg.strategy {
            observed.push((space.encode(&genome), -score));
            costs.push(cost);
        }
        if let Strategy::RegularizedEvolution {
            population: size, ..
        } = cfg.strategy
        {
            population.push_back((trials.len(), genome, score, cost));
            if population.len() > size {
                population.pop_front();
            }
        }
        trials.push(record);
        progress(ctx, &trials, n);
    };
    Ok(finish(cfg, ctx, trials, stopped_because))
}

/// Reports the end and wraps the trials into the history.
fn finish(
    cfg: &SearchConfig,
    ctx: &RunContext,
    trials: Vec<TrialRecord>,
    stopped_because: String,
) -> SearchHistory {
    ctx.progress.finish(&stopped_because);
    SearchHistory {
        schema_version: SCHEMA_VERSION,
        strategy: cfg.strategy.name().into(),
        seed: ctx.seed,
        budget_secs: cfg.budget.seconds,
        max_trials: cfg.budget.max_trials,
        best_trial: best_trial(&trials),
        trials,
        stopped_because,
    }
}

/// Why the budget says stop, if it does: `new_trials` is how many trials exist (the trial cap
/// only limits new ones).
fn budget_exhausted(
    cfg: &SearchConfig,
    ctx: &RunContext,
    start: Instant,
    new_trials: Option<u32>,
) -> Option<String> {
    if let (Some(n), Some(m)) = (new_trials, cfg.budget.max_trials)
        && n >= m
    {
        return Some(format!("trial budget of {n} reached"));
    }
    if let Some(s) = cfg.budget.seconds
        && start.elapsed().as_secs_f64() >= s
    {
        return Some(format!("time budget of {s} s reached"));
    }
    ctx.should_stop()
        .then(|| "stopped by the caller (deadline or cancellation)".to_string())
}

/// TPE observations for BOHB: encoded genomes with their negated scores at the largest
/// number of epochs that at least `needed` trials were scored at (finite scores only).
fn rung_observations(
    space: &SearchSpace,
    trials: &[TrialRecord],
    genomes: &[Genome],
    needed: usize,
) -> Option<Vec<(crate::tpe::Config, f64)>> {
    let mut by_epochs: std::collections::BTreeMap<usize, Vec<(u32, f64)>> = Default::default();
    for t in trials {
        let Some(r) = &t.rungs else { continue };
        for (&epochs, score) in r.epochs.iter().zip(&r.scores) {
            if let Some(score) = score {
                by_epochs.entry(epochs).or_default().push((t.trial, *score));
            }
        }
    }
    let (_, scored) = by_epochs
        .into_iter()
        .rev()
        .find(|(_, v)| v.len() >= needed)?;
    Some(
        scored
            .into_iter()
            .map(|(trial, score)| (space.encode(&genomes[trial as usize]), -score))
            .collect(),
    )
}

/// Which bracket schedule, and where new candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Brackets {
    /// The same bracket again and again; half of each later bracket mutates the best trials.
    Halving,
    /// Hyperband's cycle of brackets; random candidates.
    Hyperband,
    /// Hyperband's cycle; candidates from TPE once a rung has ten scores.
    Bohb,
}

/// Bracket number `b`'s size and first-rung epochs under `schedule`.
fn bracket_shape(
    schedule: Brackets,
    b: usize,
    (bracket, eta, min_epochs): (usize, usize, usize),
) -> (usize, usize) {
    if schedule == Brackets::Halving {
        return (bracket, min_epochs);
    }
    let mut s_max = 0;
    while eta.pow(s_max + 1) <= bracket {
        s_max += 1;
    }
    let s = s_max - (b as u32 % (s_max + 1));
    let n = ((s_max as usize + 1) * eta.pow(s)).div_ceil(s as usize + 1);
    (n, min_epochs * eta.pow(s_max - s))
}

/// Successive halving in brackets; see [`Strategy::SuccessiveHalving`],
/// [`Strategy::Hyperband`] and [`Strategy::Bohb`].
fn search_halving(
    cfg: &SearchConfig,
    space: &SearchSpace,
    evaluator: &mut dyn Evaluator,
    ctx: &RunContext,
    rungs: (usize, usize, usize),
    schedule: Brackets,
) -> Result<SearchHistory> {
    let (_, eta, _) = rungs;
    let model = schedule == Brackets::Bohb;
    let tpe_space = space.tpe_space();
    let settings = crate::tpe::TpeSettings {
        startup_trials: 0,
        ..Default::default()
    };
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.derive_seed("search"));
    let defaults = space.defaults();
    let mut trials: Vec<TrialRecord> = Vec::new();
    let mut genomes: Vec<Genome> = Vec::new();
    ctx.progress
        .start("search", cfg.budget.max_trials.map(u64::from));

    // Trains trial `id` to `epochs` and folds the result into its record; true when it ended.
    let run = |evaluator: &mut dyn Evaluator,
               trials: &mut Vec<TrialRecord>,
               id: u32,
               epochs: usize|
     -> bool {
        let record = &mut trials[id as usize];
        let candidate = Candidate {
            architecture: record.architecture.clone(),
            hyperparams: record.hyperparams.clone(),
        };
        let t0 = Instant::now();
        let (outcome, finished) = evaluator.evaluate_partial(id, &candidate, epochs);
        let reached = match &outcome {
            TrialOutcome::Completed { epochs, .. } => *epochs,
            _ => epochs.min(record.hyperparams.max_epochs),
        };
        record.outcome = outcome;
        record.seconds += t0.elapsed().as_secs_f64();
        record.finished_at_secs = start.elapsed().as_secs_f64();
        let log = record
            .rungs
            .get_or_insert(autodl_artifacts::trial::RungLog {
                epochs: Vec::new(),
                scores: Vec::new(),
                why: String::new(),
            });
        log.epochs.push(reached);
        log.scores
            .push(record.outcome.score().filter(|s| s.is_finite()));
        finished || !record.outcome.score().is_some_and(f64::is_finite)
    };
    let set_why = |trials: &mut Vec<TrialRecord>, id: u32, why: String| {
        if let Some(log) = trials[id as usize].rungs.as_mut() {
            log.why = why;
        }
    };

    let mut brackets_run = 0;
    let stopped_because = 'search: loop {
        // A new bracket: defaults first, then random draws (or TPE's); successive halving's
        // later brackets mutate the best trials so far for half their members.
        let (size, min_epochs) = bracket_shape(schedule, brackets_run, rungs);
        brackets_run += 1;
        let mut ranked: Vec<(u32, f64)> = trials
            .iter()
            .filter_map(|t| t.outcome.score().map(|s| (t.trial, s)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut alive: Vec<u32> = Vec::new();
        // Set when the trial cap is reached: the bracket's trials still climb the rungs.
        let mut capped = None;
        for k in 0..size {
            if let Some(why) = budget_exhausted(cfg, ctx, start, None) {
                break 'search why;
            }
            if let Some(why) = budget_exhausted(cfg, ctx, start, Some(trials.len() as u32)) {
                capped = Some(why);
                break;
            }
            let n = trials.len();
            let observed = if model {
                rung_observations(space, &trials, &genomes, 10)
            } else {
                None
            };
            let (genome, proposed_by, parent, mutation) = if n < defaults.len() {
                (defaults[n].clone(), "default", None, None)
            } else if let Some(observed) = observed {
                let config = tpe_space.suggest(&observed, settings, &mut rng);
                (space.decode(&config), "tpe", None, None)
            } else if schedule != Brackets::Halving {
                (space.sample(&mut rng), "random", None, None)
            } else if k % 2 == 0 && !ranked.is_empty() {
                let top = ranked.len().min(3);
                let (parent, score) = *ranked[..top].choose(&mut rng).expect("non-empty");
                let (child, what) = space.mutate(&genomes[parent as usize], &mut rng);
                let why = format!(
                    "{what}; parent drawn from the {top} best trials so far (score {})",
                    score_text(score)
                );
                (child, "mutation", Some(parent), Some(why))
            } else {
                (space.sample(&mut rng), "random", None, None)
            };
            let architecture = space.render(&genome);
            check_dag(&architecture)?;
            let parameters = architecture.parameter_count().unwrap_or(0);
            let macs = architecture.inference_macs().unwrap_or(0);
            trials.push(TrialRecord {
                trial: n as u32,
                proposed_by: proposed_by.into(),
                parent,
                mutation,
                architecture,
                hyperparams: genome.hyperparams.clone(),
                parameters,
                macs,
                outcome: TrialOutcome::Failed {
                    reason: "not evaluated".into(),
                },
                seconds: 0.0,
                rungs: None,
                finished_at_secs: 0.0,
            });
            genomes.push(genome);
            let id = n as u32;
            if n < defaults.len() {
                // The conventional defaults are the baseline every strategy keeps: trained to
                // the end, not judged on a few epochs.
                run(evaluator, &mut trials, id, usize::MAX);
                set_why(
                    &mut trials,
                    id,
                    "a conventional default: trained to the end without rungs".into(),
                );
            } else if run(evaluator, &mut trials, id, min_epochs) {
                set_why(
                    &mut trials,
                    id,
                    format!("ended by itself within {min_epochs} epochs"),
                );
            } else {
                alive.push(id);
            }
            progress(ctx, &trials, id);
        }
        let mut epochs = min_epochs;
        while !alive.is_empty() {
            // Rank this rung's survivors; the best ⌈n/eta⌉ continue, the last one to the end.
            alive.sort_by(|&a, &b| {
                let s = |t: u32| {
                    trials[t as usize]
                        .outcome
                        .score()
                        .unwrap_or(f64::NEG_INFINITY)
                };
                s(b).total_cmp(&s(a))
            });
            let n = alive.len();
            let keep = if n == 1 { 1 } else { n.div_ceil(eta) };
            for (rank, &id) in alive.iter().enumerate().skip(keep) {
                set_why(
                    &mut trials,
                    id,
                    format!(
                        "stopped at {epochs} epochs: ranked {} of {n}; the best {keep} continued",
                        rank + 1
                    ),
                );
                evaluator.discard(id);
            }
            alive.truncate(keep);
            epochs = if n == 1 { usize::MAX } else { epochs * eta };
            let mut next = Vec::new();
            for (rank, &id) in alive.iter().enumerate() {
                if let Some(why) = budget_exhausted(cfg, ctx, start, None) {
                    for &left in &alive[rank..] {
                        set_why(
                            &mut trials,
                            left,
                            format!("promoted, but the search ended: {why}"),
                        );
                    }
                    break 'search why;
                }
                let promoted = format!("ranked {} of {n}, promoted", rank + 1);
                if run(evaluator, &mut trials, id, epochs) {
                    let reached = trials[id as usize]
                        .rungs
                        .as_ref()
                        .map_or(0, |r| *r.epochs.last().unwrap_or(&0));
                    set_why(
                        &mut trials,
                        id,
                        format!("{promoted}; training ended at {reached} epochs"),
                    );
                    evaluator.discard(id);
                } else {
                    set_why(&mut trials, id, promoted);
                    next.push(id);
                }
                progress(ctx, &trials, id);
            }
            alive = next;
        }
        if let Some(why) = capped {
            break why;
        }
    };
    Ok(finish(cfg, ctx, trials, stopped_because))
}

/// One progress line after trial `id` (with its epochs when it has fidelity rungs).
fn progress(ctx: &RunContext, trials: &[TrialRecord], id: u32) {
    let best = best_trial(trials).and_then(|b| trials[b as usize].outcome.score());
    let t = &trials[id as usize];
    let at = t
        .rungs
        .as_ref()
        .and_then(|r| r.epochs.last())
        .map_or(String::new(), |e| format!(" at {e} epochs"));
    ctx.progress.update(
        trials.len() as u64,
        &format!(
            "trial {id}{at}: {} · best score {}",
            describe(&t.outcome),
            best.map_or("-".into(), |b| format!("{b:.4}"))
        ),
    );
}

fn score_text(score: f64) -> String {
    if score.is_finite() {
        format!("{score:.4}")
    } else {
        "none".into()
    }
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
            objective: Objective::Score,
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
        // Every mutation says why its parent was chosen: a tournament of 3, or of 2 while
        // the population has only two members.
        assert!(
            a.trials
                .iter()
                .filter(|t| t.proposed_by == "mutation")
                .all(|t| {
                    let why = t.mutation.as_ref().unwrap();
                    why.contains("won a tournament of 3") || why.contains("won a tournament of 2")
                })
        );
        // While the population fills, odd trials are already mutations.
        assert_eq!(a.trials[3].proposed_by, "mutation");
        assert_eq!(a.trials[4].proposed_by, "random");
        let (done, diverged, failed) = a.counts();
        assert_eq!(done + diverged + failed, 40);
        let best = a.best().unwrap();
        assert!(a.trials.iter().all(
            |t| t.outcome.score().unwrap_or(f64::NEG_INFINITY) <= best.outcome.score().unwrap()
        ));
    }

    #[test]
    fn evolution_and_tpe_beat_random_on_a_known_objective() {
        // Mean best score over 10 seeds, 60 trials each.
        let mean_best = |s: &dyn Fn() -> Strategy| -> f64 {
            (0..10)
                .map(|seed| run(s(), seed, 60).best().unwrap().outcome.score().unwrap())
                .sum::<f64>()
                / 10.0
        };
        let evo = mean_best(&Strategy::default_evolution);
        let tpe = mean_best(&Strategy::default_tpe);
        let random = mean_best(&|| Strategy::Random);
        assert!(evo > random, "evolution {evo} vs random {random}");
        assert!(tpe > random, "TPE {tpe} vs random {random}");
    }

    #[test]
    fn time_budget_and_bad_config() {
        let cfg = SearchConfig {
            strategy: Strategy::Random,
            budget: Budget {
                max_trials: None,
                seconds: Some(0.0),
            },
            objective: Objective::Score,
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
        for strategy in [
            Strategy::RegularizedEvolution {
                population: 1,
                tournament: 3,
            },
            Strategy::SuccessiveHalving {
                bracket: 2,
                eta: 3,
                min_epochs: 1,
            },
        ] {
            let bad = SearchConfig {
                strategy,
                budget: Budget::trials(3),
                objective: Objective::Score,
            };
            let space = SearchSpace::for_data(3, 2);
            assert!(search(&bad, &space, &mut eval, &RunContext::new(0, ".")).is_err());
        }
    }

    #[test]
    fn tpe_starts_random_then_models_and_is_seeded() {
        let untimed = |mut h: SearchHistory| {
            for t in &mut h.trials {
                (t.seconds, t.finished_at_secs) = (0.0, 0.0);
            }
            h
        };
        let a = untimed(run(Strategy::default_tpe(), 2, 30));
        assert_eq!(a, untimed(run(Strategy::default_tpe(), 2, 30)));
        let by: Vec<&str> = a.trials.iter().map(|t| t.proposed_by.as_str()).collect();
        // One default (the MLP), random proposals up to the tenth, then the model.
        assert_eq!(by[0], "default");
        assert!(by[1..10].iter().all(|&b| b == "random"), "{by:?}");
        assert!(by[10..].iter().all(|&b| b == "tpe"), "{by:?}");
        // Distance of each Adam/AdamW trial's learning rate from 3e-3, in log units.
        let distances = |trials: &[TrialRecord]| -> Vec<f64> {
            trials
                .iter()
                .filter(|t| {
                    !matches!(
                        t.hyperparams.optimizer,
                        autodl_artifacts::trial::Optimizer::Sgd { .. }
                    )
                })
                .map(|t| (t.hyperparams.learning_rate / 3e-3).ln().abs())
                .collect()
        };
        // The model concentrates the learning rate near the objective's optimum (3e-3): over
        // ten seeds, the last ten of 30 trials are well closer to it than the random ones.
        let (mut late, mut early) = (Vec::new(), Vec::new());
        for seed in 0..10 {
            let h = run(Strategy::default_tpe(), seed, 30);
            early.extend(distances(&h.trials[1..10]));
            late.extend(distances(&h.trials[20..]));
        }
        let mean = |d: &[f64]| d.iter().sum::<f64>() / d.len() as f64;
        let (late, early) = (mean(&late), mean(&early));
        assert!(late < 0.7 * early, "late {late} early {early}");
    }

    /// An evaluator with a fidelity: the objective's score, approached as epochs grow
    /// (score − 1/epochs). It checks that every call continues a trial from where the last
    /// one stopped, and records discards.
    #[derive(Default)]
    struct Rising {
        reached: std::collections::BTreeMap<u32, usize>,
        discarded: Vec<u32>,
        calls: usize,
    }

    impl Evaluator for Rising {
        fn evaluate(&mut self, trial: u32, c: &Candidate) -> TrialOutcome {
            self.evaluate_partial(trial, c, usize::MAX).0
        }

        fn evaluate_partial(
            &mut self,
            trial: u32,
            c: &Candidate,
            epochs: usize,
        ) -> (TrialOutcome, bool) {
            self.calls += 1;
            assert!(
                !self.discarded.contains(&trial),
                "trial {trial} continued after discard"
            );
            let epochs = epochs.min(c.hyperparams.max_epochs);
            let before = self.reached.insert(trial, epochs).unwrap_or(0);
            assert!(
                epochs > before,
                "trial {trial}: {before} → {epochs} epochs is no continuation"
            );
            // Divergence is scored as very poor here, so that every candidate reaches a rung.
            let base = objective(trial, c).score().unwrap_or(-100.0);
            let score = base - 1.0 / epochs as f64;
            let outcome = TrialOutcome::Completed {
                valid_metric: MetricValue {
                    name: "score".into(),
                    value: score,
                },
                score,
                epochs,
                best_epoch: epochs,
            };
            (outcome, epochs == c.hyperparams.max_epochs)
        }

        fn discard(&mut self, trial: u32) {
            self.discarded.push(trial);
        }
    }

    /// A search over a 10-input, 3-class space with the [`Rising`] evaluator.
    fn run_rising(strategy: Strategy, trials: u32, seed: u64) -> (SearchHistory, Rising) {
        let cfg = SearchConfig {
            strategy,
            budget: Budget::trials(trials),
            objective: Objective::Score,
        };
        let mut eval = Rising::default();
        let space = SearchSpace::for_data(10, 3);
        let h = search(&cfg, &space, &mut eval, &RunContext::new(seed, ".")).unwrap();
        (h, eval)
    }

    #[test]
    fn successive_halving_promotes_the_best_third_and_continues_them() {
        let (h, eval) = run_rising(Strategy::default_halving(), 9, 4);
        assert_eq!(h.strategy, "successive_halving");
        assert_eq!(h.trials.len(), 9);
        let rungs = |t: &TrialRecord| t.rungs.as_ref().unwrap().epochs.clone();
        // The default (trial 0) trains to the end at once; the other eight start at 3 epochs,
        // the best three continue to 9, the best of those to 27, and that last one to its own
        // epoch cap.
        assert_eq!(
            rungs(&h.trials[0]),
            vec![h.trials[0].hyperparams.max_epochs]
        );
        let reached_9: Vec<&TrialRecord> =
            h.trials.iter().filter(|t| rungs(t).len() >= 2).collect();
        let finished: Vec<&TrialRecord> = h.trials.iter().filter(|t| rungs(t).len() == 4).collect();
        assert_eq!(
            reached_9.len(),
            3,
            "{:?}",
            h.trials.iter().map(rungs).collect::<Vec<_>>()
        );
        assert_eq!(finished.len(), 1);
        assert_eq!(
            rungs(finished[0]),
            vec![3, 9, 27, finished[0].hyperparams.max_epochs]
        );
        // The promoted were the best at 3 epochs, and the finalist the best of them at 9.
        let at3 = |t: &TrialRecord| {
            objective(
                t.trial,
                &Candidate {
                    architecture: t.architecture.clone(),
                    hyperparams: t.hyperparams.clone(),
                },
            )
            .score()
            .unwrap_or(f64::NEG_INFINITY)
        };
        let worst_promoted = reached_9
            .iter()
            .map(|t| at3(t))
            .fold(f64::INFINITY, f64::min);
        for t in h.trials[1..].iter().filter(|t| rungs(t).len() == 1) {
            assert!(
                at3(t) <= worst_promoted,
                "trial {} was better than a promoted one",
                t.trial
            );
            assert!(
                t.rungs
                    .as_ref()
                    .unwrap()
                    .why
                    .contains("stopped at 3 epochs"),
                "{:?}",
                t.rungs
            );
        }
        assert!(reached_9.iter().all(|t| at3(t) <= at3(finished[0])));
        // Eliminated trials were discarded; no trial was ever restarted (checked in Rising).
        assert_eq!(eval.discarded.len(), 8);
        assert_eq!(eval.calls, 1 + 8 + 3 + 1 + 1);
    }

    #[test]
    fn pareto_ranks_peel_fronts() {
        // (score, cost): a and b are the front; c is dominated by b only; d by everyone.
        let points = [(0.9, 10.0), (0.8, 5.0), (0.7, 6.0), (0.5, 20.0)];
        assert_eq!(pareto_ranks(&points), [0, 0, 1, 2]);
        assert_eq!(pareto_ranks(&[]), Vec::<usize>::new());
        assert_eq!(pareto_ranks(&[(1.0, 1.0), (1.0, 1.0)]), [0, 0]);
    }

    /// Two objectives find a better score–size front (larger hypervolume, log parameters) than
    /// the score alone, for evolution and for TPE; multi-fidelity strategies refuse them.
    #[test]
    fn two_objectives_find_a_better_front() {
        let run_with = |strategy: Strategy, goal: Objective, seed: u64| {
            let cfg = SearchConfig {
                strategy,
                budget: Budget::trials(60),
                objective: goal,
            };
            let mut eval = objective;
            search(
                &cfg,
                &SearchSpace::for_data(10, 3),
                &mut eval,
                &RunContext::new(seed, "."),
            )
            .unwrap()
        };
        // Hypervolume against score −10 and 2^20 parameters.
        let hypervolume = |h: &SearchHistory| -> f64 {
            let front = crate::analysis::pareto_front(h);
            let mut points: Vec<(f64, f64)> = front
                .iter()
                .map(|&t| {
                    let t = &h.trials[t as usize];
                    ((t.parameters as f64).log2(), t.outcome.score().unwrap())
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut hv = 0.0;
            for (k, &(cost, score)) in points.iter().enumerate() {
                let next = points.get(k + 1).map_or(20.0, |p| p.0);
                hv += (next - cost).max(0.0) * (score + 10.0).max(0.0);
            }
            hv
        };
        for strategy in [Strategy::default_evolution(), Strategy::default_tpe()] {
            let mean = |goal| {
                (0..16)
                    .map(|seed| hypervolume(&run_with(strategy.clone(), goal, seed)))
                    .sum::<f64>()
                    / 16.0
            };
            let one = mean(Objective::Score);
            let two = mean(Objective::ScoreAndParameters);
            eprintln!(
                "{}: mean hypervolume, two objectives {two:.2}, one {one:.2}",
                strategy.name()
            );
            assert!(
                two > one,
                "{}: two objectives {two} vs one {one}",
                strategy.name()
            );
        }
        let bad = SearchConfig {
            strategy: Strategy::default_bohb(),
            budget: Budget::trials(3),
            objective: Objective::ScoreAndMacs,
        };
        let err = search(
            &bad,
            &SearchSpace::for_data(3, 2),
            &mut objective,
            &RunContext::new(0, "."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("promotes by score alone"), "{err}");
    }

    #[test]
    fn hyperband_cycles_through_brackets_of_fewer_longer_first_rungs() {
        let shapes: Vec<(usize, usize)> = (0..4)
            .map(|b| bracket_shape(Brackets::Hyperband, b, (9, 3, 3)))
            .collect();
        assert_eq!(shapes, [(9, 3), (5, 9), (3, 27), (9, 3)]);
        assert_eq!(bracket_shape(Brackets::Halving, 1, (9, 3, 3)), (9, 3));
        let (h, _) = run_rising(Strategy::default_hyperband(), 17, 2);
        assert_eq!(h.strategy, "hyperband");
        let first: Vec<usize> = h
            .trials
            .iter()
            .map(|t| t.rungs.as_ref().unwrap().epochs[0])
            .collect();
        // Brackets of 9 at 3 epochs, 5 at 9, 3 at 27 (or less where a trial's own
        // max_epochs ends it sooner).
        // Trial 0 is the default, trained to the end without rungs.
        assert_eq!(first[0], h.trials[0].hyperparams.max_epochs);
        assert!(first[1..9].iter().all(|&e| e <= 3), "{first:?}");
        assert!(first[9..14].iter().all(|&e| e <= 9), "{first:?}");
        assert!(first[9..14].iter().any(|&e| e > 3), "{first:?}");
        assert!(first[14..].iter().any(|&e| e > 9), "{first:?}");
        assert!(h.trials.iter().all(|t| t.proposed_by != "mutation"));
    }

    #[test]
    fn bohb_proposes_from_tpe_once_a_rung_has_ten_scores() {
        let (h, _) = run_rising(Strategy::default_bohb(), 36, 6);
        assert_eq!(h.strategy, "bohb");
        assert_eq!(h.trials.len(), 36);
        let by: Vec<&str> = h.trials.iter().map(|t| t.proposed_by.as_str()).collect();
        // Hyperband's first cycle (9 at 3 epochs, 5 at 9, 3 at 27: 17 trials, the first being
        // the default, trained to the end at once) leaves 8 scores at 3 epochs and 8 at 9;
        // the next cycle's second member makes ten at 3 epochs, after which TPE proposes.
        assert!(by[..19].iter().all(|&b| b != "tpe"), "{by:?}");
        assert!(by[19..].iter().all(|&b| b == "tpe"), "{by:?}");
        for t in &h.trials {
            let r = t.rungs.as_ref().unwrap();
            assert_eq!(r.scores.len(), r.epochs.len());
            assert_eq!(*r.scores.last().unwrap(), t.outcome.score());
        }
    }

    /// A trial cap mid-bracket stops new candidates, but the bracket's trials still climb the
    /// rungs: its best is trained to the end.
    #[test]
    fn a_trial_cap_lets_the_started_bracket_finish() {
        let (h, _) = run_rising(Strategy::default_halving(), 5, 4);
        assert_eq!(h.trials.len(), 5);
        assert!(
            h.stopped_because.contains("trial budget"),
            "{}",
            h.stopped_because
        );
        let to_the_end = h.trials[1..]
            .iter()
            .filter(|t| {
                let r = t.rungs.as_ref().unwrap();
                r.epochs.last() == Some(&t.hyperparams.max_epochs)
            })
            .count();
        assert_eq!(
            to_the_end,
            1,
            "{:?}",
            h.trials.iter().map(|t| t.rungs.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn successive_halving_works_with_evaluators_without_fidelity() {
        // A plain closure trains fully on the first call: every trial ends at its first rung.
        let cfg = SearchConfig {
            strategy: Strategy::default_halving(),
            budget: Budget::trials(12),
            objective: Objective::Score,
        };
        let mut eval = objective;
        let h = search(
            &cfg,
            &SearchSpace::for_data(10, 3),
            &mut eval,
            &RunContext::new(1, "."),
        )
        .unwrap();
        assert_eq!(h.trials.len(), 12);
        let why = |t: &TrialRecord| t.rungs.as_ref().unwrap().why.clone();
        assert!(why(&h.trials[0]).contains("conventional default"));
        assert!(
            h.trials[1..]
                .iter()
                .all(|t| why(t).contains("ended by itself"))
        );
    }
}
