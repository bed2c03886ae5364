//! End-to-end tests of `cargo xtask`: the real binary, real files, real oracles.
//!
//! Pipelines run on the small datasets in `datasets/` with a few trials so the suite stays in
//! minutes on two cores. The ONNX test installs onnx and onnxruntime into the project's oracle
//! venv (`scripts/oracle-venv.sh`) on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use autodl_artifacts::criteria::Scorecard;
use autodl_artifacts::drift::DriftReport;
use autodl_artifacts::io::read_json;
use autodl_artifacts::run::{RunManifest, paths};
use autodl_artifacts::table::{ColumnValues, Matrix, RawTable, Task};
use autodl_artifacts::transform::FeatureTransform;

#[path = "../../../test-support/oracle_venv.rs"]
mod oracle_venv;
use oracle_venv::oracle_python;

mod studies;

/// A fresh scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("autodl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn dataset(name: &str) -> PathBuf {
    repo().join("datasets").join(name)
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the xtask binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the pipeline once per dataset and keeps the run directory for the tests that inspect it.
fn run_once(cell: &'static OnceLock<PathBuf>, name: &str, args: &[&str]) -> &'static Path {
    cell.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("autodl-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_string_lossy().into_owned();
        let mut full = vec!["run", "--out", out.as_str(), "--seed", "7"];
        full.extend_from_slice(args);
        let o = xtask(&full);
        assert!(
            o.status.success(),
            "run failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        dir
    })
}

fn wine_run() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let data = dataset("wine.csv");
    let data = Box::leak(data.to_string_lossy().into_owned().into_boxed_str());
    run_once(
        &CELL,
        "wine",
        &["--data", data, "--target", "cultivar", "--max-trials", "4"],
    )
}

