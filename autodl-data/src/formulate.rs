//! Problem formulation: which column is the target when the user names none, and how a
//! labels file (an identifier and a label, the labels of another table arriving apart) is
//! joined to the table it labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use autodl_artifacts::profile::{ColumnKind, ColumnProfile};
use autodl_artifacts::table::{FastHash, RawColumn, RawTable};

use crate::prepare::profile_column;
use crate::{DataError, Result};

/// Column names that, by common convention, hold the target.
const TARGET_NAMES: [&str; 7] = [
    "target", "label", "labels", "class", "y", "outcome", "response",
];

/// Name tokens of a model's outputs (`y_pred`, `prediction`, `y_pred_proba`): not a target.
const OUTPUT_TOKENS: [&str; 5] = ["pred", "predicted", "prediction", "proba", "probability"];

/// Name tokens of a time stamp (`year`, `order_date`): a moment, not something to predict.
const TIME_TOKENS: [&str; 4] = ["year", "date", "time", "timestamp"];

/// The target chosen for a table, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetChoice {
    /// The column.
    pub column: String,
    /// Why it was chosen, and what was passed over.
    pub reason: String,
}

fn tokens(name: &str) -> impl Iterator<Item = String> + '_ {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_ascii_lowercase())
}

/// Why `profile` cannot be a target, or `None` if it can.
fn unsuitable(profile: &ColumnProfile) -> Option<&'static str> {
    if profile.missing_share >= 1.0 || profile.constant {
        Some("constant or empty")
    } else if profile.id_like {
        Some("identifier-like")
    } else if matches!(profile.kind, ColumnKind::Datetime | ColumnKind::Text) {
        Some("dates or free text")
    } else if tokens(&profile.name).any(|t| OUTPUT_TOKENS.contains(&t.as_str())) {
        Some("named like a model's output")
    } else if tokens(&profile.name).any(|t| TIME_TOKENS.contains(&t.as_str())) {
        Some("named like a time stamp")
    } else {
        None
    }
}

/// Chooses the target of a table nobody named one for.
///
/// In order: a column named by convention (`target`, `label`, `class`, `y`, `outcome`,
/// `response`); else the last column; else the first; else the nearest to the end. A column is
/// passed over when it cannot be a target: constant, empty, identifier-like, dates, free text,
/// or named like a model's output (`y_pred`) or a time stamp (`year`).
pub fn infer_target(table: &RawTable) -> Result<TargetChoice> {
    let n = table.columns.len();
    if n < 2 {
        return Err(DataError::Config(format!(
            "a table needs a target and at least one feature; this one has {n} column(s)"
        )));
    }
    let mut profiles: Vec<Option<ColumnProfile>> = vec![None; n];
    let mut profile = |i: usize| -> ColumnProfile {
        profiles[i]
            .get_or_insert_with(|| profile_column(&table.columns[i]))
            .clone()
    };
    if let Some(i) = table
        .columns
        .iter()
        .position(|c| TARGET_NAMES.contains(&c.name.to_ascii_lowercase().as_str()))
    {
        let p = profile(i);
        if unsuitable(&p).is_none() {
            return Ok(TargetChoice {
                column: p.name,
                reason: "its name marks it as the target".into(),
            });
        }
    }
    let order = std::iter::once(n - 1)
        .chain(std::iter::once(0))
        .chain((1..n - 1).rev());
    let mut passed = Vec::new();
    for i in order {
        let p = profile(i);
        match unsuitable(&p) {
            Some(why) => passed.push(format!("'{}' ({why})", p.name)),
            None => {
                let place = match i {
                    0 => "the first column",
                    i if i == n - 1 => "the last column",
                    _ => "the column nearest the end",
                };
                let reason = if passed.is_empty() {
                    format!("{place}, where targets usually are")
                } else {
                    format!(
                        "{place} that can be a target; passed over {}",
                        passed.join(", ")
                    )
                };
                return Ok(TargetChoice {
                    column: p.name,
                    reason,
                });
            }
        }
    }
    Err(DataError::Config(format!(
        "no column can be the target: {}; name one with --target",
        passed.join(", ")
    )))
}

/// Whether `column` can key rows: present in every row, a distinct value in each, and
/// integers or text (not measurements). Unlike an ID-like column in the profile, the values
/// need not run evenly: a labels file often labels a subset of rows.
fn keys_rows(column: &RawColumn) -> bool {
    let n = column.values.len();
    if n < 2 || column.values.missing() > 0 {
        return false;
    }
    let integers = match &column.values {
        autodl_artifacts::table::ColumnValues::Numeric(v) => {
            v.iter().flatten().all(|x| x.fract() == 0.0)
        }
        _ => true,
    };
    integers && column.values.label_counts().len() == n
}

