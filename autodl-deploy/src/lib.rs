//! Deployment: ONNX export of an `ArchitectureSpec` with its weights, and inference with tract.
//!
//! In: the architecture, its `NetworkWeights`, what the output means and, optionally, the
//! fitted transform. Out: a standard `.onnx` file (IR 8, opset 17) with a dynamic batch
//! dimension and output `output` (`[batch, n_outputs]`: class probabilities, softmax included,
//! or the standardised regression value, then a second output `value` in the target's units).
//! Without a transform the input is `features` (`[batch, n_features]`, f32, the transform
//! applied). With one, the graph applies the numeric steps itself: input `numeric`
//! (`[batch, n_numeric]`, f64, the raw values with NaN for missing) is imputed, clipped,
//! standardised and given its missing indicators inside the graph, so a user of any ONNX
//! runtime gets correct predictions from raw numbers; the other columns' encodings arrive as
//! input `encoded` (f32) and are described in `metadata_props` (`encodings`), with the inputs
//! (`inputs`), the feature names and the output's meaning. [`OnnxRunner`] loads such a file
//! with tract and runs it; [`Predictor`] feeds it from raw rows.
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
//! let opts = ExportOptions { feature_names: vec!["a".into()], output: OutputKind::StandardizedValue { mean: 0.0, std: 1.0 }, preprocess: None };
//! let bytes = to_onnx(&spec, &weights, &opts).unwrap();
//! let runner = OnnxRunner::from_bytes(&bytes).unwrap();
//! let y = runner.run(&x).unwrap();
//! ```

/// `PartialEq` and `Eq` for one of our tract ops, whose data sit in an `Arc` made once when a
/// plan is built: two ops are equal when they share it (tract compares ops while it
/// optimises a plan; comparing their contents would be slow and says nothing more).
macro_rules! equal_when_shared {
    ($op:ty, $field:ident) => {
        impl PartialEq for $op {
            fn eq(&self, other: &Self) -> bool {
                std::sync::Arc::ptr_eq(&self.$field, &other.$field)
            }
        }

        impl Eq for $op {}
    };
}

mod compress;
mod conv;
mod dense;
mod gemm;
mod onnx;
mod pool;
mod predictor;
mod runner;
pub mod serve;
mod softmax;

pub use compress::{MIN_ELEMENTS, Quantized, quantize_weights};
pub use onnx::{
    ENCODED_INPUT, ExportOptions, INPUT_NAME, IR_VERSION, NUMERIC_INPUT, OPSET, OUTPUT_NAME,
    VALUE_OUTPUT, graph_inputs, to_onnx, to_onnx_ensemble,
};
pub use predictor::{
    Cell, InputColumn, InvalidInput, Prediction, Predictor, Probabilities, input_rows,
};
pub use runner::{BatchWay, InputInfo, InputRows, OnnxRunner, max_abs_diff};
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
