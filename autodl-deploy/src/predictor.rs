//! A run's deployed model: its fitted transform and its exported ONNX graph (run by tract),
//! from raw rows keyed by column name to predictions in the target's own terms.

use std::path::Path;

use autodl_artifacts::export::{ExportedModel, OutputKind};
use autodl_artifacts::io::read_json;
use autodl_artifacts::profile::ColumnKind;
use autodl_artifacts::run::paths;
use autodl_artifacts::table::{ColumnValues, Matrix, RawColumn, RawTable, argmax, format_number};
use autodl_artifacts::transform::{AbsentColumns, FeatureStep, FeatureTransform, parse_number};
use serde::Serialize;

use crate::{DeployError, InputRows, OnnxRunner, Result};

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// A class, with every class's probability (in the model's label order).
    Class {
        /// The most probable label.
        label: String,
        /// Each label's probability (a JSON object in label order).
        probabilities: Probabilities,
    },
    /// A value in the target's units.
    Value {
        /// The predicted value.
        value: f64,
    },
}

/// Class probabilities in label order; serialised as an object `{label: probability}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities(pub Vec<(String, f32)>);

impl Serialize for Probabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (label, p) in &self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

/// What the model needs of one input column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputColumn {
    /// The column's name.
    pub name: String,
    /// How the model reads it.
    pub kind: ColumnKind,
}

/// A run's model, ready to predict raw rows.
#[derive(Debug)]
pub struct Predictor {
    transform: FeatureTransform,
    runner: OnnxRunner,
    exported: ExportedModel,
    inputs: Vec<InputColumn>,
}

/// A value of a request row, before it is checked against the column it is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Absent or null: missing (imputed as in training).
    Missing,
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

