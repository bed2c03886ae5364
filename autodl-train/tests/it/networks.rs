//! Convolutional networks on signals and images, the training options, and resumption.

use autodl_artifacts::arch::{Activation, ArchitectureSpec, InputShape, Norm, Op, PoolKind};
use autodl_artifacts::context::{RunContext, splitmix64};
use autodl_artifacts::table::{Matrix, SplitData, Task};
use autodl_artifacts::trial::{Hyperparams, LrSchedule, Optimizer, RegressionLoss, TrialOutcome};
use autodl_train::{
    Fidelity, TrainData, balanced_class_weights, learning_rate_at, predict, train, train_with,
};

use crate::{classification, reproduces_validation, two_blobs};

/// Uniform numbers in [-1, 1) from a seed.
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = splitmix64(s);
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    }
}

/// Noisy signals of length 24 with one bump of width 3 at a random position: class 0 is an upward
/// bump, class 1 a downward one. Position varies, so translation-invariant features are needed.
fn bumps(n: usize, seed: u64) -> SplitData {
    let mut u = uniform(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let class = (u() > 0.0) as usize;
        let at = ((u() + 1.0) * 10.0) as usize; // 0..=20
        let mut signal: Vec<f32> = (0..24).map(|_| 0.3 * u()).collect();
        for v in &mut signal[at..at + 3] {
            *v += if class == 0 { 1.0 } else { -1.0 };
        }
        x.extend(signal);
        y.push(class as f32);
    }
    SplitData {
        x: Matrix::new(n, 24, x),
        y,
    }
}

fn signal_cnn() -> ArchitectureSpec {
    ArchitectureSpec::chain(
        24,
        InputShape::Signal {
            channels: 1,
            length: 24,
        },
        vec![
            Op::Conv {
                filters: 8,
                kernel: 3,
                stride: 1,
            },
            Op::Activation {
                function: Activation::Relu,
            },
            Op::GlobalPool {
                kind: PoolKind::Max,
            },
            Op::Output { units: 2 },
        ],
    )
}

/// Every grid op on a 6×6 image: conv, batch norm, dropout, pooling, a residual add and a
/// channel concatenation, then flatten.
fn image_cnn() -> ArchitectureSpec {
    use autodl_artifacts::arch::{Edge, NodeId};
    let mut spec = ArchitectureSpec::chain(
        36,
        InputShape::Image {
            channels: 1,
            height: 6,
            width: 6,
        },
        vec![
            Op::Conv {
                filters: 4,
                kernel: 3,
                stride: 1,
            }, // n1
            Op::Norm { kind: Norm::Batch }, // n2
            Op::Activation {
                function: Activation::Silu,
            }, // n3
            Op::Dropout { rate: 0.1 },      // n4
            Op::Add,                        // n5: n4 + n1
            Op::Concat,                     // n6: n5 ‖ n1
            Op::Pool {
                kind: PoolKind::Average,
                size: 2,
                same: false,
            }, // n7
            Op::Flatten,                    // n8
            Op::Output { units: 2 },        // n9
        ],
    );
    spec.edges.extend([
        Edge {
            from: NodeId(1),
            to: NodeId(5),
        },
        Edge {
            from: NodeId(1),
            to: NodeId(6),
        },
    ]);
    spec.validate().expect("valid test network");
    spec
}

/// The blobs problem laid out as 6×6 images (the three features repeated).
fn blob_images(n: usize, seed: u64) -> SplitData {
    let b = two_blobs(n, seed);
    let x = (0..n)
        .flat_map(|i| {
            let r = b.x.row(i).to_vec();
            (0..36).map(move |k| r[k % 3])
        })
        .collect();
    SplitData {
        x: Matrix::new(n, 36, x),
        y: b.y,
    }
}

fn hp(epochs: usize) -> Hyperparams {
    Hyperparams {
        learning_rate: 1e-2,
        batch_size: 32,
        max_epochs: epochs,
        patience: epochs,
        ..Hyperparams::default()
    }
}

