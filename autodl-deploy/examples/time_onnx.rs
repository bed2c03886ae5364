//! Loads an exported `.onnx` file with tract and times it on random inputs.
//!
//! ```sh
//! cargo run -p autodl-deploy --example time_onnx -- runs/<run>/model.onnx
//! ```
//!
//! Prints the load time, the median and 99th-percentile latency of batch-1 calls, the
//! throughput of batch-1024 calls and how the runner chose to run that batch. A measurement
//! tool, not a test: results depend on the machine.

use std::time::Instant;

use autodl_artifacts::table::Matrix;
use autodl_deploy::{InputRows, OnnxRunner};

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: time_onnx MODEL.onnx");
        std::process::exit(2);
    };
    let t = Instant::now();
    let runner = match OnnxRunner::load(path.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("load + optimise: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    // Deterministic inputs in [-1, 1), rows for each of the model's inputs.
    let mut state = 1u64;
    let mut next = || {
        state = autodl_artifacts::context::splitmix64(state);
        (state >> 40) as f64 / (1u64 << 23) as f64 - 1.0
    };
    let mut rows = |n: usize| -> Vec<InputRows> {
        runner
            .inputs()
            .iter()
            .map(|i| {
                let data: Vec<f64> = (0..n * i.width).map(|_| next()).collect();
                if i.double {
                    InputRows::Double {
                        n_rows: n,
                        n_cols: i.width,
                        data,
                    }
                } else {
                    let data = data.into_iter().map(|v| v as f32).collect();
                    InputRows::Float(Matrix::new(n, i.width, data))
                }
            })
            .collect()
    };
    let one = rows(1);
    let big = rows(1024);
    for _ in 0..200 {
        runner.run_inputs(&one).unwrap();
    }
    let mut lat: Vec<f64> = (0..5000)
        .map(|_| {
            let t = Instant::now();
            runner.run_inputs(&one).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "batch 1: median {:.1} µs, p99 {:.1} µs",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    let mut big_times: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            runner.run_inputs(&big).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    big_times.sort_by(f64::total_cmp);
    let median = percentile(&big_times, 0.5);
    println!(
        "batch 1024: median {:.2} ms, {:.0} rows/s",
        median * 1e3,
        1024.0 / median
    );
    for (n, way) in runner.batch_ways() {
        println!("{n} rows run {way:?}");
    }
}