/// A request that does not fit the model: the message says which row and column, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl Predictor {
    /// Opens the model of the run directory `run` (`data/transform.json`, `export.json` and
    /// the ONNX file it names).
    pub fn open(run: &Path) -> Result<Predictor> {
        let transform: FeatureTransform = read_json(&run.join(paths::TRANSFORM))?;
        let exported: ExportedModel = read_json(&run.join(paths::EXPORT))?;
        let runner = OnnxRunner::load(&run.join(&exported.onnx_path))?;
        Predictor::new(transform, runner, exported)
    }

    /// A predictor of `runner` (the export described by `exported`) after `transform`.
    pub fn new(
        transform: FeatureTransform,
        runner: OnnxRunner,
        exported: ExportedModel,
    ) -> Result<Predictor> {
        for input in runner.inputs() {
            let width = match input.name.as_str() {
                crate::INPUT_NAME => transform.n_features(),
                crate::NUMERIC_INPUT => transform.numeric_columns().len(),
                crate::ENCODED_INPUT => transform.non_numeric_feature_names().len(),
                other => {
                    return Err(DeployError::Runtime(format!(
                        "the model's input '{other}' is none autodl makes ({}, {} or {})",
                        crate::INPUT_NAME,
                        crate::NUMERIC_INPUT,
                        crate::ENCODED_INPUT
                    )));
                }
            };
            if width != input.width {
                return Err(DeployError::Shape {
                    expected: input.width,
                    found: width,
                });
            }
        }
        let mut inputs: Vec<InputColumn> = Vec::new();
        for step in &transform.steps {
            if inputs.iter().any(|c| c.name == step.column()) {
                continue;
            }
            inputs.push(InputColumn {
                name: step.column().to_string(),
                kind: match step {
                    FeatureStep::Numeric { .. } => ColumnKind::Numeric,
                    FeatureStep::OneHot { .. } | FeatureStep::Frequency { .. } => {
                        ColumnKind::Categorical
                    }
                    FeatureStep::Date { .. } => ColumnKind::Datetime,
                    FeatureStep::Text { .. } => ColumnKind::Text,
                },
            });
        }
        Ok(Predictor {
            transform,
            runner,
            exported,
            inputs,
        })
    }

    /// The columns the model reads, in the order of first use.
    pub fn inputs(&self) -> &[InputColumn] {
        &self.inputs
    }

    /// The fitted transform.
    pub fn transform(&self) -> &FeatureTransform {
        &self.transform
    }

    /// The export's description.
    pub fn exported(&self) -> &ExportedModel {
        &self.exported
    }

    /// Builds the table of `rows` (each a value per input column, in [`Predictor::inputs`]
    /// order), checking each value against its column: numbers (or numbers written as text,
    /// or booleans) for numeric columns; text or numbers for categories; text for dates and
    /// free text. Missing values are allowed everywhere.
    pub fn table(&self, rows: &[Vec<Cell>]) -> std::result::Result<RawTable, InvalidInput> {
        let mut columns = Vec::with_capacity(self.inputs.len());
        for (j, input) in self.inputs.iter().enumerate() {
            let bad = |row: usize, what: &str, cell: &Cell| {
                InvalidInput(format!(
                    "row {row}, column '{}': expected {what}, got {}",
                    input.name,
                    match cell {
                        Cell::Text(s) => format!("the text {s:?}"),
                        Cell::Number(x) => format!("the number {x}"),
                        Cell::Bool(b) => format!("the boolean {b}"),
                        Cell::Missing => "nothing".into(),
                    }
                ))
            };
            let values = match input.kind {
                ColumnKind::Numeric | ColumnKind::Boolean => ColumnValues::Numeric(
                    rows.iter()
                        .enumerate()
                        .map(|(r, row)| match &row[j] {
                            Cell::Missing => Ok(None),
                            Cell::Number(x) if x.is_finite() => Ok(Some(*x)),
                            Cell::Bool(b) => Ok(Some(f64::from(u8::from(*b)))),
                            Cell::Text(s) if s.trim().is_empty() => Ok(None),
                            Cell::Text(s) => parse_number(s)
                                .map(Some)
                                .ok_or_else(|| bad(r, "a number", &row[j])),
                            cell => Err(bad(r, "a finite number", cell)),
                        })
                        .collect::<std::result::Result<_, _>>()?,
                ),
                ColumnKind::Categorical => ColumnValues::Text(
                    rows.iter()
                        .map(|row| match &row[j] {
                            Cell::Missing => None,
                            Cell::Number(x) => Some(format_number(*x)),
                            Cell::Bool(b) => Some(b.to_string()),
                            Cell::Text(s) => Some(s.clone()),
                        })
                        .collect(),
                ),
                ColumnKind::Datetime | ColumnKind::Text => ColumnValues::Text(
                    rows.iter()
                        .enumerate()
                        .map(|(r, row)| match &row[j] {
                            Cell::Missing => Ok(None),
                            Cell::Text(s) => Ok(Some(s.clone())),
                            cell => Err(bad(
                                r,
                                if input.kind == ColumnKind::Datetime {
                                    "a date as text"
                                } else {
                                    "text"
                                },
                                cell,
                            )),
                        })
                        .collect::<std::result::Result<_, _>>()?,
                ),
            };
            columns.push(RawColumn {
                name: input.name.clone(),
                values,
            });
        }
        Ok(RawTable { columns })
    }

    /// The model's outputs for the rows of `table` (probabilities, or the standardised value).
    pub fn outputs(&self, table: &RawTable) -> Result<Matrix> {
        self.runner.run_inputs(&self.graph_inputs(table)?)
    }

    /// What the graph takes for the rows of `table`, one block per graph input: the transform
    /// applied (`features`), or the raw numeric columns (`numeric`) and the other columns'
    /// encodings (`encoded`) of a graph that preprocesses numbers itself.
    pub fn graph_inputs(&self, table: &RawTable) -> Result<Vec<InputRows>> {
        input_rows(self.runner.inputs(), &self.transform, table)
    }

    /// Runs the graph on blocks made by [`Predictor::graph_inputs`] (possibly of several
    /// tables, appended).
    pub fn run_inputs(&self, inputs: &[InputRows]) -> Result<Matrix> {
        self.runner.run_inputs(inputs)
    }

    /// Reads the outputs of row `i` as a prediction.
    pub fn prediction(&self, outputs: &Matrix, i: usize) -> Prediction {
        let row = outputs.row(i);
        match &self.exported.output {
            OutputKind::Probabilities { labels } => Prediction::Class {
                label: labels[argmax(row)].clone(),
                probabilities: Probabilities(
                    labels.iter().cloned().zip(row.iter().copied()).collect(),
                ),
            },
            // The run's transform, not a copy of its statistics, maps values back.
            OutputKind::StandardizedValue { .. } => Prediction::Value {
                value: self.transform.decode_regression(row[0]),
            },
        }
    }
}

/// The blocks a graph with `inputs` takes for the rows of `table` under `transform`: the
/// transform applied for `features`; the raw numeric columns for `numeric` and the other
/// columns' encodings for `encoded` (a graph that preprocesses numbers itself).
pub fn input_rows(
    inputs: &[crate::InputInfo],
    transform: &FeatureTransform,
    table: &RawTable,
) -> Result<Vec<InputRows>> {
    inputs
        .iter()
        .map(|input| {
            Ok(match input.name.as_str() {
                crate::NUMERIC_INPUT => InputRows::Double {
                    n_rows: table.n_rows(),
                    n_cols: input.width,
                    data: transform.raw_numeric(table, AbsentColumns::Error)?,
                },
                crate::ENCODED_INPUT => {
                    InputRows::Float(transform.encode_non_numeric(table, AbsentColumns::Error)?)
                }
                _ => InputRows::Float(transform.transform(table)?),
            })
        })
        .collect()
}
