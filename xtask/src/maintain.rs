//! `cargo xtask monitor --run DIR --data FILE --retrain-on-drift`: the maintenance loop.
//!
//! 1. Drift of the new rows against the run's reference (as `cargo xtask monitor`), and, where
//!    labels are known, the run's model's metric on them with a bootstrap 95% interval: a drop
//!    is confirmed when the run's own test metric lies outside that interval on the good side.
//! 2. Without drift or a confirmed drop, nothing is done. Without labelled new rows there is
//!    nothing to learn from, and that is said.
//! 3. Otherwise the labelled new rows are split in two (seeded): one half joins the run's
//!    training file, and the pipeline runs on the union (the run's seed, target and a budget
//!    given here) into `<run>/maintenance/<time>/run`. The other half is held out.
//! 4. Both models are scored on the held-out half; both runs are kept; the better one is
//!    promoted: `<run>/promoted.json` names it. The decision and its numbers are written to
//!    `<run>/maintenance/<time>/decision.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autodl_artifacts::context::splitmix64;
use autodl_artifacts::drift::DriftReference;
use autodl_artifacts::io::{read_json, write_json};
use autodl_artifacts::run::{RunManifest, paths};
use autodl_artifacts::table::{ColumnValues, MetricValue, RawColumn, RawTable};
use serde::Serialize;

/// Settings of the maintenance loop.
#[derive(Debug, Clone)]
pub struct MaintainArgs {
    pub run: PathBuf,
    pub data: PathBuf,
    pub labels: Option<PathBuf>,
    pub alpha: f64,
    pub budget_secs: f64,
}

