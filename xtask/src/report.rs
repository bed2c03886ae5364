//! The human-readable `report.md` of a run.

use std::fmt::Write;

use autodl_artifacts::criteria::{Assessment, Scorecard};
use autodl_artifacts::drift::DriftReport;
use autodl_artifacts::export::ExportedModel;
use autodl_artifacts::model::TrainedModel;
use autodl_artifacts::profile::{ColumnKind, DataProfile};
use autodl_artifacts::run::RunManifest;
use autodl_artifacts::transform::FeatureTransform;
use autodl_artifacts::trial::{SearchHistory, TrialOutcome};

/// Everything the report shows.
pub struct ReportInput<'a> {
    pub manifest: &'a RunManifest,
    pub profile: &'a DataProfile,
    pub transform: &'a FeatureTransform,
    pub history: &'a SearchHistory,
    pub model: &'a TrainedModel,
    pub exported: &'a ExportedModel,
    pub test_drift: &'a DriftReport,
    pub scorecard: &'a Scorecard,
    pub warnings: &'a [String],
}

fn num(x: f64) -> String {
    if x == 0.0 || (x.abs() >= 1e-3 && x.abs() < 1e6) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// Text from the data (names, categories) made safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A measured value in its unit: counts and flags as integers, other values as [`num`].
fn with_unit(x: f64, unit: &str) -> String {
    let integral = matches!(unit, "" | "bool" | "parameters") && x.fract() == 0.0 && x.abs() < 1e15;
    let value = if integral {
        format!("{}", x as i64)
    } else {
        num(x)
    };
    if unit.is_empty() {
        value
    } else {
        format!("{value} {unit}")
    }
}

/// Score against `cost`: the Pareto front as a table, and a scatter plot (cost on a log scale).
fn tradeoff(
    s: &mut String,
    h: &SearchHistory,
    (title, unit): (&str, &str),
    cost: impl Fn(&autodl_artifacts::trial::TrialRecord) -> f64,
) {
    let front = autodl_search::analysis::pareto_front_by(h, &cost);
    let done: Vec<&autodl_artifacts::trial::TrialRecord> = h
        .trials
        .iter()
        .filter(|t| t.outcome.score().is_some_and(f64::is_finite))
        .collect();
    if done.len() >= 2 {
        let _ = writeln!(
            s,
            "\n### Accuracy against {title}\n\nThe Pareto front: no other trial has both fewer \
             {unit} and a better selection score (the validation metric, ties broken by validation \
             cross-entropy).\n\n| trial | {unit} | validation | score | architecture |\n|---|---|---|---|---|"
        );
        for id in &front {
            let t = done
                .iter()
                .find(|t| t.trial == *id)
                .expect("front trials completed");
            let value = match &t.outcome {
                TrialOutcome::Completed { valid_metric, .. } => num(valid_metric.value),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {value} | {:.6} | {} |",
                t.trial,
                cost(t),
                t.outcome.score().unwrap_or(f64::NAN),
                t.architecture.describe()
            );
        }
        // A scatter plot: parameters on a log scale across, score up; ● marks the front.
        let (w, rows) = (60usize, 12usize);
        let xs: Vec<f64> = done.iter().map(|t| cost(t).max(1.0).ln()).collect();
        let ys: Vec<f64> = done
            .iter()
            .map(|t| t.outcome.score().unwrap_or(0.0))
            .collect();
        let span = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, if hi > lo { hi - lo } else { 1.0 })
        };
        let ((x0, xr), (y0, yr)) = (span(&xs), span(&ys));
        let mut grid = vec![vec![' '; w]; rows];
        for (k, t) in done.iter().enumerate() {
            let c = (((xs[k] - x0) / xr) * (w - 1) as f64).round() as usize;
            let r = rows - 1 - (((ys[k] - y0) / yr) * (rows - 1) as f64).round() as usize;
            let on_front = front.contains(&t.trial);
            if on_front || grid[r][c] == ' ' {
                grid[r][c] = if on_front { '●' } else { '·' };
            }
        }
        let _ = writeln!(s, "\n```\nscore {:.4}", y0 + yr);
        for row in grid {
            let _ = writeln!(s, "  │{}", row.into_iter().collect::<String>());
        }
        let _ = writeln!(
            s,
            "  └{}\nscore {:.4} · {unit} {} … {} (log scale)\n```",
            "─".repeat(w),
            y0,
            x0.exp().round(),
            (x0 + xr).exp().round()
        );
    }
}