#[test]
fn a_signal_cnn_learns_translated_bumps_and_predicts_what_it_validated() {
    let (tr, va) = (bumps(400, 1), bumps(200, 2));
    let data = classification(&tr, &va);
    let arch = signal_cnn();
    let r = train(&arch, &hp(15), &data, &RunContext::new(5, ".")).unwrap();
    let TrialOutcome::Completed { valid_metric, .. } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(valid_metric.value > 0.95, "{valid_metric:?}");
    reproduces_validation(&arch, &r, &va, valid_metric.value);
}

#[test]
fn an_image_cnn_with_every_grid_op_is_bit_identical_per_seed() {
    // Every fifth label flipped, so that validation results fluctuate after the best epoch.
    let noisy = |mut d: SplitData| {
        for y in d.y.iter_mut().step_by(5) {
            *y = 1.0 - *y;
        }
        d
    };
    let (tr, va) = (noisy(blob_images(128, 1)), noisy(blob_images(64, 2)));
    let data = classification(&tr, &va);
    let arch = image_cnn();
    let run = |seed| {
        train(&arch, &hp(3), &data, &RunContext::new(seed, "."))
            .unwrap()
            .weights
            .unwrap()
    };
    let first = run(7);
    // The weights (running statistics included) reproduce the best epoch's validation result.
    let r = train(&arch, &hp(20), &data, &RunContext::new(7, ".")).unwrap();
    let TrialOutcome::Completed {
        valid_metric,
        best_epoch,
        epochs,
        ..
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome)
    };
    assert!(
        best_epoch < epochs,
        "the check needs epochs after the best one"
    );
    let out = reproduces_validation(&arch, &r, &va, valid_metric.value);
    // The validation loss too: batch-norm statistics that kept drifting after the best epoch
    // (burn shares them between module clones) change it even where accuracy survives.
    let log_loss = (0..out.n_rows)
        .map(|i| -(out.row(i)[va.y[i] as usize].max(1e-12) as f64).ln())
        .sum::<f64>()
        / out.n_rows as f64;
    let recorded = r.history[best_epoch - 1].valid_loss.unwrap();
    assert!(
        (log_loss - recorded).abs() < 1e-9,
        "{log_loss} vs {recorded}"
    );
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
    // Rotation augmentation: reproducible per seed, and a different training.
    let rotated = |seed| {
        let hp = Hyperparams {
            augment_rotate: 10.0,
            ..hp(3)
        };
        train(&arch, &hp, &data, &RunContext::new(seed, "."))
            .unwrap()
            .weights
            .unwrap()
    };
    assert_eq!(rotated(7), rotated(7));
    assert_ne!(rotated(7), first);
    assert!(first.tensors.contains_key("n1.weight"));
    assert_eq!(first.tensors["n1.weight"].shape, vec![4, 1, 3, 3]);
}

#[test]
fn a_dangling_node_is_rejected_before_training() {
    use autodl_artifacts::arch::{Edge, Node, NodeId};
    let (tr, va) = (blob_images(16, 1), blob_images(8, 2));
    let mut arch = image_cnn();
    arch.nodes.push(Node {
        id: NodeId(10),
        op: Op::Activation {
            function: Activation::Gelu,
        },
    });
    arch.edges.push(Edge {
        from: NodeId(3),
        to: NodeId(10),
    });
    let err = train(
        &arch,
        &hp(1),
        &classification(&tr, &va),
        &RunContext::new(1, "."),
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not lead"), "{err}");
}

#[test]
fn resuming_from_a_checkpoint_matches_an_uninterrupted_run() {
    let (tr, va) = (bumps(200, 3), bumps(100, 4));
    let data = classification(&tr, &va);
    let arch = signal_cnn();
    let hp = Hyperparams {
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            nesterov: true,
        },
        schedule: LrSchedule::Cosine,
        warmup_epochs: 1,
        grad_clip_norm: Some(1.0),
        ..hp(6)
    };
    let ctx = RunContext::new(9, ".");
    let whole = train(&arch, &hp, &data, &ctx).unwrap();
    let first = train_with(&arch, &hp, &data, &ctx, Fidelity::epochs(2), None).unwrap();
    assert!(!first.finished);
    assert_eq!(first.history.len(), 2);
    let checkpoint = first.checkpoint.unwrap();
    let rest = train_with(&arch, &hp, &data, &ctx, Fidelity::FULL, Some(&checkpoint)).unwrap();
    assert!(rest.finished);
    assert_eq!(rest.history, whole.history);
    assert_eq!(rest.weights, whole.weights);
    assert_eq!(
        rest.checkpoint.unwrap().weights(),
        whole.checkpoint.unwrap().weights()
    );
    // A checkpoint only continues the run it came from.
    let other = Hyperparams {
        learning_rate: 0.5,
        ..hp.clone()
    };
    assert!(
        train_with(
            &arch,
            &other,
            &data,
            &ctx,
            Fidelity::FULL,
            Some(&checkpoint)
        )
        .is_err()
    );
}