#[derive(Debug, Serialize)]
struct Decision {
    run: String,
    data: String,
    drifted_columns: Vec<String>,
    labelled_rows: usize,
    /// The run's test metric, and the old model's on the new labelled rows with its interval.
    test_metric: MetricValue,
    recent_metric: Option<MetricValue>,
    recent_interval: Option<[f64; 2]>,
    performance_drop: bool,
    retrained: Option<Retrained>,
    promoted: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Retrained {
    run: String,
    training_rows: usize,
    added_rows: usize,
    held_out_rows: usize,
    old_metric: MetricValue,
    new_metric: MetricValue,
}

/// One column of `a` followed by the same column of `b`.
fn concat(a: &RawColumn, b: &RawColumn) -> RawColumn {
    let values = match (&a.values, &b.values) {
        (ColumnValues::Numeric(x), ColumnValues::Numeric(y)) => {
            ColumnValues::Numeric(x.iter().chain(y).copied().collect())
        }
        (x, y) => ColumnValues::Text(
            (0..x.len())
                .map(|r| x.label(r))
                .chain((0..y.len()).map(|r| y.label(r)))
                .collect(),
        ),
    };
    RawColumn {
        name: a.name.clone(),
        values,
    }
}

/// The new rows that carry a label: those of `data` whose target is present, or, when `data`
/// has no target column, the rows the labels table names (joined on their one shared column,
/// as `cargo xtask run --labels` does).
fn labelled_rows(data: &RawTable, target: &str, labels: Option<&Path>) -> Result<RawTable> {
    if let Some(y) = data.column(target) {
        let rows: Vec<usize> = (0..data.n_rows())
            .filter(|&r| !y.values.is_missing(r))
            .collect();
        return Ok(data.take(&rows));
    }
    let Some(file) = labels else {
        return Ok(RawTable { columns: vec![] });
    };
    let table = autodl_data::read_table(file)?;
    if table.column(target).is_none() {
        bail!("{} has no column '{target}'", file.display());
    }
    let (joined, report) = autodl_data::join_labels(data, &table)
        .with_context(|| format!("joining {} to the new rows", file.display()))?;
    eprintln!("labels from {}: {report}", file.display());
    Ok(joined)
}

/// The model's metric on `table` (which holds the target), and a bootstrap 95% interval.
fn metric_of(
    predictor: &autodl_deploy::Predictor,
    table: &RawTable,
    seed: u64,
) -> Result<(MetricValue, [f64; 2])> {
    let t = predictor.transform();
    let metric = t.task.metric();
    let outputs = predictor.outputs(table)?;
    let y = t.encode_target(table.column(&t.target).context("target column")?)?;
    let value = crate::pipeline::score(metric, &outputs, &y, t.target_scale());
    let n = y.len();
    let mut state = seed;
    let mut draws: Vec<f64> = (0..200)
        .map(|_| {
            let idx: Vec<usize> = (0..n)
                .map(|_| {
                    state = splitmix64(state);
                    (state % n as u64) as usize
                })
                .collect();
            let rows: Vec<f32> = idx.iter().flat_map(|&i| outputs.row(i).to_vec()).collect();
            let o = autodl_artifacts::table::Matrix::new(n, outputs.n_cols, rows);
            let yy: Vec<f32> = idx.iter().map(|&i| y[i]).collect();
            crate::pipeline::score(metric, &o, &yy, t.target_scale()).value
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    Ok((value, [draws[4], draws[194]]))
}

/// Runs the loop; prints what it did and returns whether drift or a drop was found.
pub fn run(args: &MaintainArgs) -> Result<bool> {
    let manifest: RunManifest = read_json(&args.run.join(paths::MANIFEST))
        .with_context(|| format!("{} is not a run directory", args.run.display()))?;
    let reference: DriftReference = read_json(&args.run.join(paths::DRIFT_REFERENCE))?;
    let predictor = autodl_deploy::Predictor::open(&args.run)?;
    let target = predictor.transform().target.clone();
    let data = autodl_data::read_table(&args.data)?;
    let drift = autodl_monitor::detect(
        &reference,
        &data,
        &autodl_monitor::DriftConfig { alpha: args.alpha },
    )?;
    println!(
        "drift: {} of {} columns ({})",
        drift.drifted_columns.len(),
        drift.features.len(),
        if drift.drifted_columns.is_empty() {
            "none".to_string()
        } else {
            drift.drifted_columns.join(", ")
        }
    );
    // The labelled new rows.
    let recent = labelled_rows(&data, &target, args.labels.as_deref())?;
    let test_metric = manifest.test_metric.clone();
    let higher = test_metric.name == "accuracy";
    let (recent_metric, interval) = if recent.n_rows() >= 10 {
        let (m, ci) = metric_of(&predictor, &recent, manifest.seed)?;
        println!(
            "the model on {} labelled new rows: {} {:.4} (95% interval {:.4}–{:.4}); on its test split: {:.4}",
            recent.n_rows(),
            m.name,
            m.value,
            ci[0],
            ci[1],
            test_metric.value
        );
        (Some(m), Some(ci))
    } else {
        (None, None)
    };
    let drop = interval.is_some_and(|[lo, hi]| {
        if higher {
            test_metric.value > hi
        } else {
            test_metric.value < lo
        }
    });
    let stamp = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let dir = args.run.join("maintenance").join(&stamp);
    let current = args.run.display().to_string();
    let mut decision = Decision {
        run: current.clone(),
        data: args.data.display().to_string(),
        drifted_columns: drift.drifted_columns.clone(),
        labelled_rows: recent.n_rows(),
        test_metric: test_metric.clone(),
        recent_metric,
        recent_interval: interval,
        performance_drop: drop,
        retrained: None,
        promoted: current.clone(),
        reason: String::new(),
    };
    let found = drift.drift_detected || drop;
    if !found {
        decision.reason = "no drift and no confirmed performance drop: nothing to do".into();
    } else if recent.n_rows() < 20 {
        decision.reason = format!(
            "{} but only {} labelled new rows: too few to retrain on (give labels with --labels and --id)",
            if drop { "a performance drop" } else { "drift" },
            recent.n_rows()
        );
    } else {
        // Half the labelled new rows join the training data; the other half judges.
        let mut order: Vec<usize> = (0..recent.n_rows()).collect();
        let mut state = splitmix64(manifest.seed ^ 0x6d61_696e);
        for i in (1..order.len()).rev() {
            state = splitmix64(state);
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let half = order.len() / 2;
        let (add, hold): (Vec<usize>, Vec<usize>) =
            (order[..half].to_vec(), order[half..].to_vec());
        let (add, hold) = (recent.take(&add), recent.take(&hold));
        let original_path = if manifest.data.path.starts_with("embedded:") {
            args.run.join("data/embedded-digits.csv")
        } else {
            PathBuf::from(&manifest.data.path)
        };
        let original = autodl_data::read_table(&original_path).with_context(|| {
            format!(
                "reading the run's training file {}",
                original_path.display()
            )
        })?;
        let mut columns = Vec::new();
        for c in &original.columns {
            let new = add
                .column(&c.name)
                .with_context(|| format!("the new rows lack the training column '{}'", c.name))?;
            columns.push(concat(c, new));
        }
        let union = RawTable { columns };
        std::fs::create_dir_all(&dir)?;
        let union_path = dir.join("train.parquet");
        autodl_data::write_table(&union, &union_path)?;
        eprintln!(
            "retraining on {} rows ({} from {} and {} new) for {} s",
            union.n_rows(),
            original.n_rows(),
            original_path.display(),
            add.n_rows(),
            args.budget_secs
        );
        let new_run = crate::pipeline::run(crate::pipeline::RunArgs {
            data: Some(union_path),
            target: Some(target.clone()),
            labels: None,
            test: None,
            task: Some(manifest.task),
            group_column: None,
            time_column: None,
            out: Some(dir.join("run")),
            budget_secs: args.budget_secs,
            max_trials: None,
            seed: manifest.seed,
            strategy: autodl_search::Strategy::default_evolution(),
            objective: autodl_search::Objective::default(),
            grid_g_per_kwh: autodl_criteria::DEFAULT_GRID_G_PER_KWH,
            repeats: 1,
            check_reproducibility: false,
        })?;
        let new_predictor = autodl_deploy::Predictor::open(&new_run)?;
        let (old_metric, _) = metric_of(&predictor, &hold, manifest.seed)?;
        let (new_metric, _) = metric_of(&new_predictor, &hold, manifest.seed)?;
        let better = if higher {
            new_metric.value > old_metric.value
        } else {
            new_metric.value < old_metric.value
        };
        println!(
            "on {} held-out new rows: old model {} {:.4}, retrained {:.4}: promoting the {}",
            hold.n_rows(),
            old_metric.name,
            old_metric.value,
            new_metric.value,
            if better { "retrained one" } else { "old one" }
        );
        if better {
            decision.promoted = new_run.display().to_string();
        }
        decision.reason = format!(
            "{}; retrained on the training file plus half the labelled new rows; {}",
            if drop {
                "performance drop confirmed"
            } else {
                "drift detected"
            },
            if better {
                "the retrained model scored better on the other half and is promoted"
            } else {
                "the retrained model did not score better on the other half, so the old one stays"
            }
        );
        decision.retrained = Some(Retrained {
            run: new_run.display().to_string(),
            training_rows: union.n_rows(),
            added_rows: add.n_rows(),
            held_out_rows: hold.n_rows(),
            old_metric,
            new_metric,
        });
    }
    println!("{}", decision.reason);
    std::fs::create_dir_all(&dir)?;
    write_json(&dir.join("decision.json"), &decision)?;
    write_json(
        &args.run.join("promoted.json"),
        &serde_json::json!({ "promoted": decision.promoted, "decided_by": dir.join("decision.json") }),
    )?;
    eprintln!(
        "decision: {} (promoted: {})",
        dir.join("decision.json").display(),
        decision.promoted
    );
    if decision.promoted != current && !Path::new(&decision.promoted).is_dir() {
        bail!("the promoted run {} is missing", decision.promoted);
    }
    Ok(found)
}
