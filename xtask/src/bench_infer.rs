//! `cargo xtask bench infer`: tract against onnxruntime on the same `.onnx` files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use autodl_artifacts::arch::InputShape;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::export::OutputKind;
use autodl_artifacts::table::{Matrix, SplitData, Task};
use autodl_deploy::InputRows;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::bench::{bench_python, median, parse_last_json};

/// Settings of `cargo xtask bench infer`.
#[derive(Debug, Clone)]
pub struct InferBenchArgs {
    /// A run whose `model.onnx` is measured; without it, the search space's two default
    /// networks for 8×8 images (an MLP and a CNN), trained for one epoch on random data.
    pub run: Option<PathBuf>,
    pub threads: usize,
    pub singles: usize,
    pub batches: usize,
    pub repeats: usize,
    pub python: Option<PathBuf>,
    pub out: PathBuf,
}

/// One side's figures for one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Speed {
    runtime: String,
    batch1_median_us: f64,
    batch1_p99_us: f64,
    batch1024_rows_per_s: f64,
}

#[derive(Debug, Serialize)]
struct ModelResult {
    model: String,
    onnx: String,
    n_features: usize,
    tract: Vec<Speed>,
    onnxruntime: Vec<Speed>,
    /// onnxruntime's median batch-1 latency over tract's (above 1: tract is faster).
    batch1_median_ratio: f64,
    /// The same for the 99th percentile.
    batch1_p99_ratio: f64,
    /// tract's batch-1024 throughput over onnxruntime's (above 1: tract is faster).
    batch1024_throughput_ratio: f64,
}