/// The accuracy–size and accuracy–inference-cost trade-offs (Pareto fronts and scatter plots)
/// and the factors' importance.
fn search_analysis(s: &mut String, h: &SearchHistory) {
    let done: Vec<&autodl_artifacts::trial::TrialRecord> = h
        .trials
        .iter()
        .filter(|t| t.outcome.score().is_some_and(f64::is_finite))
        .collect();
    tradeoff(s, h, ("size", "parameters"), |t| t.parameters as f64);
    tradeoff(s, h, ("inference cost", "multiply-adds"), |t| t.macs as f64);
    let importance = autodl_search::analysis::importance(h);
    if !importance.is_empty() {
        let _ = writeln!(
            s,
            "\n### What mattered\n\nShare of the variance of the validation score explained by each \
             factor alone (correlation ratio η² over {} completed trials; continuous factors cut at \
             their quartiles). A first-order reading: interactions are not separated, and factors with \
             more levels look stronger on few trials.\n\n| factor | η² | levels |\n|---|---|---|",
            done.len()
        );
        for i in importance {
            let _ = writeln!(
                s,
                "| {} | {:.3} {} | {} |",
                i.factor,
                i.eta_squared,
                bar(i.eta_squared, 20),
                i.levels
            );
        }
    }
}

/// A text bar of `width` characters for a value in [0, 1].
fn bar(fraction: f64, width: usize) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "·".repeat(width - filled))
}

