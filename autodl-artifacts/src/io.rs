//! Atomic writes, schema-checked reads and content hashes.
//!
//! Every write goes to a temporary file in the destination's folder and is renamed into place,
//! so a reader never sees a half-written artifact, even if the writer is killed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{ArtifactError, Result, SCHEMA_VERSION};

/// An artifact that records the schema version it was written with.
pub trait Versioned {
    /// The `schema_version` field of this value.
    fn schema_version(&self) -> u32;
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename),
/// creating parent folders as needed.
///
/// A destination that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO) is
/// written in place: renaming over it would replace the device with a plain file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        return file.write_all(bytes).map_err(io_err(path));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = temporary_sibling(path);
    let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The temporary name used while `path` is being written: same folder, so the rename is atomic.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| ArtifactError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON artifact and checks that its schema version is the one this build reads.
pub fn read_json<T: DeserializeOwned + Versioned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let value: T = serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    if value.schema_version() != SCHEMA_VERSION {
        return Err(ArtifactError::SchemaVersion {
            path: path.to_path_buf(),
            found: value.schema_version(),
            expected: SCHEMA_VERSION,
        });
    }
    Ok(value)
}

/// Hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file's contents, read in a streaming fashion.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Implements [`Versioned`] for types with a `schema_version: u32` field.
#[macro_export]
macro_rules! versioned {
    ($($ty:ty),+ $(,)?) => {
        $(impl $crate::io::Versioned for $ty {
            fn schema_version(&self) -> u32 {
                self.schema_version
            }
        })+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Doc {
        schema_version: u32,
        x: f64,
    }
    versioned!(Doc);

    #[test]
    fn json_round_trip_and_version_check() {
        let dir = std::env::temp_dir().join(format!("autodl-io-{}", std::process::id()));
        let path = dir.join("a/b/doc.json");
        let doc = Doc {
            schema_version: SCHEMA_VERSION,
            x: 0.1,
        };
        write_json(&path, &doc).unwrap();
        assert_eq!(read_json::<Doc>(&path).unwrap(), doc);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("doc.json")]);

        write_json(
            &path,
            &Doc {
                schema_version: 99,
                x: 1.0,
            },
        )
        .unwrap();
        let err = read_json::<Doc>(&path).unwrap_err();
        assert!(matches!(
            err,
            ArtifactError::SchemaVersion { found: 99, .. }
        ));
    }

    #[test]
    fn devices_are_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        write_json(
            null,
            &Doc {
                schema_version: SCHEMA_VERSION,
                x: 1.0,
            },
        )
        .unwrap();
        assert!(
            std::fs::metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
