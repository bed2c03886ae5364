//! Deployment: ONNX export of an `ArchitectureSpec` with its weights, and inference with tract.
//!
//! In: the architecture, its `NetworkWeights` and what the output means. Out: a standard
//! `.onnx` file (IR 8, opset 17) with a dynamic batch dimension, input `features`
//! (`[batch, n_features]`, f32) and output `output` (`[batch, n_outputs]`: class probabilities,
//! softmax included, or the standardised regression value), and the feature names and output
//! meaning in `metadata_props`. [`OnnxRunner`] loads such a file with tract and runs it.
//!
//! The graph is built directly as an ONNX `ModelProto` (the protobuf types tract-onnx exposes)
//! and encoded with prost; no burn model is needed, only the spec and the weights, so any
//! network the search can describe can be exported: dense, convolution (`Conv`, with signals
//! as height-1 images), pooling (`MaxPool`, `AveragePool`, their global forms), `Flatten`,
//! `Reshape` of the flat input to the input grid, normalisations, activations, `Add`, `Concat`.
//! [`to_onnx_ensemble`] writes several networks as one graph whose output is the `Mean` of the
//! members' probabilities (or values).
//!
//! ```no_run
//! use autodl_artifacts::export::OutputKind;
//! use autodl_deploy::{ExportOptions, OnnxRunner, to_onnx};
//! # let (spec, weights, x): (autodl_artifacts::arch::ArchitectureSpec, autodl_artifacts::model::NetworkWeights, autodl_artifacts::table::Matrix) = todo!();
//! let opts = ExportOptions { feature_names: vec!["a".into()], output: OutputKind::StandardizedValue { mean: 0.0, std: 1.0 } };
//! let bytes = to_onnx(&spec, &weights, &opts).unwrap();
//! let runner = OnnxRunner::from_bytes(&bytes).unwrap();
//! let y = runner.run(&x).unwrap();
//! ```

mod compress;
mod onnx;
mod predictor;
mod runner;
pub mod serve;

pub use compress::{MIN_ELEMENTS, Quantized, quantize_weights};
pub use onnx::{
    ExportOptions, INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, to_onnx, to_onnx_ensemble,
};
pub use predictor::{Cell, InputColumn, InvalidInput, Prediction, Predictor, Probabilities};
pub use runner::{OnnxRunner, max_abs_diff};
pub use serve::{ServeConfig, Server};

/// Errors of the deploy stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// Architecture or weights are invalid.
    #[error(transparent)]
    Artifact(#[from] autodl_artifacts::ArtifactError),
    /// tract could not load or run the model.
    #[error("ONNX runtime error: {0}")]
    Runtime(String),
    /// The models cannot be exported together.
    #[error("export error: {0}")]
    Export(String),
    /// Input of the wrong shape.
    #[error("input has {found} features, the model takes {expected}")]
    Shape {
        /// Features the model takes.
        expected: usize,
        /// Features given.
        found: usize,
    },
}

/// Result alias for this crate.
pub type Result<T, E = DeployError> = std::result::Result<T, E>;