/// Renders the report as Markdown.
pub fn render(r: &ReportInput<'_>) -> String {
    let m = r.manifest;
    let mut s = String::new();
    let metric = &m.test_metric.name;
    let _ = writeln!(s, "# autodl run `{}`\n", m.run_id);
    let _ = writeln!(
        s,
        "Data `{}` ({} rows × {} columns, sha256 `{}`), target `{}`: **{}**. Seed {}.\n",
        m.data.path,
        m.data.rows,
        m.data.columns,
        &m.data.sha256[..12.min(m.data.sha256.len())],
        m.data.target,
        m.task,
        m.seed
    );

    let _ = writeln!(s, "## Result\n");
    let _ = writeln!(
        s,
        "| model | test {metric} | validation {metric} |\n|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| autodl network (trial {}) | **{}** | {} |",
        r.model.trial,
        num(m.test_metric.value),
        num(r.model.valid_metric.value)
    );
    if let Some(b) = &r.model.baseline {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            b.name,
            num(b.test_metric.value),
            num(b.valid_metric.value)
        );
    }
    let _ = writeln!(s);
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "**Warnings**\n");
        for w in r.warnings {
            let _ = writeln!(s, "- {w}");
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Data profile\n");
    s.push_str(&profile_markdown(r.profile, Some(r.transform)));

    let h = r.history;
    let (done, diverged, failed) = h.counts();
    let _ = writeln!(s, "## Search\n");
    let _ = writeln!(
        s,
        "Strategy `{}`; {} trials ({} completed, {} diverged, {} failed); stopped: {}.\n",
        h.strategy,
        h.trials.len(),
        done,
        diverged,
        failed,
        h.stopped_because
    );
    let _ = writeln!(
        s,
        "Best so far, by trial. Selection maximises the score: the validation metric, with ties \
         broken by validation cross-entropy for classification.\n\n```"
    );
    let mut best = f64::NEG_INFINITY;
    let scores: Vec<f64> = h.trials.iter().filter_map(|t| t.outcome.score()).collect();
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    for t in &h.trials {
        if let Some(sc) = t.outcome.score()
            && sc > best
        {
            best = sc;
            let frac = if hi > lo { (sc - lo) / (hi - lo) } else { 1.0 };
            let metric = match &t.outcome {
                TrialOutcome::Completed { valid_metric, .. } => {
                    format!("{} {}", valid_metric.name, num(valid_metric.value))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "trial {:>4} at {:>6.1} s  {}  {metric}  (score {sc:.6})",
                t.trial,
                t.finished_at_secs,
                bar(frac, 30)
            );
        }
    }
    let _ = writeln!(s, "```\n");
    let mut ranked: Vec<_> = h
        .trials
        .iter()
        .filter(|t| t.outcome.score().is_some())
        .collect();
    ranked.sort_by(|a, b| {
        b.outcome
            .score()
            .unwrap()
            .total_cmp(&a.outcome.score().unwrap())
    });
    let _ = writeln!(
        s,
        "Top trials:\n\n| trial | validation | params | training | epochs | architecture | proposed by |\n|---|---|---|---|---|---|---|"
    );
    for t in ranked.iter().take(8) {
        let TrialOutcome::Completed {
            valid_metric,
            epochs,
            ..
        } = &t.outcome
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {}{} |",
            t.trial,
            num(valid_metric.value),
            t.parameters,
            t.hyperparams.describe(),
            epochs,
            t.architecture.describe(),
            t.proposed_by,
            t.mutation
                .as_ref()
                .map_or(String::new(), |m| format!(" ({m})"))
                + &t.rungs.as_ref().map_or(String::new(), |r| {
                    let path: Vec<String> = r.epochs.iter().map(usize::to_string).collect();
                    format!("; epochs {}: {}", path.join(" → "), r.why)
                })
        );
    }

    search_analysis(&mut s, h);

    let _ = writeln!(s, "\n## Model\n");
    let hp = &r.model.hyperparams;
    let _ = writeln!(
        s,
        "Best network (trial {}): `{}`, {} parameters. Training: {}, weight decay {:.2e}, {}.\n",
        r.model.trial,
        r.model.architecture.describe(),
        r.model.architecture.parameter_count().unwrap_or(0),
        hp.describe(),
        hp.weight_decay,
        if hp.early_stopping() {
            format!(
                "up to {} epochs with patience {}",
                hp.max_epochs, hp.patience
            )
        } else {
            format!("{} epochs (no early stopping)", hp.max_epochs)
        }
    );
    if let Some(cv) = &r.model.cross_validation {
        let _ = writeln!(
            s,
            "Small data: the best {} candidates were retrained on each of {} cross-validation \
             folds (each fold's transform refitted on its own training rows); the best mean \
             held-out {metric} chose the model.\n\n| trial | search validation | fold mean | fold std | folds |\n|---|---|---|---|---|",
            cv.candidates.len(),
            cv.folds
        );
        for c in &cv.candidates {
            let mark = if c.trial == cv.chosen_trial {
                " ← chosen"
            } else {
                ""
            };
            let folds: Vec<String> = c.fold_metrics.iter().map(|x| num(*x)).collect();
            let _ = writeln!(
                s,
                "| {}{mark} | {} | {} | {} | {} |",
                c.trial,
                num(c.search_valid),
                num(c.mean),
                num(c.std),
                folds.join(" · ")
            );
        }
        let _ = writeln!(s);
    }
    if let Some(e) = &r.model.ensemble {
        let _ = writeln!(
            s,
            "Ensembles: the mean of the k best networks' outputs, on validation. The best {metric} \
             is kept, and where sizes tie, the largest (the score, which breaks ties by \
             validation cross-entropy as in the search, is shown but does not decide).\n\n\
             | k | validation {metric} | score |\n|---|---|---|"
        );
        for (k, value, score) in &e.sizes {
            let mark = if *k == e.chosen_size { " ← kept" } else { "" };
            let _ = writeln!(s, "| {k}{mark} | {} | {score:.6} |", num(value.value));
        }
        let _ = writeln!(
            s,
            "\n{}\n",
            if e.kept {
                format!(
                    "The ensemble of {} (trials {}) is at least as good on validation as the \
                     best single network and is the deployed model; {} parameters in all.",
                    e.chosen_size,
                    e.member_trials(),
                    r.model.parameters
                )
            } else {
                "Every ensemble scored below the best single network on validation; the single \
                 network is deployed."
                    .into()
            }
        );
    }
    let _ = writeln!(s, "Learning curve (validation {metric}):\n\n```");
    let vals: Vec<f64> = r.model.history.iter().map(|e| e.valid_metric).collect();
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let step = r.model.history.len().div_ceil(25).max(1);
    for e in r.model.history.iter().step_by(step) {
        let frac = if hi > lo {
            (e.valid_metric - lo) / (hi - lo)
        } else {
            1.0
        };
        let _ = writeln!(
            s,
            "epoch {:>4}  loss {:>8.4}  {}  {}",
            e.epoch,
            e.train_loss,
            bar(frac, 30),
            num(e.valid_metric)
        );
    }
    let _ = writeln!(s, "```\n");

    let p = &r.exported.parity;
    let _ = writeln!(s, "## Deployment\n");
    let _ = writeln!(
        s,
        "`{}` (ONNX IR {}, opset {}; output `{}`{}). {} and {} agree on the {} ({} rows) to max |Δ| = {:.2e} (tolerance {:e}): **{}**.\n",
        r.exported.onnx_path,
        r.exported.ir_version,
        r.exported.opset,
        r.exported.output_name,
        r.exported
            .value_output_name
            .as_ref()
            .map_or(String::new(), |v| format!(
                ", and `{v}` in the target's units"
            )),
        p.runtime,
        p.reference,
        p.rows_from,
        p.rows,
        p.max_abs_diff,
        p.tolerance,
        if p.passed { "passed" } else { "FAILED" }
    );
    let _ = writeln!(
        s,
        "| graph input | type | columns | what goes in |\n|---|---|---:|---|"
    );
    for i in &r.exported.inputs {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            i.name,
            match i.element_type {
                autodl_artifacts::export::ElementType::Float => "f32",
                autodl_artifacts::export::ElementType::Double => "f64",
            },
            i.columns.len(),
            i.description
        );
    }
    let _ = writeln!(s);
    if let Some(c) = &r.exported.compressed {
        let _ = writeln!(
            s,
            "Compressed for choice: `{}` ({}).\n\n| model | bytes | test {} | single-row latency (tract) |\n|---|---:|---:|---:|\n| `{}` (float) | {} | {} | {:.0} µs |\n| `{}` | {} ({:.2}×) | {} | {:.0} µs |\n\nLargest output difference from the float model on the test split: {:.2e}. tract folds the dequantization into the weights at load, so the compressed model is smaller on disk but not faster.\n",
            c.onnx_path,
            c.method,
            c.test_metric.name,
            r.exported.onnx_path,
            c.float_bytes,
            num(r.manifest.test_metric.value),
            c.latency_us[1],
            c.onnx_path,
            c.bytes,
            c.bytes as f64 / c.float_bytes as f64,
            num(c.test_metric.value),
            c.latency_us[0],
            c.max_abs_diff
        );
    }

    let d = r.test_drift;
    let _ = writeln!(s, "## Monitoring\n");
    let _ = writeln!(
        s,
        "Drift reference: the training split. Self-check, test split against it: {} of {} features drifted ({}).\n",
        d.drifted_columns.len(),
        d.features.len(),
        d.method
    );
    let mut most: Vec<_> = d.features.iter().collect();
    most.sort_by(|a, b| a.p_adjusted.total_cmp(&b.p_adjusted));
    let _ = writeln!(
        s,
        "| column | test | statistic | p (BH) | PSI | Jensen–Shannon | Wasserstein | drift |\n|---|---|---|---|---|---|---|---|"
    );
    for f in most.iter().take(10) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&f.column),
            f.test,
            num(f.statistic),
            num(f.p_adjusted),
            num(f.psi),
            num(f.jensen_shannon),
            f.wasserstein.map_or("–".to_string(), num),
            if f.drifted { "yes" } else { "no" }
        );
    }

    let _ = writeln!(s, "\n## The ten criteria\n");
    let _ = writeln!(s, "| criterion | value | method or reason |\n|---|---|---|");
    for e in &r.scorecard.criteria {
        match &e.assessment {
            Assessment::Measured {
                value,
                unit,
                method,
                details,
            } => {
                let extra: Vec<String> = details
                    .iter()
                    .map(|d| format!("{} {}", d.name, with_unit(d.value, &d.unit)))
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {}{} |",
                    e.criterion.title(),
                    with_unit(*value, unit),
                    method,
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", extra.join("; "))
                    }
                );
            }
            Assessment::NotMeasured { reason } => {
                let _ = writeln!(s, "| {} | not measured | {} |", e.criterion.title(), reason);
            }
        }
    }

    let _ = writeln!(s, "\n## Environment and artifacts\n");
    let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "{}\n", versions.join(" · "));
    let _ = writeln!(s, "| stage | seconds |\n|---|---|");
    for (k, v) in &m.stage_seconds {
        let _ = writeln!(s, "| {k} | {v:.2} |");
    }
    let _ = writeln!(s, "\n| artifact | path | bytes |\n|---|---|---|");
    for a in &m.artifacts {
        let _ = writeln!(s, "| {} | `{}` | {} |", a.kind, a.path, a.bytes);
    }
    s
}

