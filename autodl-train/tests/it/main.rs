//! Training behaviour: learns a separable problem, keeps the best epoch, is deterministic with a
//! seed, reports divergence as an outcome, and fits the linfa baselines.

use autodl_artifacts::arch::{Activation, ArchitectureSpec};
use autodl_artifacts::context::RunContext;
use autodl_artifacts::table::{Matrix, PreparedData, SplitData, Task};
use autodl_artifacts::trial::{Hyperparams, TrialOutcome};
use autodl_train::{TrainData, baseline, predict, train};

pub(crate) use blobs as two_blobs;

/// Two Gaussian-ish blobs from a deterministic generator: class = sign of x0 + x1.
fn blobs(n: usize, seed: u64) -> SplitData {
    let mut s = seed;
    let mut u = || {
        s = autodl_artifacts::context::splitmix64(s);
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..n {
        let (a, b, c) = (u(), u(), u());
        x.extend([a, b, c]);
        y.push(if a + b > 0.0 { 1.0 } else { 0.0 });
    }
    SplitData {
        x: Matrix::new(n, 3, x),
        y,
    }
}

mod networks;

/// A binary classification problem on `train` and `valid`.
pub(crate) fn classification<'a>(train: &'a SplitData, valid: &'a SplitData) -> TrainData<'a> {
    TrainData {
        task: Task::Binary,
        n_outputs: 2,
        target_scale: 1.0,
        train,
        valid,
    }
}

fn hp(lr: f64, epochs: usize) -> Hyperparams {
    Hyperparams {
        learning_rate: lr,
        batch_size: 32,
        max_epochs: epochs,
        patience: 100,
        ..Hyperparams::default()
    }
}

#[test]
fn learns_and_keeps_the_best_epoch() {
    let (tr, va) = (blobs(400, 1), blobs(200, 2));
    let data = classification(&tr, &va);
    let arch = ArchitectureSpec::mlp(3, &[16], Activation::Relu, 2);
    let r = train(&arch, &hp(1e-2, 30), &data, &RunContext::new(3, ".")).unwrap();
    let TrialOutcome::Completed {
        valid_metric,
        best_epoch,
        epochs,
        ..
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome)
    };
    assert!(valid_metric.value > 0.9, "{valid_metric:?}");
    assert_eq!(*epochs, r.history.len());
    let best = r
        .history
        .iter()
        .map(|e| e.valid_metric)
        .fold(f64::MIN, f64::max);
    assert_eq!(r.history[best_epoch - 1].valid_metric, best);
    // The returned weights reproduce the best epoch's validation accuracy.
    reproduces_validation(&arch, &r, &va, valid_metric.value);
}