#[test]
fn a_data_fraction_trains_on_fewer_rows() {
    let (tr, va) = (bumps(200, 3), bumps(50, 4));
    let data = classification(&tr, &va);
    let fidelity = Fidelity {
        epochs: Some(1),
        data_fraction: 0.25,
    };
    let ctx = RunContext::new(1, ".");
    let quarter = train_with(&signal_cnn(), &hp(4), &data, &ctx, fidelity, None).unwrap();
    let full = train_with(
        &signal_cnn(),
        &hp(4),
        &data,
        &ctx,
        Fidelity::epochs(1),
        None,
    )
    .unwrap();
    assert_ne!(quarter.weights, full.weights);
    let bad = Fidelity {
        epochs: None,
        data_fraction: 0.0,
    };
    assert!(train_with(&signal_cnn(), &hp(4), &data, &ctx, bad, None).is_err());
}

#[test]
fn every_optimizer_and_schedule_learns_the_blobs() {
    let (tr, va) = (two_blobs(300, 1), two_blobs(150, 2));
    let data = classification(&tr, &va);
    let arch = ArchitectureSpec::mlp(3, &[16], Activation::Tanh, 2);
    for optimizer in [
        Optimizer::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        Optimizer::Adam,
        Optimizer::AdamW,
    ] {
        for schedule in [
            LrSchedule::Constant,
            LrSchedule::Cosine,
            LrSchedule::OneCycle,
        ] {
            let hp = Hyperparams {
                optimizer,
                schedule,
                learning_rate: if matches!(optimizer, Optimizer::Sgd { .. }) {
                    0.1
                } else {
                    1e-2
                },
                weight_decay: 1e-3,
                ..hp(15)
            };
            let r = train(&arch, &hp, &data, &RunContext::new(2, ".")).unwrap();
            let acc = r.outcome.score().unwrap();
            assert!(acc > 0.9, "{optimizer:?} {schedule:?}: {acc}");
        }
    }
}

#[test]
fn label_smoothing_caps_the_confidence() {
    let (tr, va) = (two_blobs(300, 1), two_blobs(150, 2));
    let data = classification(&tr, &va);
    let arch = ArchitectureSpec::mlp(3, &[32], Activation::Relu, 2);
    let confidence = |smoothing: f64| {
        let hp = Hyperparams {
            label_smoothing: smoothing,
            ..hp(40)
        };
        let r = train(&arch, &hp, &data, &RunContext::new(3, ".")).unwrap();
        let p = predict(&arch, r.weights.as_ref().unwrap(), Task::Binary, &tr.x).unwrap();
        let total: f32 = (0..p.n_rows).map(|i| p.row(i)[0].max(p.row(i)[1])).sum();
        total / p.n_rows as f32
    };
    // With ε = 0.2 over two classes each sample's loss is minimised at a probability of 0.9.
    let (plain, smoothed) = (confidence(0.0), confidence(0.2));
    assert!(plain > 0.95, "mean confidence without smoothing {plain}");
    assert!(smoothed < 0.9, "mean confidence with smoothing {smoothed}");
}

