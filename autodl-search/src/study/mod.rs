//! Studies shared by many workers through Optuna's journal format.
//!
//! A study is an operation log ([`journal`]): a local JSON-lines file or a Redis server, in the
//! layouts Python Optuna's `JournalStorage` reads and writes. Any number of worker processes,
//! on one machine or many, open the same study and take trials from it: each claims a trial
//! (a waiting one first, else a new one from the sampler), evaluates it, reports intermediate
//! values (which the asynchronous successive-halving pruner compares across all workers), and
//! records the result. Python Optuna (`optuna.load_study`) sees the same trials, parameters
//! and values, and a study Python Optuna started is continued by autodl workers.
//!
//! What the log guarantees, and how:
//! - **Every trial exactly once.** Claiming is one [`Journal::append_if`] decision over the
//!   whole log (no other writer appends in between), so two workers never take the same
//!   waiting trial and the study's trial budget is never overshot.
//! - **A killed worker loses nothing complete.** Each decision is one append of whole lines;
//!   a trial whose worker died (same host: its process is gone; another host: no heartbeat for
//!   `stale_after`) is marked failed and a waiting copy with the same parameters is enqueued in
//!   the same append, so it is evaluated again and never twice.
//! - **The sampler's state survives.** Proposal `k` of the sampler uses a random stream seeded
//!   by the study's seed and `k` alone, and the history is the log itself; a resumed search
//!   makes exactly the proposals an uninterrupted one would have.

pub mod journal;
mod replay;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

pub use journal::{FileJournal, Journal, RedisJournal};
pub use replay::{Direction, Distribution, OpCode, Replay, StudyEntry, TrialEntry, TrialState};

use crate::tpe::{Config, ParamKind, TpeSettings, TpeSpace};
use crate::{Result, SearchError};

/// System attribute keys autodl writes (Optuna shows them; it ignores what they mean).
pub mod attrs {
    /// Study: the sampler and its seed.
    pub const SAMPLER: &str = "autodl:sampler";
    /// Study: the pruner.
    pub const PRUNER: &str = "autodl:pruner";
    /// Study: how many trials (not counting failed ones) the study runs.
    pub const N_TRIALS: &str = "autodl:n_trials";
    /// Trial: which worker process runs it (host, pid, process start, worker id, since).
    pub const WORKER: &str = "autodl:worker";
    /// Trial: unix seconds of the owner's last sign of life.
    pub const HEARTBEAT: &str = "autodl:heartbeat";
    /// Trial: which sampler proposal it is (a retry keeps its original's).
    pub const SAMPLE_INDEX: &str = "autodl:sample_index";
    /// Trial: why it failed.
    pub const FAIL_REASON: &str = "autodl:fail_reason";
    /// Trial: the number of the failed trial it repeats (Optuna's `RetryFailedTrialCallback`
    /// uses the same key).
    pub const RETRY_OF: &str = "failed_trial";
}

/// How new trials are proposed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Uniform over the space.
    Random,
    /// Tree-structured Parzen Estimator ([`crate::tpe`]).
    Tpe(TpeSettings),
}

/// Asynchronous successive halving (ASHA, Li et al. 2020) across all workers of a study: at
/// steps `min_step · eta^k` a trial continues only if its intermediate value is among the best
/// `max(1, ⌊n / eta⌋)` of the `n` trials of the study that reported at that step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Asha {
    /// First rung's step.
    pub min_step: i64,
    /// Reduction factor.
    pub eta: i64,
}

impl Asha {
    /// Whether `step` is a rung.
    pub fn is_rung(&self, step: i64) -> bool {
        let mut r = self.min_step.max(1);
        while r < step {
            r = r.saturating_mul(self.eta.max(2));
        }
        r == step
    }
}

/// What a study is, as its first worker creates it. Later workers use what the study records
/// (sampler, seed, pruner, budget), so all workers of a study agree.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    /// The study's name.
    pub name: String,
    /// Whether the objective is minimised or maximised.
    pub direction: Direction,
    /// How trials are proposed.
    pub sampler: Sampler,
    /// The sampler's seed.
    pub seed: u64,
    /// Early stopping across workers, if any.
    pub pruner: Option<Asha>,
    /// Trials the study runs, not counting failed ones (`None`: until stopped).
    pub n_trials: Option<usize>,
    /// A running trial from another host with no heartbeat for this long is taken to be dead.
    pub stale_after: Duration,
}

/// A trial taken by this worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Global trial id (for [`Study::report`] and [`Study::finish`]).
    pub id: usize,
    /// Number within the study.
    pub number: usize,
    /// The configuration to evaluate.
    pub config: Config,
    /// Whether it was waiting (enqueued, or a failed trial's retry) rather than new.
    pub was_waiting: bool,
}

/// How an evaluation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// A value (a non-finite one fails the trial, as in Optuna).
    Value(f64),
    /// Stopped by the pruner.
    Pruned,
    /// Failed, with the reason.
    Failed(String),
}