/// If `table` is a labels file (exactly two columns, one of which keys the rows and the other
/// does not), its key column's name and its label column's name.
pub fn labels_only(table: &RawTable) -> Option<(String, String)> {
    let [a, b] = table.columns.as_slice() else {
        return None;
    };
    match (keys_rows(a), keys_rows(b)) {
        (true, false) => Some((a.name.clone(), b.name.clone())),
        (false, true) => Some((b.name.clone(), a.name.clone())),
        _ => None,
    }
}

/// The rows of `values` keyed by their text, for joining.
fn keys(column: &RawColumn) -> Vec<Option<String>> {
    (0..column.values.len())
        .map(|i| column.values.label(i))
        .collect()
}

/// How a join went.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinReport {
    /// The column joined on.
    pub on: String,
    /// Label rows whose identifier the feature table holds.
    pub matched: usize,
    /// Label rows.
    pub label_rows: usize,
}

impl std::fmt::Display for JoinReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "joined on '{}': {} of {} label rows matched a feature row",
            self.on, self.matched, self.label_rows
        )
    }
}

/// Joins `labels` (an identifier and label columns) to `features` on their one shared column:
/// one row per label row whose identifier `features` holds, with the feature columns and then
/// the label columns. Identifiers that repeat in `features` are an error (the join would be
/// ambiguous).
pub fn join_labels(features: &RawTable, labels: &RawTable) -> Result<(RawTable, JoinReport)> {
    let shared: Vec<&str> = labels
        .names()
        .into_iter()
        .filter(|n| features.column(n).is_some())
        .collect();
    let [on] = shared.as_slice() else {
        return Err(DataError::Config(format!(
            "joining labels needs exactly one column shared by both tables, found {}: [{}]",
            shared.len(),
            shared.join(", ")
        )));
    };
    let feature_keys = keys(features.column(on).expect("shared"));
    let mut index: HashMap<&str, usize, FastHash> = HashMap::default();
    for (row, key) in feature_keys.iter().enumerate() {
        if let Some(k) = key
            && index.insert(k.as_str(), row).is_some()
        {
            return Err(DataError::Config(format!(
                "cannot join on '{on}': the value '{k}' names more than one feature row"
            )));
        }
    }
    let label_keys = keys(labels.column(on).expect("shared"));
    let (mut feature_rows, mut label_rows) = (Vec::new(), Vec::new());
    for (row, key) in label_keys.iter().enumerate() {
        if let Some(&f) = key.as_deref().and_then(|k| index.get(k)) {
            feature_rows.push(f);
            label_rows.push(row);
        }
    }
    let report = JoinReport {
        on: on.to_string(),
        matched: label_rows.len(),
        label_rows: labels.n_rows(),
    };
    if report.matched == 0 {
        return Err(DataError::Config(format!(
            "{report}; the tables share no identifier"
        )));
    }
    let mut joined = features.take(&feature_rows);
    let extra = labels.take(&label_rows);
    joined
        .columns
        .extend(extra.columns.into_iter().filter(|c| c.name != *on));
    Ok((joined, report))
}

/// The readable tables beside `path` (same directory, a supported format, not `path`) that
/// have the column `on`, in name order.
fn siblings_with(path: &Path, on: &str) -> Vec<(PathBuf, RawTable)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.as_path() != path && crate::io::is_table_file(p))
        .filter(|p| crate::io::has_column(p, on))
        .collect();
    paths.sort();
    // A sibling that cannot be read is simply not the one looked for.
    paths
        .into_iter()
        .filter_map(|p| crate::read_table(&p).ok().map(|t| (p, t)))
        .collect()
}

/// Looks beside `labels_path` for the table its labels belong to: a table in the same
/// directory that has the identifier column `on`, more columns than the labels, and holds the
/// most of the labels' identifiers (at least half). `None` if there is none.
pub fn find_labelled_table(
    labels_path: &Path,
    labels: &RawTable,
    on: &str,
) -> Option<(PathBuf, RawTable, JoinReport)> {
    siblings_with(labels_path, on)
        .into_iter()
        .filter(|(_, t)| t.columns.len() > labels.columns.len())
        .filter_map(|(p, t)| join_labels(&t, labels).ok().map(|(j, r)| (p, j, r)))
        .filter(|(_, _, r)| 2 * r.matched >= r.label_rows)
        .max_by_key(|(_, _, r)| r.matched)
}