#[test]
fn class_weights_raise_minority_recall() {
    // 10 % minority class, overlapping: unweighted training favours the majority.
    let mut u = uniform(4);
    let make = |n: usize, u: &mut dyn FnMut() -> f32| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let minority = u() > 0.8;
            let centre = if minority { 0.6 } else { -0.2 };
            x.extend([centre + 0.7 * u(), 0.7 * u()]);
            y.push(minority as u8 as f32);
        }
        SplitData {
            x: Matrix::new(n, 2, x),
            y,
        }
    };
    let (tr, va) = (make(600, &mut u), make(300, &mut u));
    assert_eq!(
        balanced_class_weights(&[0.0, 0.0, 0.0, 1.0], 2),
        vec![4.0 / 6.0, 2.0]
    );
    let data = classification(&tr, &va);
    let arch = ArchitectureSpec::mlp(2, &[8], Activation::Relu, 2);
    let recall = |balanced: bool| {
        let hp = Hyperparams {
            balanced_class_weights: balanced,
            ..hp(30)
        };
        let r = train(&arch, &hp, &data, &RunContext::new(5, ".")).unwrap();
        let p = predict(&arch, r.weights.as_ref().unwrap(), Task::Binary, &va.x).unwrap();
        let (mut hit, mut total) = (0, 0);
        for i in 0..p.n_rows {
            if va.y[i] == 1.0 {
                total += 1;
                hit += usize::from(p.row(i)[1] > p.row(i)[0]);
            }
        }
        hit as f64 / total as f64
    };
    let (plain, weighted) = (recall(false), recall(true));
    assert!(weighted > plain + 0.1, "recall {plain} → {weighted}");
}

#[test]
fn huber_resists_outliers_that_pull_mse() {
    // y = x0, with 5 % of training targets replaced by +20 (standardised units).
    let mut u = uniform(6);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let v = u();
        x.push(v);
        y.push(if i % 20 == 0 { 20.0 } else { v });
    }
    let tr = SplitData {
        x: Matrix::new(400, 1, x.clone()),
        y,
    };
    let clean = SplitData {
        x: Matrix::new(400, 1, x.clone()),
        y: x,
    };
    let data = TrainData {
        task: Task::Regression,
        n_outputs: 1,
        target_scale: 1.0,
        train: &tr,
        valid: &tr,
    };
    let arch = ArchitectureSpec::mlp(1, &[16], Activation::Relu, 1);
    let clean_rmse = |loss: RegressionLoss| {
        let hp = Hyperparams {
            regression_loss: loss,
            ..hp(40)
        };
        let r = train(&arch, &hp, &data, &RunContext::new(1, ".")).unwrap();
        let p = predict(
            &arch,
            r.weights.as_ref().unwrap(),
            Task::Regression,
            &clean.x,
        )
        .unwrap();
        Task::Regression.metric().compute(&p, &clean.y)
    };
    let (mse, huber) = (
        clean_rmse(RegressionLoss::Mse),
        clean_rmse(RegressionLoss::Huber { delta: 1.0 }),
    );
    assert!(huber < 0.5 * mse, "clean RMSE: mse {mse}, huber {huber}");
}

#[test]
fn learning_rate_schedules_have_their_documented_shape() {
    let base = Hyperparams {
        learning_rate: 1.0,
        ..Hyperparams::default()
    };
    let at = |schedule, step, warmup| {
        learning_rate_at(
            &Hyperparams {
                schedule,
                ..base.clone()
            },
            step,
            100,
            warmup,
        )
    };
    assert_eq!(at(LrSchedule::Constant, 50, 0), 1.0);
    assert_eq!(at(LrSchedule::Cosine, 0, 0), 1.0);
    assert!((at(LrSchedule::Cosine, 50, 0) - 0.5).abs() < 1e-12);
    assert!(at(LrSchedule::Cosine, 100, 0) < 1e-12);
    assert!((at(LrSchedule::OneCycle, 0, 0) - 0.1).abs() < 1e-12);
    assert!((at(LrSchedule::OneCycle, 30, 0) - 1.0).abs() < 1e-12);
    assert!((at(LrSchedule::OneCycle, 100, 0) - 1e-3).abs() < 1e-12);
    // Warm-up ramps linearly to the scheduled value over its steps.
    assert!((at(LrSchedule::Constant, 0, 10) - 0.1).abs() < 1e-12);
    assert!((at(LrSchedule::Constant, 4, 10) - 0.5).abs() < 1e-12);
    assert_eq!(at(LrSchedule::Constant, 10, 10), 1.0);
}