/// The weights a run returned give back the validation metric it reported (binary task).
pub(crate) fn reproduces_validation(
    arch: &ArchitectureSpec,
    r: &autodl_train::TrainResult,
    va: &SplitData,
    reported: f64,
) -> Matrix {
    let out = predict(arch, r.weights.as_ref().unwrap(), Task::Binary, &va.x).unwrap();
    assert_eq!(Task::Binary.metric().compute(&out, &va.y), reported);
    out
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let (tr, va) = (blobs(200, 1), blobs(100, 2));
    let data = classification(&tr, &va);
    // Dropout and batch normalisation included: their randomness and state are seeded too.
    let mut arch = ArchitectureSpec::mlp(3, &[16], Activation::Gelu, 2);
    let space = autodl_search_free_spec(&mut arch);
    let run = |seed| {
        train(&space, &hp(3e-3, 5), &data, &RunContext::new(seed, "."))
            .unwrap()
            .weights
            .unwrap()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn noise_and_mixup_train_reproducibly_and_change_the_training() {
    let (tr, va) = (blobs(400, 1), blobs(200, 2));
    let data = classification(&tr, &va);
    let arch = ArchitectureSpec::mlp(3, &[16], Activation::Relu, 2);
    let run = |noise: f64, mixup: f64| {
        let hp = Hyperparams {
            augment_noise: noise,
            mixup_alpha: mixup,
            ..hp(1e-2, 20)
        };
        train(&arch, &hp, &data, &RunContext::new(5, ".")).unwrap()
    };
    let plain = run(0.0, 0.0);
    for (noise, mixup) in [(0.1, 0.0), (0.0, 0.2), (0.1, 0.2)] {
        let r = run(noise, mixup);
        let TrialOutcome::Completed { valid_metric, .. } = &r.outcome else {
            panic!("{:?}", r.outcome)
        };
        // Still learns the blobs, reproducibly, and not the way plain training does.
        assert!(
            valid_metric.value > 0.9,
            "noise {noise}, mixup {mixup}: {valid_metric:?}"
        );
        assert_eq!(r.weights, run(noise, mixup).weights);
        assert_ne!(r.weights, plain.weights, "noise {noise}, mixup {mixup}");
    }
}

/// Inserts batch norm and dropout after the first dense layer of an MLP spec.
fn autodl_search_free_spec(spec: &mut ArchitectureSpec) -> ArchitectureSpec {
    use autodl_artifacts::arch::{Edge, Node, NodeId, Norm, Op};
    let mut s = spec.clone();
    s.nodes.push(Node {
        id: NodeId(100),
        op: Op::Norm { kind: Norm::Batch },
    });
    s.nodes.push(Node {
        id: NodeId(101),
        op: Op::Dropout { rate: 0.2 },
    });
    s.edges
        .retain(|e| !(e.from == NodeId(1) && e.to == NodeId(2)));
    s.edges.extend([
        Edge {
            from: NodeId(1),
            to: NodeId(100),
        },
        Edge {
            from: NodeId(100),
            to: NodeId(101),
        },
        Edge {
            from: NodeId(101),
            to: NodeId(2),
        },
    ]);
    s.validate().unwrap();
    s
}

#[test]
fn a_huge_learning_rate_is_reported_as_divergence() {
    // Regression with large targets and an absurd learning rate overflows to inf/NaN.
    let tr = blobs(200, 1);
    let tr = SplitData {
        x: tr.x,
        y: tr.y.iter().map(|v| v * 1e6).collect(),
    };
    let data = TrainData {
        task: Task::Regression,
        n_outputs: 1,
        target_scale: 1.0,
        train: &tr,
        valid: &tr,
    };
    let arch = ArchitectureSpec::mlp(3, &[64, 64], Activation::Relu, 1);
    let r = train(&arch, &hp(1e12, 20), &data, &RunContext::new(1, ".")).unwrap();
    assert!(
        matches!(r.outcome, TrialOutcome::Diverged { .. }),
        "{:?}",
        r.outcome
    );
    assert!(r.weights.is_none());
}

#[test]
fn shape_mismatches_are_errors_not_panics() {
    let tr = blobs(50, 1);
    let data = classification(&tr, &tr);
    let wrong_inputs = ArchitectureSpec::mlp(4, &[8], Activation::Relu, 2);
    assert!(train(&wrong_inputs, &hp(1e-3, 1), &data, &RunContext::new(1, ".")).is_err());
    let wrong_outputs = ArchitectureSpec::mlp(3, &[8], Activation::Relu, 3);
    assert!(
        train(
            &wrong_outputs,
            &hp(1e-3, 1),
            &data,
            &RunContext::new(1, ".")
        )
        .is_err()
    );
    let ok = ArchitectureSpec::mlp(3, &[8], Activation::Relu, 2);
    assert!(train(&ok, &hp(-1.0, 1), &data, &RunContext::new(1, ".")).is_err());
}

#[test]
fn linfa_baselines() {
    let (tr, va, te) = (blobs(300, 1), blobs(100, 2), blobs(100, 3));
    let data = PreparedData {
        task: Task::Binary,
        n_classes: 2,
        feature_names: vec!["a".into(), "b".into(), "c".into()],
        input_shape: Default::default(),
        train: tr.clone(),
        valid: va.clone(),
        test: te.clone(),
    };
    let b = baseline(&data, 1.0).unwrap();
    assert!(b.test_metric.value > 0.9, "{b:?}");
    // Regression: y = 2·x0 − x1 exactly, so least squares is exact (RMSE ≈ 0, scaled by 10).
    let lin = |s: &SplitData| SplitData {
        x: s.x.clone(),
        y: (0..s.x.n_rows)
            .map(|i| 2.0 * s.x.row(i)[0] - s.x.row(i)[1])
            .collect(),
    };
    let data = PreparedData {
        task: Task::Regression,
        n_classes: 0,
        train: lin(&tr),
        valid: lin(&va),
        test: lin(&te),
        ..data
    };
    let b = baseline(&data, 10.0).unwrap();
    assert!(b.test_metric.value < 1e-3, "{b:?}");
}