/// The data profile and the cleaning decisions as Markdown: task, class balance, one row per
/// column (kind, missing, distinct, flags, summary), duplicates, then every decision with its
/// reason. Shared by the run report and `cargo xtask data`.
pub fn profile_markdown(profile: &DataProfile, transform: Option<&FeatureTransform>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} rows × {} columns. Task inferred: {} ({}).\n",
        profile.n_rows,
        profile.columns.len(),
        profile.task,
        profile.task_reason
    );
    for note in &profile.formulation {
        let _ = writeln!(s, "- {note}");
    }
    if let Some(n) = profile.sampled_rows {
        let _ = writeln!(
            s,
            "- streamed over every row; top categories, duplicates and the leak check describe a uniform sample of {n} rows, and outliers are estimated from it"
        );
    }
    if !profile.formulation.is_empty() || profile.sampled_rows.is_some() {
        let _ = writeln!(s);
    }
    if !profile.class_counts.is_empty() {
        let total: usize = profile.class_counts.iter().map(|(_, n)| n).sum();
        let _ = writeln!(s, "| class | rows | share |\n|---|---|---|");
        for (label, n) in &profile.class_counts {
            let share = *n as f64 / total.max(1) as f64;
            let _ = writeln!(
                s,
                "| {} | {n} | {} {:.1}% |",
                cell(label),
                bar(share, 20),
                share * 100.0
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "| column | kind | missing | distinct | flags | alone → target | summary |\n|---|---|---|---|---|---|---|"
    );
    for c in &profile.columns {
        let summary = match (&c.kind, &c.numeric) {
            (ColumnKind::Numeric | ColumnKind::Boolean, Some(n)) => format!(
                "min {} · max {} · mean {} · std {}",
                num(n.min),
                num(n.max),
                num(n.mean),
                num(n.std)
            ),
            _ => c
                .top_categories
                .iter()
                .take(5)
                .map(|(k, n)| format!("{} ({n})", cell(k)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut flags = Vec::new();
        if c.name == profile.target {
            flags.push("target".to_string());
        }
        if c.constant {
            flags.push("constant".into());
        } else if c.near_constant {
            flags.push(format!(
                "near-constant ({:.1}% one value)",
                c.top_share * 100.0
            ));
        }
        if c.id_like {
            flags.push("ID-like".into());
        }
        if c.outliers > 0 {
            flags.push(format!("{} outliers", c.outliers));
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} ({:.1}%) | {} | {} | {} | {} |",
            cell(&c.name),
            c.kind,
            c.missing,
            c.missing_share * 100.0,
            c.distinct,
            flags.join(", "),
            c.alone_predicts_target.map_or(String::new(), num),
            summary
        );
    }
    let _ = writeln!(
        s,
        "\n\"alone → target\": how well the column alone predicts the target on rows it was not \
         fitted on (accuracy, or R² for regression); near 1 means a leak. {} duplicate rows{}.\n",
        profile.duplicate_rows,
        profile
            .test_rows_also_in_train
            .map_or(String::new(), |n| format!(
                "; {n} test rows repeat a training row's features"
            ))
    );
    let Some(transform) = transform else {
        return s;
    };
    let _ = writeln!(s, "### Cleaning decisions\n");
    if transform.decisions.is_empty() {
        let _ = writeln!(
            s,
            "None needed: no missing values, constant, ID-like, leaking or categorical columns.\n"
        );
    } else {
        let _ = writeln!(s, "| column | action | reason |\n|---|---|---|");
        for d in &transform.decisions {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&d.column),
                d.action,
                cell(&d.reason)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "{} input columns become {} features.\n",
        transform.steps.len(),
        transform.n_features()
    );
    s
}
