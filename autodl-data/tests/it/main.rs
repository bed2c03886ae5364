//! Reading and writing real files, and preparing the shipped datasets.

use std::path::{Path, PathBuf};

use autodl_artifacts::context::RunContext;
use autodl_artifacts::table::{ColumnValues, Task};
use autodl_data::{DataError, PrepareConfig, prepare, read_table, write_table};

/// A fresh scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("autodl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets")
        .join(name)
}

#[test]
fn csv_missing_spellings_and_parquet_round_trip() {
    let dir = Scratch::new("data-csv");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,b,c\n1.5,x,\nNA,,3\n2,NA,4\n").unwrap();
    let t = read_table(&csv).unwrap();
    assert_eq!(t.names(), vec!["a", "b", "c"]);
    assert_eq!(
        t.columns[0].values,
        ColumnValues::Numeric(vec![Some(1.5), None, Some(2.0)])
    );
    assert_eq!(
        t.columns[1].values,
        ColumnValues::Text(vec![Some("x".into()), None, None])
    );
    assert_eq!(
        t.columns[2].values,
        ColumnValues::Numeric(vec![None, Some(3.0), Some(4.0)])
    );
    let pq = dir.path().join("t.parquet");
    write_table(&t, &pq).unwrap();
    assert_eq!(read_table(&pq).unwrap(), t);
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = Scratch::new("data-bad");
    let p = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    assert!(matches!(
        read_table(&dir.path().join("none.csv")),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(
        read_table(&p("e.csv", b"")),
        Err(DataError::Empty { .. })
    ));
    assert!(matches!(
        read_table(&p("h.csv", b"a,b\n")),
        Err(DataError::Empty { .. })
    ));
    assert!(matches!(
        read_table(&p("t.xlsx", b"PK")),
        Err(DataError::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        read_table(&p("bad.parquet", b"not parquet")),
        Err(DataError::Read { .. })
    ));
}

#[test]
fn penguins_prepare_end_to_end() {
    let t = read_table(&dataset("penguins.csv")).unwrap();
    let p = prepare(
        &PrepareConfig::new("species"),
        &t,
        "sha",
        &RunContext::new(42, "."),
    )
    .unwrap();
    assert_eq!(p.profile.task, Task::Multiclass);
    assert_eq!(p.profile.n_rows, 344);
    let sex = p.profile.columns.iter().find(|c| c.name == "sex").unwrap();
    assert_eq!(sex.missing, 11);
    // Every transformed value is finite: imputation covered every missing cell.
    for split in [&p.data.train, &p.data.valid, &p.data.test] {
        assert!(split.x.data.iter().all(|v| v.is_finite()));
    }
    assert_eq!(
        p.data.train.y.len() + p.data.valid.y.len() + p.data.test.y.len(),
        344
    );
    // Missing-target check: the profile saw 0 missing in species.
    assert!(
        !p.transform
            .decisions
            .iter()
            .any(|d| d.action == "drop_rows")
    );
}

#[test]
fn missing_target_lists_columns() {
    let t = read_table(&dataset("wine.csv")).unwrap();
    let err = prepare(
        &PrepareConfig::new("Cultivar"),
        &t,
        "",
        &RunContext::new(0, "."),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'Cultivar' not found") && msg.contains("cultivar"),
        "{msg}"
    );
}