#[test]
fn pipeline_writes_a_complete_run_directory() {
    let run = wine_run();
    let manifest: RunManifest = read_json(&run.join(paths::MANIFEST)).unwrap();
    assert_eq!(manifest.task, Task::Multiclass);
    assert_eq!(manifest.test_metric.name, "accuracy");
    assert!(
        manifest.test_metric.value > 0.8,
        "{:?}",
        manifest.test_metric
    );
    assert_eq!(manifest.seed, 7);
    assert_eq!(manifest.data.rows, 178);
    assert!(manifest.versions.contains_key("burn") && manifest.versions.contains_key("polars"));
    // Every artifact listed exists with the recorded hash.
    for a in &manifest.artifacts {
        let hash = autodl_artifacts::io::sha256_file(&run.join(&a.path)).unwrap();
        assert_eq!(hash, a.sha256, "{}", a.path);
    }
    for rel in [
        paths::ONNX,
        paths::CRITERIA,
        paths::REPORT,
        paths::WEIGHTS,
        paths::DRIFT_REFERENCE,
    ] {
        assert!(
            manifest.artifacts.iter().any(|a| a.path == rel),
            "{rel} not listed"
        );
    }
    let card: Scorecard = read_json(&run.join(paths::CRITERIA)).unwrap();
    assert_eq!(card.criteria.len(), 10);
    // Novelty is measured: the final network's distance from the space's defaults, in [0, 1].
    match &card.criteria[0].assessment {
        autodl_artifacts::criteria::Assessment::Measured { value, method, .. } => {
            assert!((0.0..=1.0).contains(value), "{value}");
            assert!(method.contains("default"), "{method}");
        }
        other => panic!("novelty not measured: {other:?}"),
    }
    // Interpretability lists the input columns' permutation importance.
    match &card.criteria[4].assessment {
        autodl_artifacts::criteria::Assessment::Measured { details, .. } => {
            assert!(
                details.iter().any(|d| d.name.starts_with("importance of ")),
                "{details:?}"
            );
        }
        other => panic!("interpretability not measured: {other:?}"),
    }
    // Scalability is measured from fits on 25, 50 and 100% of the training rows.
    match &card.criteria[7].assessment {
        autodl_artifacts::criteria::Assessment::Measured { details, unit, .. } => {
            assert_eq!(unit, "exponent");
            assert_eq!(details.len(), 6, "{details:?}");
            assert!(details[0].name.starts_with("seconds at 25%"), "{details:?}");
        }
        other => panic!("scalability not measured: {other:?}"),
    }
    let report = std::fs::read_to_string(run.join(paths::REPORT)).unwrap();
    for section in [
        "## Result",
        "## Data profile",
        "## Search",
        "## Model",
        "## Deployment",
        "## Monitoring",
        "## The ten criteria",
    ] {
        assert!(report.contains(section), "report lacks {section}");
    }
    // No temporary files are left behind by the atomic writes.
    let leftovers: Vec<_> = walk(run)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn write_csv(path: &Path, m: &Matrix) {
    let mut s = String::new();
    for i in 0..m.n_rows {
        let row: Vec<String> = m.row(i).iter().map(|v| format!("{v:e}")).collect();
        s.push_str(&row.join(","));
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// onnx.checker accepts the export and onnxruntime's outputs equal tract's to 1e-4.
fn check_with_onnxruntime(run: &Path) {
    check_model_with_onnxruntime(run, paths::ONNX);
}

/// The same for the run's model file `rel`, fed the raw test rows: the numeric columns as
/// they are (the graph preprocesses them) and the other columns encoded.
fn check_model_with_onnxruntime(run: &Path, rel: &str) {
    let raw = autodl_data::read_table(&run.join(paths::TEST_RAW)).unwrap();
    let transform: FeatureTransform = read_json(&run.join(paths::TRANSFORM)).unwrap();
    let runner = autodl_deploy::OnnxRunner::load(&run.join(rel)).unwrap();
    let inputs = autodl_deploy::input_rows(runner.inputs(), &transform, &raw).unwrap();
    let tract = runner.run_inputs(&inputs).unwrap();
    let dir = Scratch::new(&format!(
        "oracle-{}-{}",
        run.display().to_string().len(),
        rel.len()
    ));
    let outputs = dir.path().join("tract.csv");
    write_csv(&outputs, &tract);
    let mut args = Vec::new();
    for (info, block) in runner.inputs().iter().zip(&inputs) {
        let path = dir.path().join(format!("{}.csv", info.name));
        let rows: Vec<Vec<f64>> = match block {
            autodl_deploy::InputRows::Float(m) => (0..m.n_rows)
                .map(|i| m.row(i).iter().map(|&v| f64::from(v)).collect())
                .collect(),
            autodl_deploy::InputRows::Double { n_cols, data, .. } => {
                data.chunks(*n_cols).map(<[f64]>::to_vec).collect()
            }
        };
        let text: String = rows
            .iter()
            .map(|r| {
                let r: Vec<String> = r.iter().map(|v| format!("{v:e}")).collect();
                r.join(",") + "\n"
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        args.push(format!("{}={}", info.name, path.display()));
    }
    let o = Command::new(oracle_python())
        .arg(repo().join("scripts/onnx_oracle.py"))
        .arg(run.join(rel))
        .arg(&outputs)
        .args(&args)
        .output()
        .unwrap();
    let report = text(&o.stdout);
    assert!(
        o.status.success(),
        "oracle rejected the model: {report}\n{}",
        text(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(v["checker"], "ok");
    assert_eq!(v["rows"].as_u64().unwrap() as usize, raw.n_rows());
    // The graph takes the numeric columns raw (f64); its inputs, output name, feature list
    // and the other columns' encodings travel in metadata_props.
    let meta = &v["metadata"];
    let graph_inputs: Vec<autodl_artifacts::export::GraphInput> =
        serde_json::from_str(meta["inputs"].as_str().unwrap()).unwrap();
    assert_eq!(graph_inputs[0].name, "numeric");
    assert_eq!(graph_inputs[0].columns, transform.numeric_columns());
    assert_eq!(
        graph_inputs[0].element_type,
        autodl_artifacts::export::ElementType::Double
    );
    assert_eq!(meta["output_name"], "output");
    let encodings: Vec<serde_json::Value> =
        serde_json::from_str(meta["encodings"].as_str().unwrap()).unwrap();
    assert_eq!(
        encodings.len(),
        transform.steps.iter().filter(|s| !s.is_numeric()).count()
    );
    let features: Vec<String> =
        serde_json::from_str(meta["feature_names"].as_str().unwrap()).unwrap();
    assert_eq!(features.len(), transform.n_features());
    assert!(v["max_abs_diff"].as_f64().unwrap() <= 1e-4, "{report}");
}

#[test]
fn onnx_export_passes_checker_and_matches_onnxruntime() {
    check_with_onnxruntime(wine_run());
    check_with_onnxruntime(regression_run());
    check_with_onnxruntime(default_run());
    check_with_onnxruntime(signal_run());
    // The int8-weight variant: smaller, accepted by the checker, the same on both runtimes,
    // and close to the float model. Only weight matrices and kernels become int8 (a quarter
    // of their bytes); biases, norm parameters and the per-channel scales stay float, which
    // for wine's small MLP (on seed 7 widths 256, 32, 512, with layer and batch norm) is
    // enough to leave it at 0.38 of the float file (MNIST-1D's default CNN: 0.30).
    for (run, at_most) in [(wine_run(), 0.5), (signal_run(), 1.0 / 3.0)] {
        check_model_with_onnxruntime(run, paths::ONNX_INT8);
        let exported: autodl_artifacts::export::ExportedModel =
            read_json(&run.join(paths::EXPORT)).unwrap();
        let c = exported.compressed.expect("a compressed variant");
        assert!(
            (c.bytes as f64) < at_most * c.float_bytes as f64,
            "{} of {} bytes",
            c.bytes,
            c.float_bytes
        );
        // Probabilities move by up to a few hundredths on rows near a decision boundary
        // (0.0501 for MNIST-1D's CNN on seed 7); the labels hardly move.
        assert!(c.max_abs_diff < 0.1, "{}", c.max_abs_diff);
        let manifest: RunManifest = read_json(&run.join(paths::MANIFEST)).unwrap();
        assert!(
            (c.test_metric.value - manifest.test_metric.value).abs() <= 0.005,
            "int8 {:?} against float {:?}",
            c.test_metric,
            manifest.test_metric
        );
    }
}

/// MNIST-1D: 40-sample signals, with its own test file; one CNN trial.
fn signal_run() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let leak = |p: PathBuf| &*Box::leak(p.to_string_lossy().into_owned().into_boxed_str());
    let (train, test) = (
        leak(dataset("mnist1d_train.csv")),
        leak(dataset("mnist1d_test.csv")),
    );
    run_once(
        &CELL,
        "mnist1d",
        &[
            "--data",
            train,
            "--test",
            test,
            "--target",
            "label",
            "--max-trials",
            "1",
            // Long enough for the default CNN's 60 epochs (37 s alone on a 2-core Zen 5), so
            // that the trained weights do not depend on the machine's speed.
            "--budget-secs",
            "120",
        ],
    )
}

#[test]
fn signals_are_detected_and_a_separate_test_file_is_the_test_split() {
    use autodl_artifacts::arch::{InputShape, Op};
    use autodl_artifacts::model::TrainedModel;
    use autodl_artifacts::transform::FeatureTransform;
    let run = signal_run();
    let transform: FeatureTransform = read_json(&run.join(paths::TRANSFORM)).unwrap();
    assert!(
        transform
            .decisions
            .iter()
            .any(|d| d.action == "spatial_layout" && d.column == "x0..x39"),
        "{:?}",
        transform.decisions
    );
    let model: TrainedModel = read_json(&run.join(paths::MODEL)).unwrap();
    assert_eq!(
        model.architecture.input_shape,
        InputShape::Signal {
            channels: 1,
            length: 40
        }
    );
    assert!(
        model
            .architecture
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::Conv { .. })),
        "{}",
        model.architecture.describe()
    );
    // The test split is the whole test file (1,000 rows), not a share of the training file.
    let test_raw = autodl_data::read_table(&run.join(paths::TEST_RAW)).unwrap();
    assert_eq!(test_raw.n_rows(), 1000);
    // Logistic regression reaches about 0.3 here; twenty seconds of a CNN far more.
    assert!(model.test_metric.value > 0.6, "{:?}", model.test_metric);
}

#[test]
fn successive_halving_continues_promoted_trials_in_the_pipeline() {
    use autodl_artifacts::trial::SearchHistory;
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let data = Box::leak(
        dataset("wine.csv")
            .to_string_lossy()
            .into_owned()
            .into_boxed_str(),
    );
    let run = run_once(
        &CELL,
        "wine-halving",
        &[
            "--data",
            data,
            "--target",
            "cultivar",
            "--strategy",
            "halving",
            "--max-trials",
            "9",
        ],
    );
    let h: SearchHistory = read_json(&run.join(paths::TRIALS)).unwrap();
    assert_eq!(h.strategy, "successive_halving");
    assert_eq!(h.trials.len(), 9);
    // The conventional default trains to the end at once; the others start at 3 epochs.
    let (defaults, others): (Vec<_>, Vec<_>) =
        h.trials.iter().partition(|t| t.proposed_by == "default");
    assert!(!defaults.is_empty());
    assert!(defaults.iter().all(|t| {
        let r = t.rungs.as_ref().unwrap();
        r.epochs.len() == 1 && r.why.contains("conventional default")
    }));
    let rungs: Vec<&autodl_artifacts::trial::RungLog> =
        others.iter().map(|t| t.rungs.as_ref().unwrap()).collect();
    assert!(
        rungs.iter().all(|r| r.epochs[0] <= 3 && !r.why.is_empty()),
        "{rungs:?}"
    );
    // Promoted trials went on from 3 epochs: their epoch counts grow rung by rung.
    let promoted: Vec<_> = rungs.iter().filter(|r| r.epochs.len() > 1).collect();
    assert!(!promoted.is_empty(), "{rungs:?}");
    assert!(
        promoted
            .iter()
            .all(|r| r.epochs.windows(2).all(|w| w[0] < w[1])),
        "{rungs:?}"
    );
    let manifest: RunManifest = read_json(&run.join(paths::MANIFEST)).unwrap();
    assert!(
        manifest.test_metric.value > 0.8,
        "{:?}",
        manifest.test_metric
    );
}

#[test]
fn the_bench_worker_trains_and_reports() {
    let dir = Scratch::new("bench-worker");
    let rows = 300;
    let x: Vec<u8> = (0..rows * 64)
        .flat_map(|i| (((i * 37) % 101) as f32 / 50.0 - 1.0).to_le_bytes())
        .collect();
    let y: Vec<u8> = (0..rows)
        .flat_map(|i| ((i % 10) as f32).to_le_bytes())
        .collect();
    let (xp, yp) = (dir.path().join("x.f32"), dir.path().join("y.f32"));
    std::fs::write(&xp, x).unwrap();
    std::fs::write(&yp, y).unwrap();
    let o = xtask(&[
        "bench-worker",
        "--x",
        &xp.to_string_lossy(),
        "--y",
        &yp.to_string_lossy(),
        "--epochs",
        "2",
        "--batch",
        "64",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert!(v["samples_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["final_loss"].as_f64().unwrap().is_finite(), "{v}");
    // Without PyTorch the comparison explains how to get it instead of failing obscurely.
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "train", "--rows", "300", "--epochs", "1"])
        .env("AUTODL_BENCH_VENV", dir.path().join("no-venv"))
        .env("HOME", dir.path())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("scripts/bench-venv.sh"),
        "{}",
        text(&o.stderr)
    );
}

/// `cargo xtask run` without --data: the embedded digits dataset (a trial cap keeps it short).
fn default_run() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    run_once(&CELL, "default", &["--max-trials", "2"])
}

#[test]
fn default_run_uses_the_embedded_digits() {
    let manifest: RunManifest = read_json(&default_run().join(paths::MANIFEST)).unwrap();
    assert_eq!(manifest.data.path, "embedded:digits.csv");
    assert_eq!(
        (manifest.data.rows, manifest.data.target.as_str()),
        (1797, "digit")
    );
    assert_eq!(manifest.task, Task::Multiclass);
    // The 8×8 pixels are recognised as an image, so the search proposes convolutions.
    let model: autodl_artifacts::model::TrainedModel =
        read_json(&default_run().join(paths::MODEL)).unwrap();
    assert_eq!(
        model.architecture.input_shape,
        autodl_artifacts::arch::InputShape::Image {
            channels: 1,
            height: 8,
            width: 8
        }
    );
    // Two trials are far from the default budget, yet far above chance (0.1).
    assert!(
        manifest.test_metric.value > 0.8,
        "{:?}",
        manifest.test_metric
    );
}

fn regression_run() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let data = Box::leak(
        dataset("diabetes.csv")
            .to_string_lossy()
            .into_owned()
            .into_boxed_str(),
    );
    run_once(
        &CELL,
        "diabetes",
        &[
            "--data",
            data,
            "--target",
            "progression",
            "--max-trials",
            "3",
        ],
    )
}

#[test]
fn regression_run_reports_rmse() {
    let manifest: RunManifest = read_json(&regression_run().join(paths::MANIFEST)).unwrap();
    assert_eq!(manifest.task, Task::Regression);
    assert_eq!(manifest.test_metric.name, "rmse");
    // The target's standard deviation is about 77; a model must do better than the mean.
    assert!(
        manifest.test_metric.value > 0.0 && manifest.test_metric.value < 77.0,
        "{:?}",
        manifest.test_metric
    );
}

#[test]
fn penguins_with_missing_values_and_categories() {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let data = Box::leak(
        dataset("penguins.csv")
            .to_string_lossy()
            .into_owned()
            .into_boxed_str(),
    );
    let run = run_once(&CELL, "penguins", &["--data", data, "--max-trials", "3"]);
    // No --target: the first column is chosen, the last ('year') passed over as a time stamp.
    let profile: autodl_artifacts::profile::DataProfile =
        read_json(&run.join(paths::PROFILE)).unwrap();
    assert_eq!(profile.target, "species");
    assert!(
        profile.formulation[0].contains("passed over 'year' (named like a time stamp)"),
        "{:?}",
        profile.formulation
    );
    // Small data: the three trials are cross-validated on five folds; the best mean is the model.
    let model: autodl_artifacts::model::TrainedModel = read_json(&run.join(paths::MODEL)).unwrap();
    let cv = model.cross_validation.as_ref().expect("cross-validated");
    assert_eq!((cv.folds, cv.candidates.len()), (5, 3));
    assert_eq!(cv.chosen_trial, model.trial);
    let best = cv
        .candidates
        .iter()
        .map(|c| c.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    for c in &cv.candidates {
        assert_eq!(c.fold_metrics.len(), 5);
        let mean = c.fold_metrics.iter().sum::<f64>() / 5.0;
        assert!((mean - c.mean).abs() < 1e-12);
        if c.trial == cv.chosen_trial {
            assert_eq!(c.mean, best);
        }
    }
    let report = std::fs::read_to_string(run.join(paths::REPORT)).unwrap();
    assert!(
        report.contains("cross-validation"),
        "report lacks the cross-validation"
    );
    let manifest: RunManifest = read_json(&run.join(paths::MANIFEST)).unwrap();
    assert!(
        manifest.test_metric.value > 0.9,
        "{:?}",
        manifest.test_metric
    );
    let transform: autodl_artifacts::transform::FeatureTransform =
        read_json(&run.join(paths::TRANSFORM)).unwrap();
    let names = transform.feature_names();
    assert!(
        names.contains(&"island=Biscoe".to_string()) && names.contains(&"sex=female".to_string()),
        "{names:?}"
    );
    assert!(
        transform
            .decisions
            .iter()
            .any(|d| d.action == "impute_median")
    );
}

/// `xtask <command> --run <run> --data <data> --out <out>`.
fn xtask_on(command: &str, run: &Path, data: &Path, out: &Path) -> Output {
    xtask(&[
        command,
        "--run",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn predict_reproduces_the_test_metric_from_raw_rows() {
    let run = wine_run();
    let scratch = Scratch::new("predict");
    let out = scratch.path().join("pred.csv");
    let o = xtask_on("predict", run, &run.join(paths::TEST_RAW), &out);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    let manifest: RunManifest = read_json(&run.join(paths::MANIFEST)).unwrap();
    // "accuracy on N labelled rows: X (the run's test accuracy: Y)" with X == Y.
    let line = err
        .lines()
        .find(|l| l.starts_with("accuracy on"))
        .expect(&err);
    let got: f64 = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Printed with four decimals.
    assert!((got - manifest.test_metric.value).abs() <= 5e-5, "{line}");
    // The rows carry their labels: they come first, and the rows the model gets right give
    // the printed accuracy back.
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.starts_with("cultivar,predicted_cultivar,p_0,p_1,p_2\n"),
        "{}",
        &csv[..60.min(csv.len())]
    );
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let raw = autodl_data::read_table(&run.join(paths::TEST_RAW)).unwrap();
    assert_eq!(rows.len(), raw.n_rows());
    let truth = raw.column("cultivar").unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], truth.values.label(i).unwrap());
    }
    let right = rows.iter().filter(|r| r[0] == r[1]).count();
    assert!(
        (right as f64 / rows.len() as f64 - got).abs() <= 5e-5,
        "{right} of {}",
        rows.len()
    );
    // Unlabelled rows get the same predictions, without the label column.
    let mut features = raw.clone();
    features.columns.retain(|c| c.name != "cultivar");
    let unlabelled = scratch.path().join("unlabelled.parquet");
    autodl_data::write_table(&features, &unlabelled).unwrap();
    let out2 = scratch.path().join("pred2.csv");
    let o = xtask_on("predict", run, &unlabelled, &out2);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv2 = std::fs::read_to_string(&out2).unwrap();
    let without: Vec<&str> = csv.lines().map(|l| l.split_once(',').unwrap().1).collect();
    assert_eq!(csv2.lines().collect::<Vec<_>>(), without);
}

fn monitor_report(run: &Path, data: &Path) -> DriftReport {
    let scratch = Scratch::new(&format!(
        "monitor-{}",
        data.file_name().unwrap().to_string_lossy()
    ));
    let out = scratch.path().join("drift.json");
    let o = xtask_on("monitor", run, data, &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    read_json(&out).unwrap()
}

#[test]
fn monitor_flags_nothing_on_the_test_split_and_exactly_the_shifted_features() {
    let run = wine_run();
    let raw = run.join(paths::TEST_RAW);
    let clean = monitor_report(run, &raw);
    assert!(!clean.drift_detected, "{:?}", clean.drifted_columns);
    assert_eq!(clean.features.len(), 13);
    // The test split carries its labels: the model scores there as the run reported, and
    // the score is kept beside the report (for the HTML report's generalizability table).
    let scored = Scratch::new("scored");
    let o = xtask_on("monitor", run, &raw, &scored.path().join("drift.json"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("the model on these"),
        "{}",
        text(&o.stdout)
    );
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scored.path().join("score-test_raw.json")).unwrap(),
    )
    .unwrap();
    assert!(
        (v["value"].as_f64().unwrap() - v["test_value"].as_f64().unwrap()).abs() < 1e-9,
        "{v}"
    );

    // Shift two features by two standard deviations of the test rows.
    let mut table = autodl_data::read_table(&raw).unwrap();
    let shifted = ["alcohol", "proline"];
    for c in &mut table.columns {
        if shifted.contains(&c.name.as_str())
            && let ColumnValues::Numeric(v) = &mut c.values
        {
            let s =
                autodl_artifacts::profile::NumericSummary::of(v.iter().flatten().copied()).unwrap();
            for x in v.iter_mut().flatten() {
                *x += 2.0 * s.std;
            }
        }
    }
    let scratch = Scratch::new("shifted");
    let copy = scratch.path().join("shifted.parquet");
    autodl_data::write_table(&table, &copy).unwrap();
    let report = monitor_report(run, &copy);
    assert_eq!(report.drifted_columns, shifted);

    // --fail-on-drift turns the finding into exit status 3.
    let o = xtask(&[
        "monitor",
        "--run",
        run.to_str().unwrap(),
        "--data",
        copy.to_str().unwrap(),
        "--fail-on-drift",
        "--out",
        scratch.path().join("fail.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs xtask expecting failure: exit status 1 and one line on stderr that contains `needle`,
/// with no panic and no backtrace.
fn fails_cleanly(args: &[&str], needle: &str) {
    let o = xtask(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('[') && !l.starts_with("  "))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failure_status() {
    let dir = Scratch::new("bad-input");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    };
    let out = dir.path().join("run").to_string_lossy().into_owned();
    let run = |data: &str, target: &str| {
        vec![
            "run",
            "--data",
            data,
            "--target",
            target,
            "--out",
            &out,
            "--max-trials",
            "1",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };

    let missing = dir.path().join("nope.csv").to_string_lossy().into_owned();
    fails_cleanly(&as_refs(&run(&missing, "y")), "file not found");
    let empty = write("empty.csv", "");
    fails_cleanly(&as_refs(&run(&empty, "y")), "is empty");
    let header_only = write("header.csv", "a,b,y\n");
    fails_cleanly(&as_refs(&run(&header_only, "y")), "is empty");
    let wine = dataset("wine.csv").to_string_lossy().into_owned();
    fails_cleanly(
        &as_refs(&run(&wine, "colour")),
        "target column 'colour' not found; available columns: alcohol, malic_acid",
    );
    let single = write(
        "single.csv",
        &(0..30)
            .map(|i| format!("{i},1\n"))
            .fold("x,y\n".to_string(), |a, b| a + &b),
    );
    fails_cleanly(&as_refs(&run(&single, "y")), "has a single value ('1')");
    let penguins = dataset("penguins.csv").to_string_lossy().into_owned();
    let mut regression = run(&penguins, "species");
    regression.extend(["--task".into(), "regression".into()]);
    fails_cleanly(
        &as_refs(&regression),
        "is not numeric (found 'Adelie' in row 1)",
    );
    let json = write("table.json", "{\"a\": [1, 2]}");
    fails_cleanly(&as_refs(&run(&json, "a")), "unsupported format 'json'");
    let binary = write("image.csv", "\u{0}\u{1}PNG\u{0}\u{0}");
    let o = xtask(&as_refs(&run(&binary, "y")));
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stderr).contains("panicked"));
    // An existing run is never overwritten.
    let existing = wine_run().to_string_lossy().into_owned();
    fails_cleanly(
        &[
            "run", "--data", &wine, "--target", "cultivar", "--out", &existing,
        ],
        "already holds a run; give another --out (nothing was overwritten)",
    );
    fails_cleanly(
        &[
            "predict",
            "--run",
            dir.path().to_str().unwrap(),
            "--data",
            &wine,
        ],
        "is not a run directory",
    );
}

/// `bench nas-table` trains the first networks of the cell space and writes a table that says
/// how it was made; a partial table is refused by `bench nas`, the committed full one is used.
#[test]
fn the_nas_table_is_built_and_strategies_compare_on_it() {
    let scratch = Scratch::new("nas");
    let out = scratch.path().join("table.json");
    let made = xtask(&[
        "bench",
        "nas-table",
        "--limit",
        "3",
        "--epochs",
        "2",
        "--train-rows",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(table["about"]["connected_cells"], 3927);
    assert_eq!(table["about"]["distinct_architectures"], 1065);
    assert_eq!(table["about"]["train_rows"], 200);
    assert!(
        table["about"]["command"]
            .as_str()
            .unwrap()
            .contains("--limit 3")
    );
    let archs = table["archs"].as_array().unwrap();
    assert_eq!(archs.len(), 3);
    for a in archs {
        let curve = a["valid_accuracy"].as_array().unwrap();
        assert_eq!(curve.len(), 2);
        assert!(
            curve
                .iter()
                .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap()))
        );
        assert!(a["parameters"].as_u64().unwrap() > 0);
    }
    let refused = xtask(&["bench", "nas", "--table", out.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("partial"),
        "{}",
        text(&refused.stderr)
    );

    // The committed table: every strategy runs, and the numbers are consistent.
    let report_path = scratch.path().join("nas.json");
    let bench = xtask(&[
        "bench",
        "nas",
        "--seeds",
        "3",
        "--evaluations",
        "30",
        "--out",
        report_path.to_str().unwrap(),
    ]);
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    let stdout = text(&bench.stdout);
    assert!(stdout.contains("median validation regret"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["top1_count"], 11);
    let strategies = report["strategies"].as_array().unwrap();
    let names: Vec<&str> = strategies
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    for name in [
        "random",
        "evolution (6/3)",
        "tpe (10 start-up)",
        "hyperband",
        "bohb",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    for s in strategies {
        let all = s["median_regret"].as_array().unwrap();
        assert_eq!(all.len(), 30);
        // `null` until most runs have a fully trained network, numbers after.
        let curve: Vec<f64> = all.iter().filter_map(serde_json::Value::as_f64).collect();
        assert!(!curve.is_empty());
        assert!(all[all.len() - curve.len()..].iter().all(|v| v.is_f64()));
        // The incumbent only improves: regret never rises.
        assert!(curve.windows(2).all(|w| w[1] <= w[0] + 1e-12), "{curve:?}");
        assert!(curve.iter().all(|&r| r >= 0.0));
    }
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    // A server refusing an oversized body may close before reading it all.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        // Chunk sizes in hex, each followed by its bytes.
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out += &after[..n];
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// The run's raw test rows as JSON objects keyed by column (missing values as null).
fn rows_as_json(table: &RawTable) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..table.n_rows())
        .map(|r| {
            let mut o = serde_json::Map::new();
            for c in &table.columns {
                let v = match &c.values {
                    ColumnValues::Numeric(v) => v[r].map_or(serde_json::Value::Null, |x| x.into()),
                    values => values
                        .label(r)
                        .map_or(serde_json::Value::Null, |s| s.into()),
                };
                o.insert(c.name.clone(), v);
            }
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::Value::Array(rows)
}

#[test]
fn the_server_predicts_json_and_csv_rows_and_refuses_bad_requests_clearly() {
    use std::io::BufRead;
    let run = wine_run();
    let dir = Scratch::new("serve");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "serve",
            "--run",
            &run.to_string_lossy(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args([
            "--token-file",
            &token_file.to_string_lossy(),
            "--max-body-bytes",
            "65536",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server ended before listening"
        );
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            break a.to_string();
        }
    };
    let auth = ("Authorization", "Bearer s3cret");
    let json_type = ("Content-Type", "application/json");

    assert_eq!(http(&addr, "GET", "/health", &[], b"").0, 200);
    assert_eq!(http(&addr, "GET", "/metadata", &[], b"").0, 401);
    let (status, meta) = http(&addr, "GET", "/metadata", &[auth], b"");
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["target"], "cultivar");

    // Predictions equal the run's model applied in process.
    let raw = autodl_data::read_table(&run.join(paths::TEST_RAW)).unwrap();
    let predictor = autodl_deploy::Predictor::open(run).unwrap();
    let expected = predictor.outputs(&raw).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({ "rows": rows_as_json(&raw) })).unwrap();
    assert_eq!(http(&addr, "POST", "/predict", &[json_type], &body).0, 401);
    let (status, answer) = http(&addr, "POST", "/predict", &[auth, json_type], &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), raw.n_rows());
    // The target column rides along and is ignored.
    assert_eq!(answer["ignored_columns"], serde_json::json!(["cultivar"]));
    for (i, p) in predictions.iter().enumerate() {
        let served = predictor.prediction(&expected, i);
        let autodl_deploy::Prediction::Class {
            label,
            probabilities,
        } = served
        else {
            panic!("a classifier")
        };
        assert_eq!(p["label"], label.as_str());
        for (l, q) in &probabilities.0 {
            assert!((p["probabilities"][l].as_f64().unwrap() - f64::from(*q)).abs() < 1e-6);
        }
    }
    // The same rows as CSV give the same labels.
    let mut csv = raw.names().join(",") + "\n";
    for r in 0..raw.n_rows() {
        let cells: Vec<String> = raw
            .columns
            .iter()
            .map(|c| c.values.label(r).unwrap_or_default())
            .collect();
        csv += &(cells.join(",") + "\n");
    }
    let (status, answer) = http(
        &addr,
        "POST",
        "/predict",
        &[auth, ("Content-Type", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let labels = |a: &serde_json::Value| -> Vec<String> {
        a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        labels(&answer),
        predictions
            .iter()
            .map(|p| p["label"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    // Bad requests: a clear 4xx each, never a 5xx.
    let one = rows_as_json(&raw)[0].clone();
    let first_input = predictor.inputs()[0].name.clone();
    let mut missing = one.clone();
    missing.as_object_mut().unwrap().remove(&first_input);
    let mut wrong_type = one.clone();
    wrong_type[&first_input] = "not a number".into();
    let big = vec![b' '; 100_000];
    for (body, content_type, status, needle) in [
        (
            serde_json::to_vec(&missing).unwrap(),
            "application/json",
            422,
            format!("lacks column '{first_input}'"),
        ),
        (
            serde_json::to_vec(&wrong_type).unwrap(),
            "application/json",
            422,
            format!("row 0, column '{first_input}': expected a number"),
        ),
        (
            b"{\"rows\": [".to_vec(),
            "application/json",
            400,
            "malformed JSON".to_string(),
        ),
        (
            b"[]".to_vec(),
            "application/json",
            422,
            "no rows".to_string(),
        ),
        (
            b"a,b\n1,2\n".to_vec(),
            "text/csv",
            422,
            "lacks column".to_string(),
        ),
        (
            b"<x/>".to_vec(),
            "application/xml",
            415,
            "not accepted".to_string(),
        ),
        (big, "application/json", 413, "limit".to_string()),
    ] {
        let (got, answer) = http(
            &addr,
            "POST",
            "/predict",
            &[auth, ("Content-Type", content_type)],
            &body,
        );
        assert_eq!(got, status, "{answer}");
        assert!(answer.contains(&needle), "{answer} lacks {needle}");
    }
    let (status, metrics) = http(&addr, "GET", "/metrics", &[auth], b"");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("autodl_requests_total{endpoint=\"predict\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autodl_requests_total{endpoint=\"predict\",status=\"422\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("autodl_rows_predicted_total {}", 2 * raw.n_rows())),
        "{metrics}"
    );

    // SIGTERM: the server finishes and exits cleanly.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(status.success(), "{rest}");
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn predict_streams_a_file_in_pieces_with_the_same_result() {
    let run = signal_run();
    let scratch = Scratch::new("predict-pieces");
    let data = dataset("mnist1d_train.csv");
    let whole = scratch.path().join("whole.csv");
    let pieces = scratch.path().join("pieces.csv");
    for (out, piece_mb) in [(&whole, "64"), (&pieces, "0.2")] {
        let o = xtask(&[
            "predict",
            "--run",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--piece-mb",
            piece_mb,
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // 1.35 MB in pieces of 0.2 MB: seven pieces, predicted one after another, same rows.
    let (a, b) = (
        std::fs::read_to_string(&whole).unwrap(),
        std::fs::read_to_string(&pieces).unwrap(),
    );
    assert_eq!(a.lines().count(), 4001, "a header and 4,000 rows");
    assert_eq!(b.lines().count(), 4001);
    // The same labels; probabilities equal up to the last printed digit (tract's kernels
    // may sum in another order for another batch size).
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        let (x, y): (Vec<&str>, Vec<&str>) = (x.split(',').collect(), y.split(',').collect());
        assert_eq!(x[0], y[0], "line {i}");
        for (p, q) in x[1..].iter().zip(&y[1..]) {
            if i > 0 {
                let (p, q): (f64, f64) = (p.parse().unwrap(), q.parse().unwrap());
                assert!((p - q).abs() <= 2e-6, "line {i}: {p} vs {q}");
            }
        }
    }
    // A file the model cannot read fails cleanly and leaves no output behind.
    let bad = scratch.path().join("bad.csv");
    let o = xtask_on("predict", run, &dataset("wine.csv"), &bad);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("required by the model but absent"),
        "{}",
        text(&o.stderr)
    );
    assert!(std::fs::read_dir(scratch.path()).unwrap().all(|e| {
        let name = e.unwrap().file_name();
        let name = name.to_string_lossy();
        !name.contains("bad") && !name.contains(".tmp-")
    }));
}

#[test]
fn drift_calibration_rarely_alarms_without_drift_and_always_sees_a_large_shift() {
    let dir = Scratch::new("calibration");
    let out = dir.path().join("calibration.json");
    let o = xtask(&[
        "bench",
        "calibration",
        "--data",
        &dataset("mnist1d_train.csv").to_string_lossy(),
        "--splits",
        "20",
        "--shifted-features",
        "2",
        "--shift",
        "1.0",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["splits"], 20);
    assert_eq!(v["current_rows"], 1000);
    assert_eq!(v["reference_rows"], 3000);
    // 40 columns tested at alpha 0.05 with BH: a correct test raises the overall flag in about
    // one split in twenty; far more would mean miscalibrated p-values.
    assert!(v["false_alarm_rate"].as_f64().unwrap() <= 0.15, "{v}");
    // A one-standard-deviation shift with 1,000 rows is found every time, in that column.
    let power = v["power"].as_array().unwrap();
    assert_eq!(power.len(), 2);
    for p in power {
        assert_eq!(p["power"].as_f64(), Some(1.0), "{v}");
    }
    assert!(text(&o.stdout).contains("false-alarm rate"));
}

#[test]
fn chunked_monitoring_finds_the_drifted_chunks_and_estimates_accuracy_without_labels() {
    let dir = Scratch::new("chunks");
    // x moves by one standard deviation from row 2,000 of the data on; c never moves. The
    // model's probability p is right on average (y is 1 with probability p); the data's
    // labels arrive in a separate file keyed by id, for every other row.
    let mut state = 5u64;
    let mut uniform = move || {
        state = autodl_artifacts::context::splitmix64(state);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut table = |rows: usize, shift_from: usize, ids: usize| {
        let mut csv = String::from("id,x,c,p,y\n");
        let mut labels = String::from("id,y\n");
        for r in 0..rows {
            let (u, v) = (uniform(), uniform());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            let x = z + if r >= shift_from { 1.0 } else { 0.0 };
            let c = ["a", "b", "c"][(uniform() * 3.0) as usize];
            let p = (uniform() * 100.0).round() / 100.0;
            let y = u8::from(uniform() < p);
            csv += &format!("{},{x},{c},{p},{y}\n", ids + r);
            if r % 2 == 0 {
                labels += &format!("{},{y}\n", ids + r);
            }
        }
        (csv, labels)
    };
    let (reference, _) = table(3000, usize::MAX, 0);
    let (data, labels) = table(4000, 2000, 100_000);
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("reference.csv"), reference).unwrap();
    std::fs::write(p("data.csv"), data).unwrap();
    std::fs::write(p("labels.csv"), labels).unwrap();
    let out = p("chunks.json");
    let path = |name: &str| p(name).to_string_lossy().into_owned();
    let o = xtask(&[
        "monitor",
        "--reference",
        &path("reference.csv"),
        "--data",
        &path("data.csv"),
        "--chunk-size",
        "1000",
        "--proba",
        "p",
        "--target",
        "y",
        "--labels",
        &path("labels.csv"),
        "--id",
        "id",
        "--multivariate",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: autodl_artifacts::drift::ChunkedDriftReport = read_json(&out).unwrap();
    // The joint tests agree with the per-column ones: the shifted chunks stand out, and the
    // domain classifier leans on x.
    for c in &report.chunks {
        let m = c.multivariate.as_ref().unwrap();
        if c.index >= 2 {
            assert!(m.mmd_p_value < 0.05 && m.domain_auc > 0.6, "{m:?}");
            assert_eq!(m.drivers[0].0, "x", "{m:?}");
        } else {
            assert!(m.mmd_p_value > 0.05, "{m:?}");
        }
    }
    assert_eq!(report.chunks.len(), 4);
    for c in &report.chunks {
        // Only x and c are monitored (id, p and y are skipped); x drifts from chunk 2 on.
        assert_eq!(c.report.features.len(), 2);
        let expected: Vec<String> = if c.index >= 2 {
            vec!["x".into()]
        } else {
            vec![]
        };
        assert_eq!(c.report.drifted_columns, expected, "chunk {}", c.index);
        let perf = c.performance.as_ref().unwrap();
        assert_eq!(perf.labelled_rows, 500);
        // Calibrated probabilities estimate accuracy close to what the labels show.
        let realised = perf.realised.unwrap();
        assert!((perf.estimated - realised).abs() < 0.05, "{perf:?}");
    }
    assert!(text(&o.stdout).contains("2 of 4 chunks drifted"));
    // Beside the JSON: the tables in Markdown and the plot they point to.
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("x chunk 3"),
        "{svg}"
    );
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(
        md.contains("](chunks.svg)") && md.contains("| 3 | 1000 |"),
        "{md}"
    );
    // The streaming detectors ran over the model's output and, where labels are known, its
    // errors; they report data rows, in order.
    let streams: Vec<(&str, &str)> = report
        .stream_detections
        .iter()
        .map(|s| (s.stream.as_str(), s.detector.split(' ').next().unwrap()))
        .collect();
    assert_eq!(
        streams,
        [
            ("model output", "ADWIN"),
            ("model output", "Page-Hinkley"),
            ("errors", "DDM"),
            ("errors", "ADWIN")
        ]
    );
    for s in &report.stream_detections {
        assert!(s.rows.windows(2).all(|w| w[0] < w[1]) && s.rows.iter().all(|&r| r < 4000));
    }
    // Probabilities without a reference to calibrate on are refused with a reason, and nothing
    // is written: run from the scratch directory, the default output's folder is not made.
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "monitor",
            "--reference",
            &path("reference.csv"),
            "--data",
            &path("data.csv"),
            "--proba",
            "p",
            "--target",
            "y",
        ])
        .current_dir(dir.path())
        .output()
        .expect("the xtask binary runs");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("chunk"), "{}", text(&o.stderr));
    assert!(!p("runs").exists());
}

#[test]
fn the_maintenance_loop_retrains_on_drift_keeps_both_runs_and_promotes_the_better() {
    let dir = Scratch::new("maintain");
    let run = dir.path().join("run");
    let status = Command::new("cp")
        .arg("-r")
        .arg(wine_run())
        .arg(&run)
        .status()
        .unwrap();
    assert!(status.success());
    // The wine rows, labels included, with proline moved up by 400.
    let wine = std::fs::read_to_string(dataset("wine.csv")).unwrap();
    let mut lines = wine.lines();
    let header = lines.next().unwrap();
    let k = header.split(',').position(|c| c == "proline").unwrap();
    let mut moved = String::from(header) + "\n";
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(String::from).collect();
        cells[k] = (cells[k].parse::<f64>().unwrap() + 400.0).to_string();
        moved += &(cells.join(",") + "\n");
    }
    let new = dir.path().join("new.csv");
    std::fs::write(&new, moved).unwrap();
    let monitor = |data: &Path| {
        xtask(&[
            "monitor",
            "--run",
            &run.to_string_lossy(),
            "--data",
            &data.to_string_lossy(),
            "--retrain-on-drift",
            "--retrain-budget-secs",
            "3",
        ])
    };
    let o = monitor(&new);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let decisions: Vec<PathBuf> = std::fs::read_dir(run.join("maintenance"))
        .unwrap()
        .map(|e| e.unwrap().path().join("decision.json"))
        .collect();
    assert_eq!(decisions.len(), 1);
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&decisions[0]).unwrap()).unwrap();
    assert!(
        d["drifted_columns"]
            .as_array()
            .unwrap()
            .contains(&"proline".into()),
        "{d}"
    );
    let r = &d["retrained"];
    assert_eq!(
        r["added_rows"].as_u64().unwrap() + r["held_out_rows"].as_u64().unwrap(),
        178
    );
    // Both runs are kept, and the promoted one is the one that scored better.
    let retrained = PathBuf::from(r["run"].as_str().unwrap());
    assert!(retrained.join(paths::MANIFEST).is_file());
    assert!(run.join(paths::MANIFEST).is_file());
    let (old, new_metric) = (
        r["old_metric"]["value"].as_f64().unwrap(),
        r["new_metric"]["value"].as_f64().unwrap(),
    );
    let promoted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("promoted.json")).unwrap()).unwrap();
    let expected = if new_metric > old {
        retrained.to_string_lossy().into_owned()
    } else {
        run.to_string_lossy().into_owned()
    };
    assert_eq!(promoted["promoted"], expected.as_str());
    // The training rows themselves have not drifted: nothing is retrained.
    let o = monitor(&dataset("wine.csv"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("nothing to do"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn stability_is_measured_over_repeated_runs_each_kept_in_the_run() {
    let dir = Scratch::new("repeats");
    let out = dir.path().join("run");
    let o = xtask(&[
        "run",
        "--data",
        &dataset("wine.csv").to_string_lossy(),
        "--target",
        "cultivar",
        "--max-trials",
        "2",
        "--repeats",
        "2",
        "--seed",
        "3",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.join("repeats/seed-4").join(paths::MANIFEST).is_file());
    let card: Scorecard = read_json(&out.join(paths::CRITERIA)).unwrap();
    match &card.criteria[3].assessment {
        autodl_artifacts::criteria::Assessment::Measured { value, details, .. } => {
            assert!(*value >= 0.0);
            let names: Vec<&str> = details.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["mean", "seed 3", "seed 4"]);
        }
        other => panic!("stability not measured: {other:?}"),
    }
    // --repeats 0 is refused by the argument parser.
    let o = xtask(&["run", "--repeats", "0"]);
    assert!(!o.status.success());
}

#[test]
fn compare_puts_runs_side_by_side() {
    let dir = Scratch::new("compare");
    let out = dir.path().join("compare.md");
    let o = xtask(&[
        "compare",
        &wine_run().to_string_lossy(),
        &regression_run().to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), table);
    let lines: Vec<&str> = table.lines().collect();
    // Header, rule, 7 facts, 10 criteria; a column per run.
    assert_eq!(lines.len(), 19, "{table}");
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| i == 1 || l.matches(" |").count() == 3),
        "{table}"
    );
    assert!(
        table.contains("wine.csv") && table.contains("rmse"),
        "{table}"
    );
    assert!(table.contains("| Eco-friendliness |"), "{table}");
    // One run, or a directory that is not a run, is refused with a reason.
    let o = xtask(&["compare", &wine_run().to_string_lossy()]);
    assert!(!o.status.success());
    let o = xtask(&[
        "compare",
        &wine_run().to_string_lossy(),
        &dir.path().to_string_lossy(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("is not a run directory"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn the_html_report_renders_in_headless_chromium_without_console_errors() {
    let run = default_run();
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    // One self-contained file: no scripts, no links to fetch.
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
    for part in [
        "<h2>Data profile</h2>",
        "Search progress",
        "Learning curves of the final model",
        "Confusion matrix",
        "Permutation importance",
        "The chosen architecture",
        "<h3>The ten criteria</h3>",
        "aria-label=\"the ten criteria\"",
    ] {
        assert!(html.contains(part), "report.html lacks {part}");
    }
    assert!(html.matches("<svg").count() >= 6);
    // Headless Chromium (installed by the project's script) renders it into a screenshot.
    let o = Command::new("bash")
        .arg(repo().join("scripts/chromium.sh"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = Scratch::new("report-shot");
    let png = dir.path().join("report.png");
    let o = xtask(&[
        "report",
        "--run",
        &run.to_string_lossy(),
        "--screenshot",
        &png.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("rendered without console errors"));
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        bytes.len()
    );
}

#[test]
fn two_runs_with_the_same_seed_agree_on_everything_but_time_and_energy() {
    let dir = Scratch::new("same-seed");
    let runs: Vec<PathBuf> = (0..2).map(|k| dir.path().join(format!("run{k}"))).collect();
    for run in &runs {
        let o = xtask(&[
            "run",
            "--data",
            &dataset("wine.csv").to_string_lossy(),
            "--target",
            "cultivar",
            "--max-trials",
            "3",
            "--seed",
            "5",
            "--check-reproducibility",
            "--out",
            &run.to_string_lossy(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // Each run's own check (a rerun into reproduce/) found no difference.
    let card: Scorecard = read_json(&runs[0].join(paths::CRITERIA)).unwrap();
    match &card.criteria[5].assessment {
        autodl_artifacts::criteria::Assessment::Measured {
            value,
            unit,
            details,
            ..
        } => {
            assert_eq!((*value, unit.as_str()), (0.0, "differences"), "{details:?}");
            assert!(runs[0].join("reproduce").join(paths::MANIFEST).is_file());
        }
        other => panic!("reproducibility not measured: {other:?}"),
    }
    let json = |run: &Path, rel: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(rel)).unwrap()).unwrap()
    };
    // The criteria agree except those that are timings or energy.
    let (a, b) = (
        json(&runs[0], paths::CRITERIA),
        json(&runs[1], paths::CRITERIA),
    );
    let timed = ["efficiency", "scalability", "eco_friendliness"];
    for (x, y) in a["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["criteria"].as_array().unwrap())
    {
        if !timed.contains(&x["criterion"].as_str().unwrap()) {
            assert_eq!(x, y);
        }
    }
    // The trial histories agree once their clock readings are left out.
    let strip = |mut v: serde_json::Value| {
        for t in v["trials"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            t.remove("seconds");
            t.remove("finished_at_secs");
        }
        v
    };
    assert_eq!(
        strip(json(&runs[0], paths::TRIALS)),
        strip(json(&runs[1], paths::TRIALS))
    );
    // And so do the weights and the exported model, byte for byte.
    for rel in [paths::WEIGHTS, paths::ONNX] {
        assert_eq!(
            std::fs::read(runs[0].join(rel)).unwrap(),
            std::fs::read(runs[1].join(rel)).unwrap(),
            "{rel}"
        );
    }
}
