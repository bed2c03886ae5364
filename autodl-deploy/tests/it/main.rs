//! Export parity: for random valid architectures from the search space and random weights,
//! burn (autodl-train's `predict`), tract and onnxruntime (on the exported ONNX) agree to
//! within 1e-4, and onnx.checker accepts every export. Some cases carry a random fitted
//! transform whose numeric steps the graph applies itself: those graphs take raw numbers
//! (with missing values) and one-hot features, and burn takes the transform's output.

use std::path::{Path, PathBuf};
use std::process::Command;

use autodl_artifacts::arch::{ArchitectureSpec, InputShape, Op};
use autodl_artifacts::export::OutputKind;
use autodl_artifacts::model::{NetworkWeights, WeightTensor};
use autodl_artifacts::table::{ColumnValues, Matrix, RawColumn, RawTable, Task};
use autodl_artifacts::transform::{FeatureStep, FeatureTransform, TargetEncoding};
use autodl_deploy::{
    BatchWay, ExportOptions, InputRows, OnnxRunner, input_rows, max_abs_diff, to_onnx,
    to_onnx_ensemble,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "../../../test-support/oracle_venv.rs"]
mod oracle_venv;
use oracle_venv::oracle_python;

/// Weights for every parameterised node, drawn at random (variances kept positive).
fn random_weights(spec: &ArchitectureSpec, rng: &mut ChaCha8Rng) -> NetworkWeights {
    let g = spec.validate().unwrap();
    let mut w = NetworkWeights::default();
    let mut put = |node, name: &str, shape: Vec<usize>, lo: f32, hi: f32, rng: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        w.tensors.insert(
            NetworkWeights::key(node, name),
            WeightTensor { shape, data },
        );
    };
    for (i, node) in spec.nodes.iter().enumerate() {
        let fan_in = g.inputs[i].first().map_or(0, |&j| g.widths[j]);
        let scale = 1.0 / (fan_in.max(1) as f32).sqrt();
        match node.op {
            Op::Dense { units } | Op::Output { units } => {
                put(node.id, "weight", vec![fan_in, units], -scale, scale, rng);
                put(node.id, "bias", vec![units], -0.1, 0.1, rng);
            }
            Op::Conv {
                filters, kernel, ..
            } => {
                let shape = ArchitectureSpec::conv_kernel_shape(&g, i, filters, kernel);
                let scale = 1.0 / (shape[1..].iter().product::<usize>() as f32).sqrt();
                put(node.id, "weight", shape.to_vec(), -scale, scale, rng);
                put(node.id, "bias", vec![filters], -0.1, 0.1, rng);
            }
            Op::Norm { kind } => {
                let n = g.shapes[i].channels();
                put(node.id, "gamma", vec![n], 0.5, 1.5, rng);
                put(node.id, "beta", vec![n], -0.5, 0.5, rng);
                if kind == autodl_artifacts::arch::Norm::Batch {
                    put(node.id, "running_mean", vec![n], -0.5, 0.5, rng);
                    put(node.id, "running_var", vec![n], 0.5, 2.0, rng);
                }
            }
            _ => {}
        }
    }
    w
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write_csv(path: &Path, m: &Matrix) {
    let mut s = String::new();
    for i in 0..m.n_rows {
        let row: Vec<String> = m.row(i).iter().map(|v| format!("{v:e}")).collect();
        s += &row.join(",");
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// Writes an oracle case's inputs: `NAME.x.csv` for a graph with the one input `features`,
/// else `NAME.in.INPUT.csv` per input (missing numbers as `nan`).
fn write_inputs(dir: &Path, name: &str, runner: &OnnxRunner, inputs: &[InputRows]) {
    for (info, block) in runner.inputs().iter().zip(inputs) {
        let path = if runner.inputs().len() == 1 && info.name == autodl_deploy::INPUT_NAME {
            dir.join(format!("{name}.x.csv"))
        } else {
            dir.join(format!("{name}.in.{}.csv", info.name))
        };
        match block {
            InputRows::Float(m) => write_csv(&path, m),
            InputRows::Double { n_cols, data, .. } => {
                let mut s = String::new();
                for row in data.chunks(*n_cols) {
                    let row: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
                    s += &row.join(",");
                    s.push('\n');
                }
                std::fs::write(path, s).unwrap();
            }
        }
    }
}

/// A fitted transform of `columns` raw columns, drawn at random: numeric steps (imputation,
/// standardisation, sometimes clipping and a missing indicator) and one-hot steps (sometimes
/// with an `(other)` feature), with rows for it (a fifth of the values missing, numbers
/// beyond the clip bounds, unseen categories).
fn random_transform(
    columns: usize,
    rows: usize,
    rng: &mut ChaCha8Rng,
) -> (FeatureTransform, RawTable) {
    let mut steps = Vec::new();
    let mut table = RawTable { columns: vec![] };
    for c in 0..columns {
        let column = format!("c{c}");
        let (step, values) = if c == 0 || rng.random_bool(0.7) {
            let clip = rng
                .random_bool(0.5)
                .then(|| [-rng.random_range(0.5..3.0), rng.random_range(0.5..3.0)]);
            let values = (0..rows)
                .map(|_| (!rng.random_bool(0.2)).then(|| rng.random_range(-5.0..5.0)))
                .collect();
            (
                FeatureStep::Numeric {
                    column: column.clone(),
                    impute: rng.random_range(-1.0..1.0),
                    mean: rng.random_range(-2.0..2.0),
                    std: rng.random_range(0.3..3.0),
                    clip,
                    missing_indicator: rng.random_bool(0.5),
                },
                ColumnValues::Numeric(values),
            )
        } else {
            let categories: Vec<String> = ["a", "b", "c"][..rng.random_range(1..4)]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let values = (0..rows)
                .map(|_| {
                    (!rng.random_bool(0.2))
                        .then(|| ["a", "b", "c", "unseen"][rng.random_range(0..4)].to_string())
                })
                .collect();
            (
                FeatureStep::OneHot {
                    column: column.clone(),
                    categories,
                    impute: "a".into(),
                    other: rng.random_bool(0.5),
                },
                ColumnValues::Text(values),
            )
        };
        steps.push(step);
        table.columns.push(RawColumn {
            name: column,
            values,
        });
    }
    let t = FeatureTransform {
        schema_version: autodl_artifacts::SCHEMA_VERSION,
        fitted_on_sha256: "random".into(),
        fitted_rows: rows,
        target: "y".into(),
        task: Task::Regression,
        target_encoding: TargetEncoding::Standardized {
            mean: 0.0,
            std: 1.0,
        },
        steps,
        decisions: vec![],
    };
    (t, table)
}

#[test]
fn burn_tract_and_onnxruntime_agree_on_random_architectures() {
    let cases = std::env::temp_dir().join(format!("autodl-parity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cases);
    std::fs::create_dir_all(&cases).unwrap();
    let int8_cases = cases.join("int8");
    std::fs::create_dir_all(&int8_cases).unwrap();
    let (mut worst_int8, mut quantized_tensors) = (0.0f64, 0usize);
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut ops_seen = std::collections::BTreeSet::new();
    for case in 0..60 {
        let outputs = rng.random_range(1..6);
        let rows = rng.random_range(1..50);
        // A third each: vectors, signals, square images. Half the vector cases export with a
        // random transform whose numeric steps the graph applies.
        let preprocess =
            (case % 6 == 0).then(|| random_transform(rng.random_range(1..10), rows, &mut rng));
        let (inputs, shape) = match case % 3 {
            0 => (
                preprocess
                    .as_ref()
                    .map_or_else(|| rng.random_range(1..20), |(t, _)| t.n_features()),
                InputShape::Vector,
            ),
            1 => {
                let length = rng.random_range(4..40);
                (
                    length,
                    InputShape::Signal {
                        channels: 1,
                        length,
                    },
                )
            }
            _ => {
                let side = rng.random_range(3..9);
                (
                    side * side,
                    InputShape::Image {
                        channels: 1,
                        height: side,
                        width: side,
                    },
                )
            }
        };
        let space = autodl_search::SearchSpace::for_input(inputs, shape, outputs);
        let spec = space.render(&space.sample(&mut rng));
        for n in &spec.nodes {
            let label = n.op.label();
            let base = label.split('(').next().unwrap().to_string();
            // Cells' stride-1 padded pooling is its own case.
            if label.contains(",same") {
                ops_seen.insert(format!("{base}_same"));
            }
            ops_seen.insert(base);
        }
        let weights = random_weights(&spec, &mut rng);
        let x = match &preprocess {
            Some((t, table)) => t.transform(table).unwrap(),
            None => Matrix::new(
                rows,
                inputs,
                (0..rows * inputs)
                    .map(|_| rng.random_range(-3.0f32..3.0))
                    .collect(),
            ),
        };
        let classify = outputs > 1;
        let (task, output) = if classify {
            (
                Task::Multiclass,
                OutputKind::Probabilities {
                    labels: (0..outputs).map(|k| k.to_string()).collect(),
                },
            )
        } else {
            (
                Task::Regression,
                OutputKind::StandardizedValue {
                    mean: 0.0,
                    std: 1.0,
                },
            )
        };
        let opts = ExportOptions {
            feature_names: (0..inputs).map(|k| format!("f{k}")).collect(),
            output,
            preprocess: preprocess.as_ref().map(|(t, _)| t.clone()),
        };
        let bytes = to_onnx(&spec, &weights, &opts).unwrap();
        let runner = OnnxRunner::from_bytes(&bytes).unwrap();
        let graph_in = match &preprocess {
            Some((t, table)) => {
                let blocks = input_rows(runner.inputs(), t, table).unwrap();
                assert_eq!(runner.inputs()[0].name, autodl_deploy::NUMERIC_INPUT);
                ops_seen.insert("preprocessing".into());
                blocks
            }
            None => vec![InputRows::Float(x.clone())],
        };
        let tract = runner.run_inputs(&graph_in).unwrap();
        let burn = autodl_train::predict(&spec, &weights, task, &x).unwrap();
        let diff = max_abs_diff(&tract, &burn);
        assert!(
            diff <= 1e-4,
            "case {case}: max |Δ| {diff} for {}",
            spec.describe()
        );
        let name = format!("case-{case:02}");
        // The same network with int8 weights: close to the float one, and its own parity
        // case (tract against onnxruntime on the quantized graph).
        let q = autodl_deploy::quantize_weights(&bytes).unwrap();
        let int8_runner = OnnxRunner::from_bytes(&q.bytes).unwrap();
        let int8 = int8_runner.run_inputs(&graph_in).unwrap();
        let scale = tract
            .data
            .iter()
            .map(|v| v.abs())
            .fold(0.0f32, f32::max)
            .max(1.0);
        worst_int8 = worst_int8.max(max_abs_diff(&int8, &tract) / f64::from(scale));
        quantized_tensors += q.tensors;
        std::fs::write(int8_cases.join(format!("{name}.onnx")), &q.bytes).unwrap();
        write_inputs(&int8_cases, &name, &int8_runner, &graph_in);
        write_csv(&int8_cases.join(format!("{name}.tract.csv")), &int8);
        std::fs::write(cases.join(format!("{name}.onnx")), &bytes).unwrap();
        write_inputs(&cases, &name, &runner, &graph_in);
        write_csv(&cases.join(format!("{name}.burn.csv")), &burn);
        write_csv(&cases.join(format!("{name}.tract.csv")), &tract);
    }
    eprintln!(
        "int8 weights: {quantized_tensors} tensors quantized; largest output change {worst_int8:.4} of the output's scale"
    );
    assert!(quantized_tensors >= 60, "{quantized_tensors}");
    assert!(
        worst_int8 < 0.05,
        "int8 weights moved an output by {worst_int8} of its scale"
    );
    // onnx.checker and onnxruntime on every case, against burn's and tract's outputs, and on
    // every quantized case against tract's.
    for dir in [&cases, &int8_cases] {
        let o = Command::new(oracle_python())
            .arg(repo().join("scripts/onnx_oracle.py"))
            .arg("--cases")
            .arg(dir)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "the ONNX oracle rejected cases:\n{report}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("onnx oracle: {}", report.lines().last().unwrap());
        let summary: serde_json::Value =
            serde_json::from_str(report.lines().last().unwrap()).unwrap();
        assert_eq!(
            (summary["cases"].as_u64(), summary["failed"].as_u64()),
            (Some(60), Some(0))
        );
    }
    let _ = std::fs::remove_dir_all(&cases);
    // The random cases covered every op of the search space.
    for op in [
        "dense",
        "relu",
        "gelu",
        "silu",
        "tanh",
        "layer_norm",
        "batch_norm",
        "dropout",
        "add",
        "concat",
        "output",
        "conv",
        "max_pool",
        "avg_pool",
        "avg_pool_same",
        "global_max_pool",
        "global_avg_pool",
        "flatten",
        "preprocessing",
    ] {
        assert!(ops_seen.contains(op), "no case used {op}: {ops_seen:?}");
    }
}

#[test]
fn an_ensemble_exports_as_the_mean_of_its_members() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let shape = InputShape::Signal {
        channels: 1,
        length: 12,
    };
    for (outputs, task) in [(3, Task::Multiclass), (1, Task::Regression)] {
        let space = autodl_search::SearchSpace::for_input(12, shape, outputs);
        let members: Vec<(ArchitectureSpec, NetworkWeights)> = (0..3)
            .map(|_| {
                let spec = space.render(&space.sample(&mut rng));
                let w = random_weights(&spec, &mut rng);
                (spec, w)
            })
            .collect();
        let x = Matrix::new(
            9,
            12,
            (0..9 * 12)
                .map(|_| rng.random_range(-2.0f32..2.0))
                .collect(),
        );
        let output = if outputs > 1 {
            OutputKind::Probabilities {
                labels: vec!["a".into(), "b".into(), "c".into()],
            }
        } else {
            OutputKind::StandardizedValue {
                mean: 0.0,
                std: 1.0,
            }
        };
        let opts = ExportOptions {
            feature_names: (0..12).map(|k| format!("x{k}")).collect(),
            output,
            preprocess: None,
        };
        let refs: Vec<(&ArchitectureSpec, &NetworkWeights)> =
            members.iter().map(|(s, w)| (s, w)).collect();
        let bytes = to_onnx_ensemble(&refs, &opts).unwrap();
        let tract = OnnxRunner::from_bytes(&bytes).unwrap().run(&x).unwrap();
        let mut mean = vec![0.0f32; x.n_rows * outputs];
        for (spec, w) in &members {
            let p = autodl_train::predict(spec, w, task, &x).unwrap();
            for (m, v) in mean.iter_mut().zip(&p.data) {
                *m += v / members.len() as f32;
            }
        }
        let diff = max_abs_diff(&tract, &Matrix::new(x.n_rows, outputs, mean));
        assert!(diff <= 1e-4, "{task:?}: max |Δ| {diff}");
    }
}

#[test]
fn missing_or_misshapen_weights_are_errors() {
    let spec = ArchitectureSpec::mlp(3, &[4], autodl_artifacts::arch::Activation::Relu, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut weights = random_weights(&spec, &mut rng);
    let opts = ExportOptions {
        feature_names: vec!["a".into(), "b".into(), "c".into()],
        output: OutputKind::StandardizedValue {
            mean: 0.0,
            std: 1.0,
        },
        preprocess: None,
    };
    weights.tensors.get_mut("n1.weight").unwrap().shape = vec![4, 3];
    assert!(
        to_onnx(&spec, &weights, &opts)
            .unwrap_err()
            .to_string()
            .contains("n1.weight")
    );
    weights.tensors.remove("n1.weight");
    assert!(
        to_onnx(&spec, &weights, &opts)
            .unwrap_err()
            .to_string()
            .contains("missing")
    );
    let good = random_weights(&spec, &mut rng);
    let runner = OnnxRunner::from_bytes(&to_onnx(&spec, &good, &opts).unwrap()).unwrap();
    assert!(runner.run(&Matrix::new(1, 2, vec![0.0, 0.0])).is_err());
}

#[test]
fn every_plan_gives_the_same_rows_and_threads_can_share_a_runner() {
    // tract plans one batch size per plan after a size repeats, a single row on load, and any
    // size in general; all must give the same rows, also when several threads call at once.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let shape = InputShape::Image {
        channels: 1,
        height: 6,
        width: 6,
    };
    let space = autodl_search::SearchSpace::for_input(36, shape, 4);
    let genome = space
        .defaults()
        .into_iter()
        .find(|g| !g.convs.is_empty())
        .expect("a convolutional default");
    let spec = space.render(&genome);
    let weights = random_weights(&spec, &mut rng);
    let opts = ExportOptions {
        feature_names: (0..36).map(|k| format!("x{k}")).collect(),
        output: OutputKind::Probabilities {
            labels: (0..4).map(|k| k.to_string()).collect(),
        },
        preprocess: None,
    };
    let bytes = to_onnx(&spec, &weights, &opts).unwrap();
    let rows = 16;
    let x = Matrix::new(
        rows,
        36,
        (0..rows * 36)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect(),
    );
    let block = |lo: usize, hi: usize| Matrix::new(hi - lo, 36, x.data[lo * 36..hi * 36].to_vec());
    let measured = OnnxRunner::from_bytes(&bytes).unwrap();
    // The reference: every row alone (the single-row plan).
    let mut reference = Vec::new();
    for i in 0..rows {
        reference.extend(measured.run(&block(i, i + 1)).unwrap().data);
    }
    let expect = |lo: usize, hi: usize| Matrix::new(hi - lo, 4, reference[lo * 4..hi * 4].to_vec());
    let pinned = [BatchWay::SizedPlan, BatchWay::RowByRow]
        .map(|way| OnnxRunner::from_bytes(&bytes).unwrap().with_batch_way(way));
    for runner in [&measured, &pinned[0], &pinned[1]] {
        // Each size's first call runs the general plan, the second makes the size's way (and
        // on `measured` times both); sizes 2 to 16 are more than a runner keeps ways for, so
        // the last ones stay on the general plan.
        for _ in 0..3 {
            for n in 2..=rows {
                let diff = max_abs_diff(&runner.run(&block(0, n)).unwrap(), &expect(0, n));
                assert!(diff <= 1e-5, "{n} rows: max |Δ| {diff}");
            }
        }
        let ways = runner.batch_ways();
        assert_eq!(
            ways.iter().map(|w| w.0).collect::<Vec<_>>(),
            (2..10).collect::<Vec<_>>()
        );
        std::thread::scope(|s| {
            for t in 0..4 {
                let (block, expect) = (&block, &expect);
                s.spawn(move || {
                    for k in 0..40 {
                        let (lo, n) = ((t + k) % 5, [1, 3, 6, 11][k % 4]);
                        let got = runner.run(&block(lo, lo + n)).unwrap();
                        let diff = max_abs_diff(&got, &expect(lo, lo + n));
                        assert!(diff <= 1e-5, "thread {t}, rows {lo}..{}: {diff}", lo + n);
                    }
                });
            }
        });
    }
    for (runner, way) in pinned.iter().zip([BatchWay::SizedPlan, BatchWay::RowByRow]) {
        assert!(runner.batch_ways().iter().all(|w| w.1 == way));
    }
}
