//! Optuna's journal operations and their replay into studies and trials, rule for rule as
//! `optuna.storages.journal.JournalStorageReplayResult` applies them: an operation that names a
//! missing study or trial, or updates a finished trial, is ignored; trial ids count trials of
//! all studies, trial numbers count within a study.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{Result, SearchError};

/// Optuna's `JournalOperation` codes.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    CreateStudy = 0,
    DeleteStudy = 1,
    SetStudyUserAttr = 2,
    SetStudySystemAttr = 3,
    CreateTrial = 4,
    SetTrialParam = 5,
    SetTrialStateValues = 6,
    SetTrialIntermediateValue = 7,
    SetTrialUserAttr = 8,
    SetTrialSystemAttr = 9,
    DiscardTrials = 10,
}

/// Optuna's `TrialState`, with its numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TrialState {
    /// Being evaluated.
    Running = 0,
    /// Finished with a value.
    Complete = 1,
    /// Stopped early by the pruner.
    Pruned = 2,
    /// Failed (an error, a non-finite value, or its worker died).
    Fail = 3,
    /// Enqueued, waiting for a worker.
    Waiting = 4,
}

impl TrialState {
    fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => TrialState::Running,
            1 => TrialState::Complete,
            2 => TrialState::Pruned,
            3 => TrialState::Fail,
            4 => TrialState::Waiting,
            _ => return None,
        })
    }

    /// Complete, pruned or failed.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Fail
        )
    }
}

/// Optuna's `StudyDirection` (1 minimise, 2 maximise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better.
    Minimize = 1,
    /// Higher is better.
    Maximize = 2,
}

impl Direction {
    /// The loss a minimiser sees for `value`.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// A parameter's distribution, as Optuna records it (`distribution_to_json`).
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// `FloatDistribution(low, high, log, step)`.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Log scale.
        log: bool,
        /// Discretisation step.
        step: Option<f64>,
    },
    /// `IntDistribution(low, high, log, step)`.
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Log scale.
        log: bool,
        /// Step.
        step: i64,
    },
    /// `CategoricalDistribution(choices)`; the internal value is the choice's index.
    Categorical {
        /// The choices.
        choices: Vec<Value>,
    },
}

impl Distribution {
    /// Optuna's JSON text for it (`optuna.distributions.distribution_to_json`).
    pub fn to_json(&self) -> String {
        let v = match self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => json!({"name": "FloatDistribution",
                "attributes": {"step": step, "low": low, "high": high, "log": log}}),
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => json!({"name": "IntDistribution",
                "attributes": {"log": log, "step": step, "low": low, "high": high}}),
            Distribution::Categorical { choices } => json!({"name": "CategoricalDistribution",
                "attributes": {"choices": choices}}),
        };
        v.to_string()
    }

    /// Reads Optuna's JSON text, including the distributions Optuna 3 deprecated
    /// (`UniformDistribution`, `LogUniformDistribution`, `DiscreteUniformDistribution`,
    /// `IntUniformDistribution`, `IntLogUniformDistribution`).
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |why: &str| SearchError::Storage(format!("distribution {text}: {why}"));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let name = v["name"].as_str().ok_or_else(|| bad("no name"))?;
        let a = &v["attributes"];
        let f = |k: &str| a[k].as_f64().ok_or_else(|| bad(&format!("no {k}")));
        let i = |k: &str| a[k].as_i64().ok_or_else(|| bad(&format!("no {k}")));
        Ok(match name {
            "FloatDistribution" => Distribution::Float {
                low: f("low")?,
                high: f("high")?,
                log: a["log"].as_bool().unwrap_or(false),
                step: a["step"].as_f64(),
            },
            "UniformDistribution" => Distribution::Float {
                low: f("low")?,
                high: f("high")?,
                log: false,
                step: None,
            },
            "LogUniformDistribution" => Distribution::Float {
                low: f("low")?,
                high: f("high")?,
                log: true,
                step: None,
            },
            "DiscreteUniformDistribution" => Distribution::Float {
                low: f("low")?,
                high: f("high")?,
                log: false,
                step: Some(f("q")?),
            },
            "IntDistribution" | "IntUniformDistribution" | "IntLogUniformDistribution" => {
                Distribution::Int {
                    low: i("low")?,
                    high: i("high")?,
                    log: a["log"]
                        .as_bool()
                        .unwrap_or(name == "IntLogUniformDistribution"),
                    step: a["step"].as_i64().unwrap_or(1),
                }
            }
            "CategoricalDistribution" => Distribution::Categorical {
                choices: a["choices"]
                    .as_array()
                    .ok_or_else(|| bad("no choices"))?
                    .clone(),
            },
            other => return Err(bad(&format!("unknown distribution {other}"))),
        })
    }

    /// Optuna's `check_distribution_compatibility`: same kind, and for categoricals the same
    /// choices (ranges may differ).
    pub fn compatible(&self, other: &Distribution) -> bool {
        match (self, other) {
            (Distribution::Float { log: a, .. }, Distribution::Float { log: b, .. }) => a == b,
            (Distribution::Int { log: a, .. }, Distribution::Int { log: b, .. }) => a == b,
            (
                Distribution::Categorical { choices: a },
                Distribution::Categorical { choices: b },
            ) => a == b,
            _ => false,
        }
    }

    /// The value a user sees for an internal value (the choice for a categorical).
    pub fn external(&self, internal: f64) -> Value {
        match self {
            Distribution::Float { .. } => json!(internal),
            Distribution::Int { .. } => json!(internal as i64),
            Distribution::Categorical { choices } => choices
                .get(internal as usize)
                .cloned()
                .unwrap_or(Value::Null),
        }
    }
}