/// Looks beside `path` (a table without labels of its own) for a labels file that labels it: a
/// table in the same directory of an identifier column `table` has and one label column it
/// lacks, with at least half of `table`'s rows labelled. The best such labels joined to `table`,
/// with the labels' path and label column; `None` if there is none.
pub fn find_labels_for(
    path: &Path,
    table: &RawTable,
) -> Option<(PathBuf, String, RawTable, JoinReport)> {
    let ids: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| keys_rows(c))
        .map(|c| c.name.as_str())
        .collect();
    ids.into_iter()
        .flat_map(|id| siblings_with(path, id))
        .filter_map(|(p, labels)| {
            let (_, label) = labels_only(&labels)?;
            if table.column(&label).is_some() {
                return None;
            }
            let (joined, report) = join_labels(table, &labels).ok()?;
            (2 * report.matched >= table.n_rows()).then_some((p, label, joined, report))
        })
        .max_by_key(|(_, _, _, r)| r.matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodl_artifacts::table::ColumnValues;

    fn text(name: &str, v: &[&str]) -> RawColumn {
        RawColumn {
            name: name.into(),
            values: ColumnValues::dict_from(v.iter().map(|s| Some(*s))),
        }
    }

    fn num(name: &str, v: impl Iterator<Item = f64>) -> RawColumn {
        RawColumn {
            name: name.into(),
            values: ColumnValues::Numeric(v.map(Some).collect()),
        }
    }

    fn table(columns: Vec<RawColumn>) -> RawTable {
        RawTable { columns }
    }

    #[test]
    fn target_by_name_then_last_then_first() {
        let n = 40;
        let species: Vec<&str> = (0..n).map(|i| ["a", "b", "c"][i % 3]).collect();
        let t = table(vec![
            text("species", &species),
            num("x", (0..n).map(|i| (i % 7) as f64)),
            num("year", (0..n).map(|i| 2007.0 + (i % 3) as f64)),
        ]);
        let c = infer_target(&t).unwrap();
        assert_eq!(c.column, "species");
        assert!(
            c.reason.contains("'year' (named like a time stamp)"),
            "{}",
            c.reason
        );

        let mut named = t.clone();
        named
            .columns
            .insert(1, num("Label", (0..n).map(|i| (i % 2) as f64)));
        assert_eq!(infer_target(&named).unwrap().column, "Label");

        let mut last = t.clone();
        last.columns
            .push(num("quality", (0..n).map(|i| (i % 5) as f64)));
        let c = infer_target(&last).unwrap();
        assert_eq!(c.column, "quality");
        assert_eq!(c.reason, "the last column, where targets usually are");
    }

    #[test]
    fn outputs_identifiers_and_constants_are_passed_over() {
        let n = 40;
        let t = table(vec![
            num("id", (0..n).map(|i| i as f64)),
            num("feature", (0..n).map(|i| (i % 9) as f64)),
            num("work_home_actual", (0..n).map(|i| (i % 2) as f64)),
            text("period", &vec!["reference"; n]),
            num("y_pred_proba", (0..n).map(|i| i as f64 / n as f64)),
            num("y_pred", (0..n).map(|i| (i % 2) as f64)),
        ]);
        let c = infer_target(&t).unwrap();
        assert_eq!(c.column, "work_home_actual");
        for passed in [
            "'y_pred' (named like a model's output)",
            "'id' (identifier-like)",
            "'period' (constant or empty)",
        ] {
            assert!(c.reason.contains(passed), "{}", c.reason);
        }
        let none = table(vec![
            num("id", (0..n).map(|i| i as f64)),
            text("k", &vec!["x"; n]),
        ]);
        assert!(
            infer_target(&none)
                .unwrap_err()
                .to_string()
                .contains("--target")
        );
    }

    #[test]
    fn labels_join_to_their_table_by_identifier() {
        let n = 60;
        let features = table(vec![
            num("id", (0..n).map(|i| i as f64)),
            num("x", (0..n).map(|i| (i * i) as f64)),
        ]);
        // Labels for every other row, in reverse order, plus two unknown identifiers.
        let ids: Vec<f64> = (0..n)
            .rev()
            .step_by(2)
            .map(|i| i as f64)
            .chain([100.0, 101.0])
            .collect();
        let labels = table(vec![
            num("id", ids.iter().copied()),
            num("y", ids.iter().map(|i| i % 3.0)),
        ]);
        assert_eq!(labels_only(&labels), Some(("id".into(), "y".into())));
        assert_eq!(labels_only(&features), None);
        let (joined, report) = join_labels(&features, &labels).unwrap();
        assert_eq!((report.matched, report.label_rows), (30, 32));
        assert_eq!(joined.names(), vec!["id", "x", "y"]);
        for r in 0..joined.n_rows() {
            let id: f64 = joined.columns[0].values.label(r).unwrap().parse().unwrap();
            let x: f64 = joined.columns[1].values.label(r).unwrap().parse().unwrap();
            let y: f64 = joined.columns[2].values.label(r).unwrap().parse().unwrap();
            assert_eq!((x, y), (id * id, id % 3.0));
        }
        let mut repeated = features.clone();
        repeated.columns[0] = num("id", (0..n).map(|i| (i / 2) as f64));
        assert!(
            join_labels(&repeated, &labels)
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
    }
}
