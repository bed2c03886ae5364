//! The drift statistics against scipy on generated samples: `ks_2samp` (exact p-values at
//! these sizes), `chi2_contingency`, `wasserstein_distance` and `jensenshannon` agree to 1e-9
//! relative; so does the performance estimate's isotonic calibration with scikit-learn's
//! `IsotonicRegression`. Both run from the project's oracle venv (`scripts/oracle-venv.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use autodl_artifacts::context::splitmix64;
use autodl_monitor::stats;
use serde_json::{Value, json};

#[path = "../../test-support/oracle_venv.rs"]
mod oracle_venv;
use oracle_venv::oracle_python;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Seeded standard normals (Box–Muller on splitmix64).
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = splitmix64(self.0);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self, n: usize, shift: f64, round: bool) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u, v) = (self.uniform(), self.uniform());
                let x = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() + shift;
                if round { (x * 2.0).round() / 2.0 } else { x }
            })
            .collect()
    }
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs() || (ours - theirs).abs() <= 1e-300
}

#[test]
fn drift_statistics_equal_scipy() {
    let mut rng = Normal(42);
    let mut cases = Vec::new();
    // What each case should give, computed here: (kind, our values).
    let mut ours: Vec<Vec<f64>> = Vec::new();
    // Up to 10,000 a side scipy's p-value is exact; beyond, the finite-n Kolmogorov
    // distribution at n = round(n1·n2/(n1+n2)) (here 6,667, 297 and 100).
    let sizes = [
        (5, 7),
        (20, 20),
        (50, 80),
        (300, 300),
        (1000, 700),
        (2500, 4000),
        (10_000, 20_000),
        (300, 30_000),
        (100, 12_000),
    ];
    for (k, &(n, m)) in sizes.iter().enumerate() {
        for shift in [0.0, 0.3] {
            // Every third pair rounded to halves: many ties.
            let round = k % 3 == 2;
            let a = sorted(rng.sample(n, 0.0, round));
            let b = sorted(rng.sample(m, shift, round));
            let (d, p) = stats::ks_2samp(&a, &b);
            ours.push(vec![d, p]);
            cases.push(json!({"kind": "ks", "a": a, "b": b}));
            ours.push(vec![stats::wasserstein(&a, &b)]);
            cases.push(json!({"kind": "wasserstein", "a": a, "b": b}));
            // Histograms on ten reference-decile bins.
            let edges: Vec<f64> = (1..10).map(|q| a[q * a.len() / 10]).collect();
            let (p, q) = (stats::bin_counts(&a, &edges), stats::bin_counts(&b, &edges));
            ours.push(vec![
                stats::jensen_shannon(&p, &q, None),
                stats::jensen_shannon(&p, &q, Some(2.0)),
            ]);
            cases.push(json!({"kind": "js", "p": p, "q": q}));
        }
    }
    // Contingency tables: 2 × 2 (Yates' correction applies), 2 × 3, 2 × 6.
    for (r, c) in [
        (vec![30.0, 70.0], vec![45.0, 55.0]),
        (vec![12.0, 3.0], vec![10.0, 4.0]),
        (vec![10.0, 20.0, 30.0], vec![20.0, 20.0, 10.0]),
        (
            vec![120.0, 80.0, 44.0, 31.0, 9.0, 5.0],
            vec![100.0, 95.0, 40.0, 20.0, 15.0, 2.0],
        ),
    ] {
        let (stat, p, dof) = stats::chi2_homogeneity(&r, &c);
        ours.push(vec![stat, p, dof as f64]);
        cases.push(json!({"kind": "chi2", "r": r, "c": c}));
    }
    // The finite-n distribution itself, in each of its regions (Ruben–Gambino, Durbin,
    // Pomeranz, Pelz–Good, the Smirnov sum), and the one-sided Smirnov tail.
    for n in [5u64, 60, 140, 141, 500, 5000, 60_000, 250_000] {
        let nf = n as f64;
        let mut x: Vec<f64> = [0.6, 0.9, 1.3, 2.0]
            .iter()
            .map(|t| t / nf)
            .chain([0.3, 0.8, 1.2, 1.6, 2.5, 4.0].iter().map(|z| z / nf.sqrt()))
            .chain([0.55, 0.8])
            .filter(|&x| x < 1.0)
            .collect();
        x.dedup();
        ours.push(
            x.iter()
                .map(|&x| autodl_monitor::kstwo::kstwo_sf(n, x))
                .collect(),
        );
        cases.push(json!({"kind": "kstwo", "n": n, "x": x}));
        ours.push(
            x.iter()
                .map(|&x| autodl_monitor::kstwo::smirnov_sf(n, x))
                .collect(),
        );
        cases.push(json!({"kind": "smirnov", "n": n, "x": x}));
    }
    // Streaming detectors against river's, with river's defaults: the same change points.
    for (k, (shift, scale)) in [(0.0, 1.0), (1.0, 0.25), (0.3, 0.5)]
        .into_iter()
        .enumerate()
    {
        let mut g = Normal(200 + k as u64);
        let mut values = g.sample(3000, 0.0, false);
        values.extend(g.sample(2000, shift / scale, false));
        let values: Vec<f64> = values.iter().map(|v| v * scale).collect();
        let mut ph = autodl_monitor::streaming::PageHinkley::default();
        let found = autodl_monitor::streaming::detections(&mut ph, values.iter().copied());
        ours.push(found.iter().map(|&i| i as f64).collect());
        cases.push(json!({"kind": "page_hinkley", "values": values}));
        // Errors at 10%, then at 10%, 25% or 15%.
        let p1 = [0.1, 0.25, 0.15][k];
        let errors: Vec<f64> = (0..5000)
            .map(|i| f64::from(u8::from(g.uniform() < if i < 3000 { 0.1 } else { p1 })))
            .collect();
        let mut ddm = autodl_monitor::streaming::Ddm::default();
        let found = autodl_monitor::streaming::detections(&mut ddm, errors.iter().copied());
        ours.push(found.iter().map(|&i| i as f64).collect());
        cases.push(json!({"kind": "ddm", "values": errors}));
    }
    // Isotonic calibration: scores with many ties (two decimals) and labels drawn with a
    // miscalibrated probability, evaluated on and between the scores and beyond them.
    for (k, n) in [(0u64, 50usize), (1, 2000), (2, 20_000)] {
        let mut u = Normal(100 + k);
        let scores: Vec<f64> = (0..n)
            .map(|_| (u.uniform() * 100.0).round() / 100.0)
            .collect();
        let labels: Vec<bool> = scores
            .iter()
            .map(|&s| u.uniform() < s * s * 0.9 + 0.05)
            .collect();
        let at: Vec<f64> = (0..=240).map(|i| i as f64 / 200.0 - 0.1).collect();
        let c = autodl_monitor::performance::IsotonicCalibration::fit(&scores, &labels);
        ours.push(at.iter().map(|&x| c.apply(x)).collect());
        cases.push(json!({"kind": "isotonic", "scores": scores, "labels": labels, "at": at}));
    }
    let dir = std::env::temp_dir().join(format!("autodl-scipy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let o = Command::new(oracle_python())
        .arg(repo().join("autodl-monitor/tests/scipy_oracle.py"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success(),
        "scipy failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let theirs: Vec<Vec<f64>> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let detected: Vec<String> = cases
        .iter()
        .zip(&theirs)
        .filter(|(c, _)| c["kind"] == "page_hinkley" || c["kind"] == "ddm")
        .map(|(c, t)| format!("{} {:?}", c["kind"], t))
        .collect();
    eprintln!("river's change points: {}", detected.join("; "));
    let (mut worst, mut worst_kind) = (0.0f64, String::new());
    for ((case, a), b) in cases.iter().zip(&ours).zip(&theirs) {
        assert_eq!(
            a.len(),
            b.len(),
            "{} case: ours {a:?}, theirs {b:?}",
            case["kind"]
        );
        for (x, y) in a.iter().zip(b) {
            assert!(
                close(*x, *y),
                "{} case: ours {a:?}, scipy {b:?}",
                case["kind"]
            );
            if *y != 0.0 && (x - y).abs() / y.abs() > worst {
                worst = (x - y).abs() / y.abs();
                worst_kind = case["kind"].to_string();
            }
        }
    }
    let kinds: Vec<&Value> = cases.iter().map(|c| &c["kind"]).collect();
    let ks_p: Vec<String> = kinds
        .iter()
        .zip(&theirs)
        .filter(|(k, _)| **k == "ks")
        .map(|(_, v)| format!("{:.1e}", v[1]))
        .collect();
    eprintln!(
        "{} cases ({} KS, p-values {}) equal scipy's ({}); worst relative difference {worst:.2e} ({worst_kind})",
        cases.len(),
        ks_p.len(),
        ks_p.join(" "),
        String::from_utf8_lossy(&o.stderr).trim()
    );
}