/// A study as the log has built it.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyEntry {
    /// Its id (order of creation in the log).
    pub id: usize,
    /// Its name.
    pub name: String,
    /// One direction per objective.
    pub directions: Vec<Direction>,
    /// User attributes.
    pub user_attrs: Map<String, Value>,
    /// System attributes.
    pub system_attrs: Map<String, Value>,
    /// Its trials' ids, in number order.
    pub trials: Vec<usize>,
}

/// A trial as the log has built it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialEntry {
    /// Global id (over all studies).
    pub id: usize,
    /// Number within its study.
    pub number: usize,
    /// Its study's id.
    pub study: usize,
    /// State.
    pub state: TrialState,
    /// Parameter values in Optuna's internal representation (a categorical's index).
    pub params: BTreeMap<String, f64>,
    /// Parameter distributions.
    pub distributions: BTreeMap<String, Distribution>,
    /// Objective values (set when complete; the last intermediate value when pruned).
    pub values: Option<Vec<f64>>,
    /// Intermediate values by step.
    pub intermediate: BTreeMap<i64, f64>,
    /// User attributes.
    pub user_attrs: Map<String, Value>,
    /// System attributes.
    pub system_attrs: Map<String, Value>,
    /// Worker whose operation made it running (its owner), if known.
    pub owner: Option<String>,
    /// Worker whose operation finished it.
    pub finished_by: Option<String>,
    /// ISO start and completion times, as written.
    pub datetime_start: Option<String>,
    /// See `datetime_start`.
    pub datetime_complete: Option<String>,
}

/// The state a journal's operations build.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Operations applied so far (the next one to read).
    pub ops_read: usize,
    /// Studies by id (deleted ones removed).
    pub studies: BTreeMap<usize, StudyEntry>,
    next_study_id: usize,
    /// Trials by id.
    pub trials: Vec<TrialEntry>,
}

fn as_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A number, or Python's non-JSON `NaN`/`Infinity`/`-Infinity` (read as strings).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => v.as_f64(),
    }
}

fn values_of(v: &Value) -> Option<Vec<f64>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|x| number(x).unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    })
}

impl Replay {
    /// The study named `name`.
    pub fn study_by_name(&self, name: &str) -> Option<&StudyEntry> {
        self.studies.values().find(|s| s.name == name)
    }

    /// The trials of study `id`, in number order.
    pub fn trials_of(&self, id: usize) -> impl Iterator<Item = &TrialEntry> {
        self.studies
            .get(&id)
            .into_iter()
            .flat_map(|s| s.trials.iter().map(|&t| &self.trials[t]))
    }

    /// Applies operations in log order.
    pub fn apply_all(&mut self, ops: &[Value]) -> Result<()> {
        for op in ops {
            self.apply(op)?;
        }
        Ok(())
    }

