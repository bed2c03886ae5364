//! Shared by the test crates that compare against the Python oracles (onnx.checker,
//! onnxruntime, scipy, scikit-learn, river); each includes this file with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oracle venv's python, made by `scripts/oracle-venv.sh` (from PyPI) if needed.
pub fn oracle_python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/oracle-venv.sh");
    let o = Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        o.status.success(),
        "oracle venv setup failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}