/// Something that evaluates configurations of a [`TpeSpace`] for a study.
pub trait StudyObjective {
    /// The space; its parameters become Optuna distributions ([`distribution_of`]).
    fn space(&self) -> &TpeSpace;

    /// Evaluates `config`. `report(step, value)` records an intermediate value and returns
    /// whether to go on (`false`: the pruner stops the trial; return [`Evaluation::Pruned`]).
    fn evaluate(
        &mut self,
        number: usize,
        config: &Config,
        report: &mut dyn FnMut(i64, f64) -> Result<bool>,
    ) -> Evaluation;
}

/// The Optuna distribution of one of our parameters. Categoricals' choices are their indices.
pub fn distribution_of(kind: &ParamKind) -> Distribution {
    match *kind {
        ParamKind::Float { low, high, log } => Distribution::Float {
            low,
            high,
            log,
            step: None,
        },
        ParamKind::Int { low, high } => Distribution::Int {
            low,
            high,
            log: false,
            step: 1,
        },
        ParamKind::Categorical { choices } => Distribution::Categorical {
            choices: (0..choices).map(|c| json!(c)).collect(),
        },
    }
}

/// Who this process is, for a trial's `autodl:worker` attribute.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    worker_id: String,
    host: String,
    pid: u32,
    /// The process's start time in clock ticks since boot (Linux), to tell a reused pid.
    start: Option<u64>,
}

fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-12-01T08:01:40.391548+00:00`, as Optuna writes times.
pub fn iso_utc(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = autodl_artifacts::transform::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn stream_seed(seed: u64, index: u64) -> u64 {
    // splitmix64 of the pair.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One worker's connection to a study.
pub struct Study {
    journal: Box<dyn Journal>,
    replay: Replay,
    core: Core,
    /// What the caller should be told ([`Study::take_notices`]); the heartbeat thread adds too.
    notices: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// What decisions read besides the log: who this worker is, the space, the settings.
struct Core {
    id: usize,
    me: Identity,
    space: TpeSpace,
    distributions: Vec<Distribution>,
    /// The settings the study records (which win over the opener's).
    settings: StudySettings,
}

/// What one claim attempt did.
enum Step {
    Claimed(Claimed),
    Reaped(Vec<usize>),
    Done,
}

fn settings_attrs(s: &StudySettings) -> Vec<(&'static str, Value)> {
    let sampler = match s.sampler {
        Sampler::Random => json!({"name": "random", "seed": s.seed}),
        Sampler::Tpe(t) => json!({"name": "tpe", "seed": s.seed,
            "startup_trials": t.startup_trials, "ei_candidates": t.ei_candidates}),
    };
    let pruner = match s.pruner {
        None => Value::Null,
        Some(a) => json!({"name": "asha", "min_step": a.min_step, "eta": a.eta}),
    };
    vec![
        (attrs::SAMPLER, sampler),
        (attrs::PRUNER, pruner),
        (attrs::N_TRIALS, json!(s.n_trials)),
    ]
}

fn settings_from(study: &StudyEntry, mut s: StudySettings) -> StudySettings {
    let a = &study.system_attrs;
    if let Some(v) = a.get(attrs::SAMPLER) {
        s.seed = v["seed"].as_u64().unwrap_or(s.seed);
        s.sampler = match v["name"].as_str() {
            Some("random") => Sampler::Random,
            Some("tpe") => Sampler::Tpe(TpeSettings {
                startup_trials: v["startup_trials"].as_u64().unwrap_or(10) as usize,
                ei_candidates: v["ei_candidates"].as_u64().unwrap_or(48) as usize,
            }),
            _ => s.sampler,
        };
    }
    if let Some(v) = a.get(attrs::PRUNER) {
        s.pruner = match (v["min_step"].as_i64(), v["eta"].as_i64()) {
            (Some(min_step), Some(eta)) => Some(Asha { min_step, eta }),
            _ => None,
        };
    }
    if let Some(v) = a.get(attrs::N_TRIALS) {
        s.n_trials = v.as_u64().map(|n| n as usize);
    }
    s.direction = study.directions.first().copied().unwrap_or(s.direction);
    s
}

fn set_study_attrs(me: &str, s: &StudyEntry, wanted: &StudySettings) -> Vec<Value> {
    settings_attrs(wanted)
        .into_iter()
        .filter(|(k, _)| !s.system_attrs.contains_key(*k))
        .map(|(k, v)| {
            json!({"op_code": OpCode::SetStudySystemAttr as u8, "worker_id": me,
                "study_id": s.id, "system_attr": {k: v}})
        })
        .collect()
}

impl Core {
    fn config_of(&self, t: &TrialEntry) -> Config {
        self.space
            .params
            .iter()
            .map(|p| t.params.get(&p.name).copied())
            .collect()
    }

    /// A waiting trial's given parameters: its own, and those Python's `enqueue_trial` puts
    /// in the `fixed_params` system attribute (in their external form: a categorical's choice).
    fn waiting_config(&self, t: &TrialEntry) -> Config {
        let fixed = t
            .system_attrs
            .get("fixed_params")
            .and_then(Value::as_object);
        let params = self.space.params.iter().zip(&self.distributions);
        params
            .map(|(p, d)| {
                t.params.get(&p.name).copied().or_else(|| {
                    let v = fixed?.get(&p.name)?;
                    match d {
                        Distribution::Categorical { choices } => {
                            choices.iter().position(|c| c == v).map(|i| i as f64)
                        }
                        _ => v.as_f64(),
                    }
                })
            })
            .collect()
    }

    fn params_of(&self, config: &Config) -> (Map<String, Value>, Map<String, Value>) {
        let mut params = Map::new();
        let mut dists = Map::new();
        for ((p, d), v) in self
            .space
            .params
            .iter()
            .zip(&self.distributions)
            .zip(config)
        {
            if let Some(v) = v {
                params.insert(p.name.clone(), json!(v));
                dists.insert(p.name.clone(), json!(d.to_json()));
            }
        }
        (params, dists)
    }

    fn worker_attr(&self) -> Value {
        json!({"host": self.me.host, "pid": self.me.pid, "start": self.me.start,
            "worker_id": self.me.worker_id, "since": unix_now()})
    }

    /// Why running trial `t`'s worker is taken to be gone, if it is.
    fn owner_is_gone(&self, t: &TrialEntry, now: f64) -> Option<String> {
        let w = t.system_attrs.get(attrs::WORKER)?;
        let host = w["host"].as_str().unwrap_or("");
        let pid = w["pid"].as_u64().unwrap_or(0) as u32;
        if w["worker_id"].as_str() == Some(self.me.worker_id.as_str()) {
            return None;
        }
        if host == self.me.host && self.me.start.is_some() {
            let alive =
                process_start(pid).is_some_and(|s| w["start"].as_u64().is_none_or(|w| w == s));
            return (!alive).then(|| format!("its worker (pid {pid} on {host}) is gone"));
        }
        let last = t
            .system_attrs
            .get(attrs::HEARTBEAT)
            .and_then(Value::as_f64)
            .or(w["since"].as_f64())
            .unwrap_or(now);
        let quiet = now - last;
        (quiet > self.settings.stale_after.as_secs_f64())
            .then(|| format!("no heartbeat from its worker ({host}, pid {pid}) for {quiet:.0} s"))
    }

    /// The sampler's history: configurations and losses of finished trials, in number order.
    fn history(&self, replay: &Replay) -> Vec<(Config, f64)> {
        let dir = self.settings.direction;
        replay
            .trials_of(self.id)
            .filter_map(|t| match t.state {
                TrialState::Complete => {
                    let v = t.values.as_ref()?.first().copied()?;
                    Some((self.config_of(t), dir.loss(v)))
                }
                // Pruned trials rank below every complete one.
                TrialState::Pruned => Some((self.config_of(t), f64::INFINITY)),
                _ => None,
            })
            .collect()
    }

    /// Proposal number `index`: its random stream depends on the seed and `index` only.
    fn propose(&self, replay: &Replay, index: u64) -> Config {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(self.settings.seed, index));
        match self.settings.sampler {
            Sampler::Random => self.space.sample_random(&mut rng),
            Sampler::Tpe(s) => self.space.suggest(&self.history(replay), s, &mut rng),
        }
    }

    /// Fills a waiting trial's missing parameters (Python's `enqueue_trial` may give some).
    fn complete_config(&self, replay: &Replay, partial: &Config, index: u64) -> Config {
        let proposal = self.propose(replay, index);
        let mut config: Config = Vec::with_capacity(partial.len());
        for (i, (given, p)) in partial.iter().zip(&proposal).enumerate() {
            let active = match &self.space.params[i].active_when {
                None => true,
                Some((parent, allowed)) => config
                    .get(*parent)
                    .copied()
                    .flatten()
                    .is_some_and(|v: f64| allowed.contains(&(v as usize))),
            };
            config.push(if active { given.or(*p) } else { None });
        }
        config
    }

    fn next_sample_index(&self, replay: &Replay) -> u64 {
        replay
            .trials_of(self.id)
            .filter_map(|t| t.system_attrs.get(attrs::SAMPLE_INDEX)?.as_u64())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    /// Whether a configuration has every parameter its conditions make active.
    fn is_complete(&self, config: &Config) -> bool {
        self.space.params.iter().enumerate().all(|(i, p)| {
            let active = match &p.active_when {
                None => true,
                Some((parent, allowed)) => {
                    config[*parent].is_some_and(|v| allowed.contains(&(v as usize)))
                }
            };
            !active || config[i].is_some()
        })
    }

    /// One claim decision over the log's latest state.
    fn decide_claim(&self, replay: &Replay, me: &str) -> Result<(Vec<Value>, Step)> {
        let sid = self.id;
        let now = unix_now();
        let time = iso_utc(SystemTime::now());
        let trials: Vec<&TrialEntry> = replay.trials_of(sid).collect();
        // 1. Trials of dead workers: failed, and a waiting copy enqueued, in one append.
        let mut ops = Vec::new();
        let mut reaped = Vec::new();
        for t in trials.iter().filter(|t| t.state == TrialState::Running) {
            let Some(why) = self.owner_is_gone(t, now) else {
                continue;
            };
            reaped.push(t.number);
            ops.push(
                json!({"op_code": OpCode::SetTrialSystemAttr as u8, "worker_id": me,
                "trial_id": t.id, "system_attr": {attrs::FAIL_REASON: why}}),
            );
            ops.push(
                json!({"op_code": OpCode::SetTrialStateValues as u8, "worker_id": me,
                "trial_id": t.id, "state": TrialState::Fail as u8, "values": null,
                "datetime_complete": time}),
            );
            if !t.params.is_empty() {
                let mut system = Map::new();
                system.insert(attrs::RETRY_OF.into(), json!(t.number));
                if let Some(i) = t.system_attrs.get(attrs::SAMPLE_INDEX) {
                    system.insert(attrs::SAMPLE_INDEX.into(), i.clone());
                }
                let dists: Map<String, Value> = t
                    .distributions
                    .iter()
                    .map(|(k, d)| (k.clone(), json!(d.to_json())))
                    .collect();
                ops.push(
                    json!({"op_code": OpCode::CreateTrial as u8, "worker_id": me,
                    "study_id": sid, "datetime_start": null, "state": TrialState::Waiting as u8,
                    "value": null, "values": null, "params": t.params, "distributions": dists,
                    "user_attrs": t.user_attrs, "system_attrs": system,
                    "intermediate_values": {}}),
                );
            }
        }
        if !ops.is_empty() {
            return Ok((ops, Step::Reaped(reaped)));
        }
        // 2. A waiting trial (enqueued, or a retry).
        if let Some(t) = trials.iter().find(|t| t.state == TrialState::Waiting) {
            let partial = self.waiting_config(t);
            let config = if self.is_complete(&partial) {
                partial.clone()
            } else {
                let index = t
                    .system_attrs
                    .get(attrs::SAMPLE_INDEX)
                    .and_then(Value::as_u64);
                let index = index.unwrap_or_else(|| self.next_sample_index(replay));
                self.complete_config(replay, &partial, index)
            };
            let mut ops = vec![
                json!({"op_code": OpCode::SetTrialStateValues as u8, "worker_id": me,
                    "trial_id": t.id, "state": TrialState::Running as u8, "values": null,
                    "datetime_start": time}),
                json!({"op_code": OpCode::SetTrialSystemAttr as u8, "worker_id": me,
                    "trial_id": t.id, "system_attr": {attrs::WORKER: self.worker_attr()}}),
            ];
            let params = self.space.params.iter().zip(&self.distributions);
            for (i, (p, d)) in params.enumerate() {
                if let (None, Some(v)) = (t.params.get(&p.name), config[i]) {
                    ops.push(
                        json!({"op_code": OpCode::SetTrialParam as u8, "worker_id": me,
                        "trial_id": t.id, "param_name": p.name, "param_value_internal": v,
                        "distribution": d.to_json()}),
                    );
                }
            }
            let claimed = Claimed {
                id: t.id,
                number: t.number,
                config,
                was_waiting: true,
            };
            return Ok((ops, Step::Claimed(claimed)));
        }
        // 3. The budget.
        let counted = trials
            .iter()
            .filter(|t| t.state != TrialState::Fail)
            .count();
        if self.settings.n_trials.is_some_and(|n| counted >= n) {
            return Ok((Vec::new(), Step::Done));
        }
        // 4. A new proposal, created with its parameters in one operation.
        let index = self.next_sample_index(replay);
        let config = self.propose(replay, index);
        let (params, dists) = self.params_of(&config);
        let op = json!({"op_code": OpCode::CreateTrial as u8, "worker_id": me,
            "study_id": sid, "datetime_start": time, "state": TrialState::Running as u8,
            "value": null, "values": null, "params": params, "distributions": dists,
            "user_attrs": {}, "intermediate_values": {},
            "system_attrs": {attrs::WORKER: self.worker_attr(), attrs::SAMPLE_INDEX: index}});
        let claimed = Claimed {
            id: replay.trials.len(),
            number: trials.len(),
            config,
            was_waiting: false,
        };
        Ok((vec![op], Step::Claimed(claimed)))
    }
}

impl Study {
    /// Opens study `settings.name` in `journal`, creating it when missing. A study that exists
    /// keeps what it records: its direction, sampler, seed, pruner and budget (see
    /// [`Study::settings`]). Fails when the study has several objectives, or when its trials'
    /// parameters do not fit `space`.
    pub fn open(
        journal: Box<dyn Journal>,
        settings: StudySettings,
        space: TpeSpace,
    ) -> Result<Self> {
        let host = host_name();
        let pid = std::process::id();
        let tag = stream_seed(unix_now().to_bits(), u64::from(pid));
        let me = Identity {
            worker_id: format!("autodl-{host}-{pid}-{tag:016x}"),
            host,
            pid,
            start: process_start(pid),
        };
        let distributions = space
            .params
            .iter()
            .map(|p| distribution_of(&p.kind))
            .collect();
        let mut study = Study {
            journal,
            replay: Replay::default(),
            core: Core {
                id: 0,
                me,
                space,
                distributions,
                settings,
            },
            notices: Default::default(),
        };
        let name = study.core.settings.name.clone();
        // Create it unless it exists, then (its id known) record the settings it does not
        // record yet.
        study.transact(|core, replay, me| {
            let s = &core.settings;
            let create = replay.study_by_name(&s.name).is_none().then(|| {
                json!({"op_code": OpCode::CreateStudy as u8, "worker_id": me,
                    "study_name": s.name, "directions": [s.direction as u8]})
            });
            Ok((create.into_iter().collect(), ()))
        })?;
        study.transact(|core, replay, me| {
            let entry = replay.study_by_name(&core.settings.name).ok_or_else(|| {
                SearchError::Storage(format!(
                    "study {} was deleted while opening it",
                    core.settings.name
                ))
            })?;
            Ok((set_study_attrs(me, entry, &core.settings), ()))
        })?;
        let entry = study
            .replay
            .study_by_name(&name)
            .ok_or_else(|| SearchError::Storage(format!("study {name} vanished")))?
            .clone();
        if entry.directions.len() != 1 {
            return Err(SearchError::Config(format!(
                "study {name} has {} objectives; autodl workers optimise one",
                entry.directions.len()
            )));
        }
        study.core.id = entry.id;
        study.core.settings = settings_from(&entry, study.core.settings.clone());
        study.check_space()?;
        Ok(study)
    }

    /// The settings in force (the study's own, where it records them).
    pub fn settings(&self) -> &StudySettings {
        &self.core.settings
    }

    /// The study's trials, in number order, as of the last read.
    pub fn trials(&self) -> Vec<&TrialEntry> {
        self.replay.trials_of(self.core.id).collect()
    }

    /// The whole log's state, as of the last read.
    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// Reads what other workers appended.
    pub fn sync(&mut self) -> Result<()> {
        let ops = self.journal.read(self.replay.ops_read)?;
        self.replay.apply_all(&ops)
    }

    /// This worker's id in the log.
    pub fn worker_id(&self) -> &str {
        &self.core.me.worker_id
    }

    /// Where the log is.
    pub fn describe(&self) -> String {
        self.journal.describe()
    }

    /// One atomic decision: `decide` sees the log's latest state and returns the operations to
    /// append and a result.
    fn transact<T>(
        &mut self,
        mut decide: impl FnMut(&Core, &Replay, &str) -> Result<(Vec<Value>, T)>,
    ) -> Result<T> {
        let Study {
            journal,
            replay,
            core,
            ..
        } = self;
        let me = core.me.worker_id.as_str();
        let mut out = None;
        journal.append_if(replay.ops_read, &mut |ops| {
            replay.apply_all(&ops)?;
            let (new, t) = decide(core, replay, me)?;
            out = Some(t);
            Ok(new)
        })?;
        // Read back our own operations (and anything after them).
        let ops = journal.read(replay.ops_read)?;
        replay.apply_all(&ops)?;
        out.ok_or_else(|| SearchError::Storage("the journal made no decision".into()))
    }

    /// Fails when a trial's parameter has a distribution that does not fit this worker's space.
    fn check_space(&self) -> Result<()> {
        let core = &self.core;
        let ours: BTreeMap<&str, &Distribution> = core
            .space
            .params
            .iter()
            .map(|p| p.name.as_str())
            .zip(&core.distributions)
            .collect();
        let name = &core.settings.name;
        for t in self.replay.trials_of(core.id) {
            for (param, d) in &t.distributions {
                match ours.get(param.as_str()) {
                    None => {
                        return Err(SearchError::Config(format!(
                            "study {name}: trial {} has parameter `{param}`, which this \
                             objective does not have (its parameters: {})",
                            t.number,
                            ours.keys().copied().collect::<Vec<_>>().join(", ")
                        )));
                    }
                    Some(o) if !o.compatible(d) => {
                        return Err(SearchError::Config(format!(
                            "study {name}: trial {} has `{param}` as {}, this objective as {}",
                            t.number,
                            d.to_json(),
                            o.to_json()
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Takes the next trial: a waiting one, else a new proposal. Fails the trials of dead
    /// workers on the way (and enqueues their retries). `None` when the study's budget is
    /// spent.
    pub fn claim(&mut self) -> Result<Option<Claimed>> {
        loop {
            let step = self.transact(|core, replay, me| core.decide_claim(replay, me))?;
            match step {
                Step::Claimed(c) => {
                    let owner = self
                        .replay
                        .trials
                        .get(c.id)
                        .and_then(|t| t.owner.as_deref());
                    if owner != Some(self.core.me.worker_id.as_str()) {
                        return Err(SearchError::Storage(format!(
                            "{}: trial id {} should be this worker's after claiming it; the \
                             journal was changed by a writer that does not take its lock",
                            self.describe(),
                            c.id
                        )));
                    }
                    return Ok(Some(c));
                }
                Step::Done => return Ok(None),
                Step::Reaped(numbers) => self.notice(format!(
                    "study {}: trial(s) {numbers:?} failed (their worker is gone); enqueued again",
                    self.core.settings.name
                )),
            }
        }
    }

    fn notice(&self, text: String) {
        self.notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text);
    }

    /// What happened that the caller should show: trials of dead workers failed and
    /// enqueued again, a journal repaired after a killed writer, heartbeat errors.
    pub fn take_notices(&mut self) -> Vec<String> {
        let mut all = self.journal.take_notices();
        all.append(
            &mut self
                .notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        all
    }

    /// Records an intermediate value; returns whether the trial goes on (the pruner's verdict,
    /// over every worker's trials).
    pub fn report(&mut self, trial: usize, step: i64, value: f64) -> Result<bool> {
        let op = json!({"op_code": OpCode::SetTrialIntermediateValue as u8,
            "worker_id": self.core.me.worker_id, "trial_id": trial, "step": step,
            "intermediate_value": if value.is_finite() { json!(value) } else { Value::Null }});
        self.transact(|_, _, _| Ok((vec![op.clone()], ())))?;
        let Some(asha) = self.core.settings.pruner else {
            return Ok(true);
        };
        if !asha.is_rung(step) || !value.is_finite() {
            return Ok(true);
        }
        let dir = self.core.settings.direction;
        let mine = dir.loss(value);
        let at_rung: Vec<f64> = self
            .replay
            .trials_of(self.core.id)
            .filter(|t| t.state != TrialState::Fail)
            .filter_map(|t| t.intermediate.get(&step).copied())
            .filter(|v| v.is_finite())
            .map(|v| dir.loss(v))
            .collect();
        let keep = (at_rung.len() as i64 / asha.eta.max(2)).max(1) as usize;
        let better = at_rung.iter().filter(|&&l| l < mine).count();
        Ok(better < keep)
    }

    /// Records how trial `trial` ended. Returns `false` when the trial is no longer this
    /// worker's (another worker failed it, believing this one dead): the result is dropped.
    pub fn finish(&mut self, trial: usize, evaluation: &Evaluation) -> Result<bool> {
        let time = iso_utc(SystemTime::now());
        self.transact(|_, replay, me| {
            let Some(t) = replay
                .trials
                .get(trial)
                .filter(|t| t.state == TrialState::Running && t.owner.as_deref() == Some(me))
            else {
                return Ok((Vec::new(), false));
            };
            let state_op = |state: TrialState, values: Value| {
                json!({"op_code": OpCode::SetTrialStateValues as u8, "worker_id": me,
                    "trial_id": trial, "state": state as u8, "values": values,
                    "datetime_complete": time})
            };
            let fail = |why: &str| {
                vec![
                    json!({"op_code": OpCode::SetTrialSystemAttr as u8, "worker_id": me,
                        "trial_id": trial, "system_attr": {attrs::FAIL_REASON: why}}),
                    state_op(TrialState::Fail, Value::Null),
                ]
            };
            let ops = match evaluation {
                Evaluation::Value(v) if v.is_finite() => {
                    vec![state_op(TrialState::Complete, json!([v]))]
                }
                Evaluation::Value(v) => fail(&format!("the objective returned {v}")),
                Evaluation::Pruned => {
                    let last = t.intermediate.values().next_back().copied();
                    let values = last
                        .filter(|v| v.is_finite())
                        .map_or(Value::Null, |v| json!([v]));
                    vec![state_op(TrialState::Pruned, values)]
                }
                Evaluation::Failed(why) => fail(why),
            };
            Ok((ops, true))
        })
    }

    /// A heartbeat writer for trial `trial` on a second connection: it appends the
    /// `autodl:heartbeat` attribute every `every` until dropped.
    pub fn heartbeat(&self, trial: usize, every: Duration) -> Result<Heartbeat> {
        let mut journal = self.journal.reopen()?;
        let me = self.core.me.worker_id.clone();
        let mut read = self.replay.ops_read;
        let notices = self.notices.clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                let op = json!({"op_code": OpCode::SetTrialSystemAttr as u8, "worker_id": me,
                    "trial_id": trial, "system_attr": {attrs::HEARTBEAT: unix_now()}});
                let result = journal.append_if(read, &mut |ops| {
                    read += ops.len();
                    Ok(vec![op.clone()])
                });
                let mut sink = notices
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                sink.extend(journal.take_notices());
                if let Err(e) = result {
                    sink.push(format!("heartbeat for trial id {trial}: {e}"));
                }
            }
        });
        Ok(Heartbeat {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

/// Stops its heartbeat thread when dropped.
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Limits of one worker's run (the study's own budget, `n_trials`, applies in any case).
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Heartbeat interval while a trial runs (`None`: none; other hosts then cannot tell this
    /// worker from a dead one after `stale_after`).
    pub heartbeat: Option<Duration>,
    /// Trials this worker takes at most.
    pub max_trials: Option<usize>,
    /// No new trial is taken after this.
    pub deadline: Option<Instant>,
}

/// What one worker did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WorkerSummary {
    /// Trials it completed.
    pub complete: usize,
    /// Trials the pruner stopped.
    pub pruned: usize,
    /// Trials that failed.
    pub failed: usize,
    /// Results dropped because another worker had failed the trial meanwhile.
    pub dropped: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Takes trials from `study` and evaluates them with `objective` until the study's budget is
/// spent or a limit in `options` is reached. `on_trial` sees each trial as it ends,
/// `on_notice` each of the study's notices ([`Study::take_notices`]) as it comes.
pub fn run_worker(
    study: &mut Study,
    objective: &mut dyn StudyObjective,
    options: &WorkerOptions,
    on_trial: &mut dyn FnMut(&Claimed, &Evaluation, &Study),
    on_notice: &mut dyn FnMut(&str),
) -> Result<WorkerSummary> {
    let started = Instant::now();
    let mut summary = WorkerSummary::default();
    let mut taken = 0;
    loop {
        if options.max_trials.is_some_and(|m| taken >= m)
            || options.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let claimed = study.claim()?;
        study.take_notices().iter().for_each(|n| on_notice(n));
        let Some(claimed) = claimed else {
            break;
        };
        taken += 1;
        let beat = match options.heartbeat {
            Some(every) => Some(study.heartbeat(claimed.id, every)?),
            None => None,
        };
        let mut report_error = None;
        let evaluation = objective.evaluate(claimed.number, &claimed.config, &mut |step, v| {
            study.report(claimed.id, step, v).inspect_err(|e| {
                report_error = Some(e.to_string());
            })
        });
        drop(beat);
        if let Some(e) = report_error {
            return Err(SearchError::Storage(e));
        }
        if study.finish(claimed.id, &evaluation)? {
            match evaluation {
                Evaluation::Value(v) if v.is_finite() => summary.complete += 1,
                Evaluation::Pruned => summary.pruned += 1,
                _ => summary.failed += 1,
            }
        } else {
            summary.dropped += 1;
        }
        study.take_notices().iter().for_each(|n| on_notice(n));
        on_trial(&claimed, &evaluation, study);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpe::testfns;

    fn settings(name: &str, sampler: Sampler, n: usize) -> StudySettings {
        StudySettings {
            name: name.into(),
            direction: Direction::Minimize,
            sampler,
            seed: 7,
            pruner: None,
            n_trials: Some(n),
            stale_after: Duration::from_secs(60),
        }
    }

    struct Branin;
    impl StudyObjective for Branin {
        fn space(&self) -> &TpeSpace {
            static SPACE: std::sync::OnceLock<TpeSpace> = std::sync::OnceLock::new();
            SPACE.get_or_init(testfns::branin_space)
        }
        fn evaluate(
            &mut self,
            _: usize,
            config: &Config,
            _: &mut dyn FnMut(i64, f64) -> Result<bool>,
        ) -> Evaluation {
            Evaluation::Value(testfns::branin(config))
        }
    }

    fn temp_log(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("autodl-study-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("journal.log")
    }

    fn run(path: &std::path::Path, sampler: Sampler, n: usize, max: Option<usize>) -> Study {
        let journal = journal::open(path.to_str().unwrap()).unwrap();
        let mut study =
            Study::open(journal, settings("s", sampler, n), testfns::branin_space()).unwrap();
        let opts = WorkerOptions {
            max_trials: max,
            ..Default::default()
        };
        run_worker(
            &mut study,
            &mut Branin,
            &opts,
            &mut |_, _, _| {},
            &mut |_| {},
        )
        .unwrap();
        study
    }

    fn outcomes(study: &Study) -> Vec<(u64, Config, Option<Vec<f64>>)> {
        let core = &study.core;
        study
            .trials()
            .into_iter()
            .filter(|t| t.state == TrialState::Complete)
            .map(|t| {
                let i = t.system_attrs[attrs::SAMPLE_INDEX].as_u64().unwrap();
                (i, core.config_of(t), t.values.clone())
            })
            .collect()
    }

    #[test]
    fn a_study_stops_at_its_budget_and_a_second_run_continues_it_identically() {
        let tpe = Sampler::Tpe(TpeSettings::default());
        let whole = run(&temp_log("whole"), tpe, 25, None);
        assert_eq!(whole.trials().len(), 25);
        // The same study in three sittings, the settings coming from the log after the first.
        let path = temp_log("parts");
        run(&path, tpe, 25, Some(8));
        run(&path, Sampler::Random, 3, Some(9));
        let parts = run(&path, Sampler::Random, 3, None);
        assert_eq!(parts.settings().n_trials, Some(25));
        assert_eq!(outcomes(&parts), outcomes(&whole));
    }

    #[test]
    fn a_running_trial_of_a_dead_process_is_failed_and_retried_once() {
        let path = temp_log("dead");
        let mut study = run(&path, Sampler::Random, 5, Some(2));
        let claimed = study.claim().unwrap().unwrap();
        // Pretend its owner was another process that has exited (pid 0 never runs a worker
        // here: /proc/0 does not exist).
        let op = json!({"op_code": 9, "worker_id": "x", "trial_id": claimed.id,
            "system_attr": {attrs::WORKER: {"host": study.core.me.host, "pid": 0, "start": 1,
                "worker_id": "gone", "since": 0.0}}});
        study
            .transact(|_, _, _| Ok((vec![op.clone()], ())))
            .unwrap();
        let mut other = Study::open(
            journal::open(path.to_str().unwrap()).unwrap(),
            settings("s", Sampler::Random, 5),
            testfns::branin_space(),
        )
        .unwrap();
        let mut notices = Vec::new();
        run_worker(
            &mut other,
            &mut Branin,
            &WorkerOptions::default(),
            &mut |_, _, _| {},
            &mut |n| notices.push(n.to_string()),
        )
        .unwrap();
        assert!(
            notices.len() == 1 && notices[0].contains(&format!("[{}] failed", claimed.number)),
            "{notices:?}"
        );
        let trials = other.trials();
        assert_eq!(trials[claimed.number].state, TrialState::Fail);
        let retries: Vec<_> = trials
            .iter()
            .filter(|t| t.system_attrs.get(attrs::RETRY_OF) == Some(&json!(claimed.number)))
            .collect();
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0].params, trials[claimed.number].params);
        assert_eq!(retries[0].state, TrialState::Complete);
        let counted = trials
            .iter()
            .filter(|t| t.state != TrialState::Fail)
            .count();
        assert_eq!(counted, 5);
        // The original owner's late result is dropped, not recorded.
        assert!(!study.finish(claimed.id, &Evaluation::Value(1.0)).unwrap());
    }

    #[test]
    fn a_worker_on_another_host_is_dead_only_once_its_heartbeat_is_stale() {
        let path = temp_log("remote");
        let mut study = run(&path, Sampler::Random, 6, Some(1));
        let a = study.claim().unwrap().unwrap();
        let b = study.claim().unwrap().unwrap();
        let now = unix_now();
        // Trial a: a worker elsewhere that beat 10 s ago; trial b: one silent for 10 minutes.
        for (trial, beat) in [(a.id, now - 10.0), (b.id, now - 600.0)] {
            let ops = vec![
                json!({"op_code": 9, "worker_id": "x", "trial_id": trial,
                    "system_attr": {attrs::WORKER: {"host": "another-host", "pid": 1,
                        "start": 1, "worker_id": format!("far-{trial}"), "since": now - 900.0}}}),
                json!({"op_code": 9, "worker_id": "x", "trial_id": trial,
                    "system_attr": {attrs::HEARTBEAT: beat}}),
            ];
            study.transact(|_, _, _| Ok((ops.clone(), ()))).unwrap();
        }
        let mut other = Study::open(
            journal::open(path.to_str().unwrap()).unwrap(),
            settings("s", Sampler::Random, 6),
            testfns::branin_space(),
        )
        .unwrap();
        assert_eq!(other.settings().stale_after, Duration::from_secs(60));
        let next = other.claim().unwrap().unwrap();
        let trials = other.trials();
        assert_eq!(
            trials[a.number].state,
            TrialState::Running,
            "a fresh heartbeat"
        );
        assert_eq!(trials[b.number].state, TrialState::Fail, "a stale one");
        assert!(
            trials[b.number].system_attrs[attrs::FAIL_REASON]
                .as_str()
                .unwrap()
                .contains("no heartbeat")
        );
        // The retry of b is what the claim took.
        assert_eq!(
            trials[next.number].system_attrs[attrs::RETRY_OF],
            json!(b.number)
        );
        assert_eq!(next.config, b.config);
    }

    #[test]
    fn asha_rungs() {
        let a = Asha {
            min_step: 1,
            eta: 3,
        };
        let rungs: Vec<i64> = (1..=30).filter(|&s| a.is_rung(s)).collect();
        assert_eq!(rungs, vec![1, 3, 9, 27]);
    }

    #[test]
    fn iso_times_match_pythons_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_576_100_391_548);
        assert_eq!(iso_utc(t), "2025-12-01T08:01:40.391548+00:00");
    }
}
