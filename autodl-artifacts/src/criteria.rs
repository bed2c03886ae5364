//! The scorecard of the survey's ten criteria.

use serde::{Deserialize, Serialize};

/// The ten criteria of Dong, Kedziora, Musial and Gabrys, "Automated Deep Learning: Neural
/// Architecture Search Is Not the End".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// How far the found solution departs from known defaults.
    Novelty,
    /// Quality of the predictions.
    SolutionQuality,
    /// Time and compute spent.
    Efficiency,
    /// Spread of results over repeated runs.
    Stability,
    /// How well a person can understand the model and the search.
    Interpretability,
    /// Whether a rerun gives the same result.
    Reproducibility,
    /// The run's own checks of its artifacts.
    EngineeringQuality,
    /// How cost grows with data size.
    Scalability,
    /// How well the model holds up on data it was not tuned on.
    Generalizability,
    /// Energy and emissions.
    EcoFriendliness,
}

impl Criterion {
    /// The ten criteria in the survey's order.
    pub const ALL: [Criterion; 10] = [
        Criterion::Novelty,
        Criterion::SolutionQuality,
        Criterion::Efficiency,
        Criterion::Stability,
        Criterion::Interpretability,
        Criterion::Reproducibility,
        Criterion::EngineeringQuality,
        Criterion::Scalability,
        Criterion::Generalizability,
        Criterion::EcoFriendliness,
    ];

    /// Human-readable name.
    pub fn title(self) -> &'static str {
        match self {
            Criterion::Novelty => "Novelty",
            Criterion::SolutionQuality => "Solution quality",
            Criterion::Efficiency => "Efficiency",
            Criterion::Stability => "Stability",
            Criterion::Interpretability => "Interpretability",
            Criterion::Reproducibility => "Reproducibility",
            Criterion::EngineeringQuality => "Engineering quality",
            Criterion::Scalability => "Scalability",
            Criterion::Generalizability => "Generalizability",
            Criterion::EcoFriendliness => "Eco-friendliness",
        }
    }
}

/// One measured quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What it is.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit (`""` for unitless).
    pub unit: String,
}

/// The assessment of one criterion: measured, or not measured with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Assessment {
    /// Measured in this run.
    Measured {
        /// The headline value.
        value: f64,
        /// Its unit.
        unit: String,
        /// How it was measured, in words.
        method: String,
        /// Supporting measurements.
        details: Vec<Measurement>,
    },
    /// Not measured in this run.
    NotMeasured {
        /// Why not, and what would measure it.
        reason: String,
    },
}

/// One row of the scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionEntry {
    /// The criterion.
    pub criterion: Criterion,
    /// Its assessment.
    pub assessment: Assessment,
}

/// The scorecard of one run: all ten criteria, in the survey's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// Schema version of this artifact.
    pub schema_version: u32,
    /// The run it assesses.
    pub run_id: String,
    /// One entry per criterion.
    pub criteria: Vec<CriterionEntry>,
}

crate::versioned!(Scorecard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Scorecard {
            schema_version: crate::SCHEMA_VERSION,
            run_id: "r".into(),
            criteria: vec![
                CriterionEntry {
                    criterion: Criterion::Efficiency,
                    assessment: Assessment::Measured {
                        value: 1.0,
                        unit: "s".into(),
                        method: "wall clock".into(),
                        details: vec![Measurement {
                            name: "cpu".into(),
                            value: 2.0,
                            unit: "s".into(),
                        }],
                    },
                },
                CriterionEntry {
                    criterion: Criterion::Novelty,
                    assessment: Assessment::NotMeasured {
                        reason: "later".into(),
                    },
                },
            ],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Scorecard>(&json).unwrap(), s);
    }
}