/// The `q`-quantile with linear interpolation between order statistics (numpy's default).
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// tract's side, with onnxruntime's protocol (`scripts/bench_infer.py`): `inputs` holds the
/// rows of each graph input.
fn measure_tract(
    onnx: &Path,
    inputs: &[InputRows],
    singles: usize,
    batches: usize,
) -> Result<Speed> {
    let runner = autodl_deploy::OnnxRunner::load(onnx)?;
    let n = inputs[0].n_rows();
    let rows: Vec<Vec<InputRows>> = (0..n)
        .map(|i| inputs.iter().map(|b| b.rows(i..i + 1)).collect())
        .collect();
    for i in 0..50 {
        runner.run_inputs(&rows[i % rows.len()])?;
    }
    let mut times = Vec::with_capacity(singles);
    for i in 0..singles {
        let row = &rows[i % rows.len()];
        let t = Instant::now();
        runner.run_inputs(row)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let block: Vec<InputRows> = inputs.iter().map(|b| b.rows(0..1024)).collect();
    // Twice: the runner makes its plan for 1,024 rows on the second call of that size.
    runner.run_inputs(&block)?;
    runner.run_inputs(&block)?;
    let t = Instant::now();
    for _ in 0..batches {
        runner.run_inputs(&block)?;
    }
    let elapsed = t.elapsed().as_secs_f64();
    Ok(Speed {
        runtime: format!(
            "tract {}",
            crate::machine::versions()
                .get("tract-onnx")
                .cloned()
                .unwrap_or_default()
        ),
        batch1_median_us: quantile(times.clone(), 0.5),
        batch1_p99_us: quantile(times, 0.99),
        batch1024_rows_per_s: 1024.0 * batches as f64 / elapsed,
    })
}

/// The conventional MLP and the default CNN for 8×8 images, exported after one epoch of training
/// on random data (the weights' values do not change the speed).
fn default_models(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let shape = InputShape::Image {
        channels: 1,
        height: 8,
        width: 8,
    };
    let space = autodl_search::SearchSpace::for_input(64, shape, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut split = |rows: usize| SplitData {
        x: Matrix::new(
            rows,
            64,
            (0..rows * 64)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect(),
        ),
        y: (0..rows).map(|i| (i % 10) as f32).collect(),
    };
    let (train, valid) = (split(512), split(128));
    let data = autodl_train::TrainData {
        task: Task::Multiclass,
        n_outputs: 10,
        target_scale: 1.0,
        train: &train,
        valid: &valid,
    };
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    // The conventional MLP and the space's defaults (for images, the CNN).
    let mut genomes = vec![space.default_mlp()];
    genomes.extend(space.defaults().into_iter().filter(|g| !g.convs.is_empty()));
    for genome in genomes {
        let spec = space.render(&genome);
        let name = if genome.convs.is_empty() {
            "mlp"
        } else {
            "cnn"
        };
        let result = autodl_train::train_with(
            &spec,
            &genome.hyperparams,
            &data,
            &RunContext::new(1, dir),
            autodl_train::Fidelity::epochs(1),
            None,
        )?;
        let weights = result.weights.context("one epoch gives weights")?;
        let opts = autodl_deploy::ExportOptions {
            feature_names: (0..64).map(|i| format!("px{i}")).collect(),
            output: OutputKind::Probabilities {
                labels: (0..10).map(|k| k.to_string()).collect(),
            },
            preprocess: None,
        };
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, autodl_deploy::to_onnx(&spec, &weights, &opts)?)?;
        eprintln!(
            "{name}: {} ({} parameters)",
            spec.describe(),
            spec.parameter_count().unwrap_or(0)
        );
        out.push((name.to_string(), path));
    }
    Ok(out)
}

/// Runs the comparison, prints a table, and writes the raw results as JSON.
pub fn infer(args: &InferBenchArgs) -> Result<()> {
    if args.singles < 100 || args.batches == 0 || args.repeats == 0 || args.threads == 0 {
        bail!("need --singles ≥ 100, --batches ≥ 1, --repeats ≥ 1 and --threads ≥ 1");
    }
    if args.threads != 1 {
        bail!(
            "tract runs a model on one thread; --threads must be 1 for a like-for-like comparison"
        );
    }
    let python = bench_python(args.python.as_deref())?;
    let work = args
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .join("infer-models");
    let models = match &args.run {
        Some(run) => vec![(
            run.file_name()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned()),
            run.join(autodl_artifacts::run::paths::ONNX),
        )],
        None => default_models(&work)?,
    };
    let mut results = Vec::new();
    for (name, onnx) in &models {
        let graph_inputs = autodl_deploy::OnnxRunner::load(onnx)?.inputs().to_vec();
        let n_features = graph_inputs.iter().map(|i| i.width).sum();
        // 4,096 standard-normal rows per input (Box–Muller), written for the Python side too
        // (little-endian, one file per input, passed as NAME:TYPE:WIDTH:PATH).
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        std::fs::create_dir_all(&work)?;
        let mut inputs = Vec::new();
        let mut specs = Vec::new();
        for info in &graph_inputs {
            let data: Vec<f64> = (0..4096 * info.width)
                .map(|_| {
                    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
                })
                .collect();
            let (block, bytes, kind) = if info.double {
                let bytes = data
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>();
                let block = InputRows::Double {
                    n_rows: 4096,
                    n_cols: info.width,
                    data,
                };
                (block, bytes, "f64")
            } else {
                let data: Vec<f32> = data.iter().map(|&v| v as f32).collect();
                let bytes = data
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>();
                (
                    InputRows::Float(Matrix::new(4096, info.width, data)),
                    bytes,
                    "f32",
                )
            };
            let path = work.join(format!("{name}.{}.{kind}", info.name));
            std::fs::write(&path, bytes)?;
            specs.push(format!(
                "{}:{kind}:{}:{}",
                info.name,
                info.width,
                path.display()
            ));
            inputs.push(block);
        }
        let (mut tract, mut ort) = (Vec::new(), Vec::new());
        for r in 0..args.repeats {
            // Alternate which side goes first.
            for side in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
                if side == 0 {
                    tract.push(measure_tract(onnx, &inputs, args.singles, args.batches)?);
                } else {
                    let o = Command::new(&python)
                        .arg(crate::bench::repo_path("scripts/bench_infer.py"))
                        .arg(onnx)
                        .args([
                            args.threads.to_string(),
                            args.singles.to_string(),
                            args.batches.to_string(),
                        ])
                        .args(&specs)
                        .env("OMP_NUM_THREADS", args.threads.to_string())
                        .output()
                        .context("running scripts/bench_infer.py")?;
                    ort.push(parse_last_json::<Speed>(&o, "onnxruntime")?);
                }
            }
            eprintln!("{name}: round {} of {} done", r + 1, args.repeats);
        }
        let med = |v: &[Speed], f: fn(&Speed) -> f64| median(v.iter().map(f).collect());
        results.push(ModelResult {
            model: name.clone(),
            onnx: onnx.display().to_string(),
            n_features,
            batch1_median_ratio: med(&ort, |s| s.batch1_median_us)
                / med(&tract, |s| s.batch1_median_us),
            batch1_p99_ratio: med(&ort, |s| s.batch1_p99_us) / med(&tract, |s| s.batch1_p99_us),
            batch1024_throughput_ratio: med(&tract, |s| s.batch1024_rows_per_s)
                / med(&ort, |s| s.batch1024_rows_per_s),
            tract,
            onnxruntime: ort,
        });
    }
    println!(
        "| model | runtime | batch 1 median (µs) | batch 1 p99 (µs) | batch 1024 (rows/s) |\n|---|---|---:|---:|---:|"
    );
    for r in &results {
        for side in [&r.tract, &r.onnxruntime] {
            let med = |f: fn(&Speed) -> f64| median(side.iter().map(f).collect());
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.0} |",
                r.model,
                side[0].runtime,
                med(|s| s.batch1_median_us),
                med(|s| s.batch1_p99_us),
                med(|s| s.batch1024_rows_per_s)
            );
        }
    }
    println!(
        "\nratios (above 1: tract is faster), medians of {} alternating rounds, {} thread:",
        args.repeats, args.threads
    );
    for r in &results {
        println!(
            "  {}: batch-1 median {:.2}×, batch-1 p99 {:.2}×, batch-1024 throughput {:.2}×",
            r.model, r.batch1_median_ratio, r.batch1_p99_ratio, r.batch1024_throughput_ratio
        );
    }
    autodl_artifacts::io::write_json(&args.out, &results)?;
    eprintln!("raw results: {}", args.out.display());
    Ok(())
}