    /// Applies one operation. Malformed operations are errors; operations Optuna would ignore
    /// (a missing study or trial, an update to a finished trial) are ignored.
    pub fn apply(&mut self, op: &Value) -> Result<()> {
        let op_number = self.ops_read;
        self.ops_read += 1;
        let bad =
            |why: &str| SearchError::Storage(format!("journal operation {op_number} {why}: {op}"));
        let code = op["op_code"]
            .as_u64()
            .ok_or_else(|| bad("has no op_code"))?;
        let worker = op["worker_id"].as_str().map(str::to_string);
        let trial_id = || -> Result<usize> {
            op["trial_id"]
                .as_u64()
                .map(|t| t as usize)
                .ok_or_else(|| bad("has no trial_id"))
        };
        let study_id = || -> Result<usize> {
            op["study_id"]
                .as_u64()
                .map(|t| t as usize)
                .ok_or_else(|| bad("has no study_id"))
        };
        match code {
            0 => {
                let name = op["study_name"]
                    .as_str()
                    .ok_or_else(|| bad("has no study_name"))?
                    .to_string();
                let directions = op["directions"]
                    .as_array()
                    .ok_or_else(|| bad("has no directions"))?
                    .iter()
                    .map(|d| match d.as_u64() {
                        Some(2) => Direction::Maximize,
                        _ => Direction::Minimize,
                    })
                    .collect();
                if self.study_by_name(&name).is_some() {
                    return Ok(());
                }
                let id = self.next_study_id;
                self.next_study_id += 1;
                self.studies.insert(
                    id,
                    StudyEntry {
                        id,
                        name,
                        directions,
                        user_attrs: Map::new(),
                        system_attrs: Map::new(),
                        trials: Vec::new(),
                    },
                );
            }
            1 => {
                self.studies.remove(&study_id()?);
            }
            2 | 3 => {
                let key = if code == 2 {
                    "user_attr"
                } else {
                    "system_attr"
                };
                if let Some(s) = self.studies.get_mut(&study_id()?) {
                    let attrs = if code == 2 {
                        &mut s.user_attrs
                    } else {
                        &mut s.system_attrs
                    };
                    attrs.extend(as_map(&op[key]));
                }
            }
            4 => {
                let sid = study_id()?;
                let Some(study) = self.studies.get_mut(&sid) else {
                    return Ok(());
                };
                let id = self.trials.len();
                let mut distributions = BTreeMap::new();
                if let Some(d) = op["distributions"].as_object() {
                    for (k, v) in d {
                        let text = v
                            .as_str()
                            .ok_or_else(|| bad("has a non-text distribution"))?;
                        distributions.insert(k.clone(), Distribution::from_json(text)?);
                    }
                }
                let mut params = BTreeMap::new();
                if let Some(p) = op["params"].as_object() {
                    for (k, v) in p {
                        params.insert(
                            k.clone(),
                            v.as_f64()
                                .ok_or_else(|| bad("has a non-numeric parameter"))?,
                        );
                    }
                }
                let state = match op.get("state") {
                    Some(s) => TrialState::from_code(s.as_u64().unwrap_or(99))
                        .ok_or_else(|| bad("has an unknown state"))?,
                    None => TrialState::Running,
                };
                let values =
                    values_of(&op["values"]).or_else(|| number(&op["value"]).map(|v| vec![v]));
                let intermediate = as_map(&op["intermediate_values"])
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, number(&v)?)))
                    .collect();
                self.trials.push(TrialEntry {
                    id,
                    number: study.trials.len(),
                    study: sid,
                    state,
                    params,
                    distributions,
                    values,
                    intermediate,
                    user_attrs: as_map(&op["user_attrs"]),
                    system_attrs: as_map(&op["system_attrs"]),
                    owner: (state == TrialState::Running)
                        .then(|| worker.clone())
                        .flatten(),
                    finished_by: state.is_finished().then(|| worker.clone()).flatten(),
                    datetime_start: op["datetime_start"].as_str().map(str::to_string),
                    datetime_complete: op["datetime_complete"].as_str().map(str::to_string),
                });
                study.trials.push(id);
            }
            5..=9 => {
                let tid = trial_id()?;
                let Some(trial) = self.trials.get_mut(tid) else {
                    return Ok(());
                };
                if trial.state.is_finished() || !self.studies.contains_key(&trial.study) {
                    return Ok(());
                }
                match code {
                    5 => {
                        let name = op["param_name"]
                            .as_str()
                            .ok_or_else(|| bad("has no param_name"))?
                            .to_string();
                        let value = op["param_value_internal"]
                            .as_f64()
                            .ok_or_else(|| bad("has no param_value_internal"))?;
                        let text = op["distribution"]
                            .as_str()
                            .ok_or_else(|| bad("has no distribution"))?;
                        let dist = Distribution::from_json(text)?;
                        // Optuna's rule: a parameter keeps a compatible distribution across
                        // a study's trials.
                        let study = trial.study;
                        let earlier = self.studies[&study]
                            .trials
                            .iter()
                            .find_map(|&t| self.trials[t].distributions.get(&name));
                        if earlier.is_some_and(|d| !d.compatible(&dist)) {
                            return Ok(());
                        }
                        let trial = &mut self.trials[tid];
                        trial.params.insert(name.clone(), value);
                        trial.distributions.insert(name, dist);
                    }
                    6 => {
                        let state = op["state"]
                            .as_u64()
                            .and_then(TrialState::from_code)
                            .ok_or_else(|| bad("has no state"))?;
                        if state == TrialState::Running && trial.state == TrialState::Running {
                            // Popped by another worker first.
                            return Ok(());
                        }
                        if state == TrialState::Running {
                            trial.owner = worker;
                            trial.datetime_start =
                                op["datetime_start"].as_str().map(str::to_string);
                        } else if state.is_finished() {
                            trial.finished_by = worker;
                            trial.datetime_complete =
                                op["datetime_complete"].as_str().map(str::to_string);
                        }
                        trial.state = state;
                        if let Some(v) = values_of(&op["values"]) {
                            trial.values = Some(v);
                        }
                    }
                    7 => {
                        let step = op["step"].as_i64().ok_or_else(|| bad("has no step"))?;
                        let value = number(&op["intermediate_value"]).unwrap_or(f64::NAN);
                        trial.intermediate.insert(step, value);
                    }
                    8 => trial.user_attrs.extend(as_map(&op["user_attr"])),
                    _ => trial.system_attrs.extend(as_map(&op["system_attr"])),
                }
            }
            10 => {}
            _ => return Err(bad("has an unknown op_code")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_round_trip_through_optunas_json() {
        for d in [
            Distribution::Float {
                low: 1e-4,
                high: 1.0,
                log: true,
                step: None,
            },
            Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: Some(0.25),
            },
            Distribution::Int {
                low: 1,
                high: 8,
                log: false,
                step: 1,
            },
            Distribution::Categorical {
                choices: vec![json!("relu"), json!("gelu"), json!(3)],
            },
        ] {
            assert_eq!(Distribution::from_json(&d.to_json()).unwrap(), d);
        }
        let old = r#"{"name": "LogUniformDistribution", "attributes": {"low": 0.1, "high": 2.0}}"#;
        assert_eq!(
            Distribution::from_json(old).unwrap(),
            Distribution::Float {
                low: 0.1,
                high: 2.0,
                log: true,
                step: None
            }
        );
    }

    #[test]
    fn replay_follows_optunas_rules() {
        let w = "w1";
        let ops = [
            json!({"op_code": 0, "worker_id": w, "study_name": "a", "directions": [2]}),
            json!({"op_code": 0, "worker_id": w, "study_name": "a", "directions": [1]}),
            json!({"op_code": 4, "worker_id": w, "study_id": 0, "datetime_start": "x"}),
            json!({"op_code": 6, "worker_id": w, "trial_id": 0, "state": 1, "values": [0.5]}),
            // Updates to a finished trial are ignored.
            json!({"op_code": 6, "worker_id": "w2", "trial_id": 0, "state": 3, "values": null}),
            json!({"op_code": 7, "worker_id": w, "trial_id": 0, "step": 1, "intermediate_value": 9.0}),
            json!({"op_code": 4, "worker_id": w, "study_id": 0, "datetime_start": "x", "state": 4}),
            json!({"op_code": 6, "worker_id": "w2", "trial_id": 1, "state": 0, "values": null}),
            // A second pop of the same trial is rejected: w2 owns it.
            json!({"op_code": 6, "worker_id": "w3", "trial_id": 1, "state": 0, "values": null}),
        ];
        let mut r = Replay::default();
        r.apply_all(&ops).unwrap();
        assert_eq!(r.studies.len(), 1);
        assert_eq!(r.studies[&0].directions, vec![Direction::Maximize]);
        assert_eq!(r.trials[0].state, TrialState::Complete);
        assert_eq!(r.trials[0].values, Some(vec![0.5]));
        assert!(r.trials[0].intermediate.is_empty());
        assert_eq!(r.trials[1].owner.as_deref(), Some("w2"));
        assert_eq!(r.trials[1].number, 1);
        assert_eq!(r.ops_read, ops.len());
    }
}
