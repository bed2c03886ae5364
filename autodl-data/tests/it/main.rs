//! Reading and writing real files, and preparing the shipped datasets.

use std::path::{Path, PathBuf};

use autodl_artifacts::context::RunContext;
use autodl_artifacts::profile::{ColumnKind, ColumnProfile};
use autodl_artifacts::table::{ColumnValues, RawColumn, RawTable, Task};
use autodl_artifacts::transform::CleaningDecision;
use autodl_data::{DataError, PrepareConfig, Prepared, prepare, read_table, write_table};

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

/// `table` prepared with the default settings for `target` and the run seed `seed`.
fn prepare_default(table: &RawTable, target: &str, seed: u64) -> Prepared {
    prepare(
        &PrepareConfig::new(target),
        table,
        "sha",
        &RunContext::new(seed, "."),
    )
    .unwrap()
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
    // Text is read dictionary-encoded: each distinct string once.
    assert_eq!(
        t.columns[1].values,
        ColumnValues::dict_from([Some("x"), None, None].into_iter())
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

/// The bad-input corpus: each file gets a clear error or a documented handling.
#[test]
fn bad_input_corpus() {
    let dir = Scratch::new("data-corpus");
    let p = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    // Blank lines only: empty.
    assert!(matches!(
        read_table(&p("blank.csv", b"\n\n  \n")),
        Err(DataError::Empty { .. })
    ));
    // Ragged rows: an error with every ragged line number (quoted commas and line breaks
    // inside quotes do not count).
    let err = read_table(&p(
        "ragged.csv",
        b"a,b,c\n1,\"x,y\",3\n4,5\n6,\"multi\nline\",7\n8,9,10,11\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DataError::Ragged {
                rows: 2,
                expected: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("line 3 has 2 fields") && msg.contains("line 6 has 4 fields"),
        "{msg}"
    );
    // Bytes that are not UTF-8 (Latin-1 é on line 3): an error giving the line.
    let err = read_table(&p("latin1.csv", b"name,y\nabc,1\ncaf\xe9,0\n")).unwrap_err();
    assert!(
        err.to_string().contains("line 3") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    // Semicolons, and no header: detected.
    let t = read_table(&p("semi.csv", b"1;2.5;a\n2;3.5;b\n3;4.5;a\n")).unwrap();
    assert_eq!(t.names(), vec!["column_1", "column_2", "column_3"]);
    assert_eq!(t.n_rows(), 3);
    let t = read_table(&p("tab.tsv", b"x\ty\n1\t2\n")).unwrap();
    assert_eq!(t.names(), vec!["x", "y"]);
    // Mixed types in a column: read as text, profiled as a categorical column.
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{},{}\n",
                if i % 7 == 0 {
                    "n/a?".to_string()
                } else {
                    i.to_string()
                },
                i % 2
            )
        })
        .collect();
    let t = read_table(&p("mixed.csv", format!("m,y\n{rows}").as_bytes())).unwrap();
    let prepared = prepare_default(&t, "y", 0);
    let m = prepared
        .profile
        .columns
        .iter()
        .find(|c| c.name == "m")
        .unwrap();
    assert_eq!(m.kind, ColumnKind::Categorical);
    // An all-null column: dropped with its reason.
    let rows: String = (0..40).map(|i| format!("{i}.5,,{}\n", i % 2)).collect();
    let t = read_table(&p("null.csv", format!("x,empty,y\n{rows}").as_bytes())).unwrap();
    let prepared = prepare_default(&t, "y", 0);
    let d = decisions(&prepared.transform.decisions, "empty");
    assert_eq!(d, vec![("drop", "every value is missing")]);
    // A target with missing values: those rows are dropped, and the decision says how many.
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{}.25,{}\n",
                i,
                if i % 10 == 3 {
                    String::new()
                } else {
                    (i % 2).to_string()
                }
            )
        })
        .collect();
    let t = read_table(&p("target.csv", format!("x,y\n{rows}").as_bytes())).unwrap();
    let prepared = prepare_default(&t, "y", 0);
    let d = decisions(&prepared.transform.decisions, "y");
    assert_eq!(d[0], ("drop_rows", "4 rows have no target value"));
    let kept =
        prepared.data.train.y.len() + prepared.data.valid.y.len() + prepared.data.test.y.len();
    assert_eq!(kept, 36);
}

#[test]
fn arrow_ipc_and_json_lines_read_like_csv() {
    let dir = Scratch::new("data-formats");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "x,c,y\n1.5,a,0\n2.5,,1\n,b,0\n").unwrap();
    let from_csv = read_table(&csv).unwrap();
    let jsonl = dir.path().join("t.jsonl");
    std::fs::write(
        &jsonl,
        "{\"x\": 1.5, \"c\": \"a\", \"y\": 0}\n{\"x\": 2.5, \"c\": null, \"y\": 1}\n{\"x\": null, \"c\": \"b\", \"y\": 0}\n",
    )
    .unwrap();
    assert_eq!(read_table(&jsonl).unwrap(), from_csv);
    let ipc = dir.path().join("t.arrow");
    write_table(&from_csv, &ipc).unwrap();
    assert_eq!(read_table(&ipc).unwrap(), from_csv);
}

#[test]
fn penguins_prepare_end_to_end() {
    let t = read_table(&dataset("penguins.csv")).unwrap();
    let p = prepare_default(&t, "species", 42);
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

/// The decisions about `column`, as (action, reason) pairs.
fn decisions<'a>(all: &'a [CleaningDecision], column: &str) -> Vec<(&'a str, &'a str)> {
    all.iter()
        .filter(|d| d.column == column)
        .map(|d| (d.action.as_str(), d.reason.as_str()))
        .collect()
}

fn column<'a>(columns: &'a [ColumnProfile], name: &str) -> &'a ColumnProfile {
    columns.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn penguins_profile_and_decisions() {
    let t = read_table(&dataset("penguins.csv")).unwrap();
    let p = prepare_default(&t, "species", 42);
    let cols = &p.profile.columns;
    // Counts as in the palmerpenguins documentation: 344 birds, 152 Adelie, 124 Gentoo, 68
    // Chinstrap; 2 birds without measurements, 11 without sex.
    assert_eq!(
        p.profile.class_counts,
        vec![
            ("Adelie".to_string(), 152),
            ("Chinstrap".to_string(), 68),
            ("Gentoo".to_string(), 124)
        ]
    );
    for name in [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ] {
        let c = column(cols, name);
        assert_eq!((c.kind, c.missing), (ColumnKind::Numeric, 2), "{name}");
        assert!(
            !c.id_like && !c.constant && c.outliers == 0,
            "{name}: {c:?}"
        );
    }
    assert_eq!(column(cols, "island").kind, ColumnKind::Categorical);
    assert_eq!(column(cols, "island").distinct, 3);
    assert_eq!(column(cols, "sex").distinct, 2);
    assert_eq!(column(cols, "year").distinct, 3);
    assert_eq!(p.profile.duplicate_rows, 0);
    // Island says a lot about species (Gentoo live on Biscoe only) but is no leak.
    for c in cols.iter().filter(|c| c.name != "species") {
        let score = c.alone_predicts_target.unwrap();
        assert!((0.3..0.95).contains(&score), "{}: {score}", c.name);
    }
    let d = &p.transform.decisions;
    assert!(!d.iter().any(|d| d.action == "drop"), "{d:?}");
    // Missing measurements: median plus an indicator, where the training split had any.
    for (column, _) in d
        .iter()
        .filter(|d| d.action == "impute_median")
        .map(|d| (&d.column, 0))
    {
        assert!(p.data.feature_names.contains(&format!("{column}:missing")));
    }
    assert_eq!(decisions(d, "sex")[0].0, "impute_mode");
    assert_eq!(
        decisions(d, "island"),
        vec![("one_hot", "categorical with 3 categories")]
    );
    // Chinstrap : Adelie is 68 : 152, under 3:1, so no class weights.
    assert!(decisions(d, "species").is_empty(), "{d:?}");
}

#[test]
fn a_messy_table_is_profiled_and_cleaned_with_reasons() {
    // datasets/messy_loans.csv comes from scripts/make_messy.py; its docstring lists what each
    // column is.
    let t = read_table(&dataset("messy_loans.csv")).unwrap();
    let p = prepare_default(&t, "approved", 1);
    let cols = &p.profile.columns;
    let kind = |name: &str| column(cols, name).kind;
    assert_eq!(p.profile.task, Task::Binary);
    assert!(column(cols, "rownames").id_like);
    assert!(column(cols, "customer_id").id_like);
    assert_eq!(kind("signup_date"), ColumnKind::Datetime);
    assert_eq!(kind("last_login"), ColumnKind::Datetime);
    assert_eq!(kind("is_member"), ColumnKind::Boolean);
    assert_eq!(kind("comment"), ColumnKind::Text);
    assert_eq!(kind("branch_code"), ColumnKind::Categorical);
    assert!(column(cols, "country").constant);
    // The three data-entry slips (×400), and one honest lognormal tail value (118,944.78).
    assert_eq!(column(cols, "income").outliers, 4);
    assert!(
        column(cols, "decision_letter")
            .alone_predicts_target
            .unwrap()
            > 0.999
    );
    assert!(column(cols, "income").alone_predicts_target.unwrap() < 0.95);

    let d = &p.transform.decisions;
    let action = |name: &str| -> Vec<&str> { decisions(d, name).iter().map(|x| x.0).collect() };
    for (name, why) in [
        ("rownames", "identifier-like"),
        ("customer_id", "identifier-like"),
        ("country", "constant"),
        ("decision_letter", "target leak"),
    ] {
        let got = decisions(d, name);
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        assert_eq!(got[0].0, "drop", "{name}");
        assert!(got[0].1.contains(why), "{name}: {}", got[0].1);
    }
    assert_eq!(action("signup_date"), vec!["expand_date"]);
    assert!(!decisions(d, "signup_date")[0].1.contains("hour"));
    assert_eq!(action("last_login"), vec!["expand_date"]);
    assert!(
        decisions(d, "last_login")[0]
            .1
            .contains("with times of day")
    );
    assert!(decisions(d, "last_login")[0].1.contains("indicator"));
    assert_eq!(action("comment"), vec!["hash_text"]);
    assert_eq!(action("branch_code"), vec!["frequency_encode"]);
    assert_eq!(action("city"), vec!["merge_rare", "one_hot"]);
    assert!(decisions(d, "city")[0].1.contains("Maastricht"));
    assert_eq!(action("income"), vec!["clip_outliers", "impute_median"]);
    assert_eq!(action("is_member"), vec!["boolean"]);
    assert_eq!(action("approved"), vec!["class_weights"]);
    // Its dates are not in row order: a shuffled split.
    assert!(!d.iter().any(|d| d.action.starts_with("split_by")));

    let names = &p.data.feature_names;
    for expected in [
        "income:missing",
        "last_login:hour_sin",
        "last_login:missing",
        "signup_date:month_cos",
        "city=(other)",
        "branch_code:frequency",
        "comment:hash0",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} in {names:?}"
        );
    }
    for dropped in ["rownames", "customer_id", "country", "decision_letter"] {
        assert!(!names.iter().any(|n| n.starts_with(dropped)), "{dropped}");
    }
    for split in [&p.data.train, &p.data.valid, &p.data.test] {
        assert!(split.x.data.iter().all(|v| v.is_finite()));
    }
}

fn text_column(name: &str, values: Vec<String>) -> RawColumn {
    RawColumn {
        name: name.into(),
        values: ColumnValues::Text(values.into_iter().map(Some).collect()),
    }
}

fn number_column(name: &str, values: Vec<f64>) -> RawColumn {
    RawColumn {
        name: name.into(),
        values: ColumnValues::Numeric(values.into_iter().map(Some).collect()),
    }
}

fn labels(t: &RawTable, column: &str) -> Vec<String> {
    let c = t.column(column).unwrap();
    (0..t.n_rows())
        .map(|i| c.values.label(i).unwrap())
        .collect()
}

#[test]
fn rows_logged_in_time_order_are_split_by_time() {
    let n = 200;
    let day = |i: usize| format!("2020-{:02}-{:02}", 1 + i / 28 % 12, 1 + i % 28);
    let table = RawTable {
        columns: vec![
            // Rows in date order (with a few equal dates), as a log would be.
            text_column("when", (0..n).map(|i| day(i / 2)).collect()),
            number_column("x", (0..n).map(|i| ((i * 37) % 101) as f64).collect()),
            number_column("y", (0..n).map(|i| ((i * 7) % 3) as f64).collect()),
        ],
    };
    let p = prepare_default(&table, "y", 0);
    let d = decisions(&p.transform.decisions, "when");
    assert_eq!(d[0].0, "split_by_time", "{d:?}");
    assert!(d[0].1.contains("rows are in time order"), "{}", d[0].1);
    let (train, test) = (labels(&p.raw_train, "when"), labels(&p.raw_test, "when"));
    assert!(
        train.iter().max() <= test.iter().min(),
        "training must precede testing"
    );
    assert_eq!(p.raw_test.n_rows(), 30);

    // The same rows shuffled: no time order, a stratified shuffle as usual.
    let order: Vec<usize> = (0..n).map(|i| (i * 73) % n).collect();
    let shuffled = table.take(&order);
    let p = prepare_default(&shuffled, "y", 0);
    assert!(
        !p.transform
            .decisions
            .iter()
            .any(|d| d.action == "split_by_time")
    );

    // Asked for explicitly, on a numeric column.
    let mut cfg = PrepareConfig::new("y");
    cfg.time_column = Some("x".into());
    let p = prepare(&cfg, &shuffled, "h", &RunContext::new(0, ".")).unwrap();
    let xs = |t: &RawTable| {
        labels(t, "x")
            .iter()
            .map(|v| v.parse::<f64>().unwrap())
            .collect::<Vec<_>>()
    };
    let train_max = xs(&p.raw_train).into_iter().fold(f64::MIN, f64::max);
    let test_min = xs(&p.raw_test).into_iter().fold(f64::MAX, f64::min);
    assert!(train_max <= test_min, "{train_max} > {test_min}");
}

#[test]
fn a_group_column_keeps_each_group_in_one_split() {
    let n = 200;
    let table = RawTable {
        columns: vec![
            text_column("patient", (0..n).map(|i| format!("p{}", i % 40)).collect()),
            number_column("x", (0..n).map(|i| ((i * 37) % 101) as f64).collect()),
            number_column("y", (0..n).map(|i| ((i * 7) % 2) as f64).collect()),
        ],
    };
    let mut cfg = PrepareConfig::new("y");
    cfg.group_column = Some("patient".into());
    let p = prepare(&cfg, &table, "h", &RunContext::new(3, ".")).unwrap();
    let train: std::collections::HashSet<String> =
        labels(&p.raw_train, "patient").into_iter().collect();
    let test: std::collections::HashSet<String> =
        labels(&p.raw_test, "patient").into_iter().collect();
    assert!(
        train.is_disjoint(&test),
        "{:?}",
        train.intersection(&test).collect::<Vec<_>>()
    );
    assert!(!test.is_empty());
    let d = decisions(&p.transform.decisions, "patient");
    assert_eq!(d[0].0, "split_by_group");
    assert!(d[0].1.starts_with("40 groups"), "{}", d[0].1);
    assert_eq!(
        p.data.train.y.len() + p.data.valid.y.len() + p.data.test.y.len(),
        n
    );

    cfg.group_column = Some("ward".into());
    let err = prepare(&cfg, &table, "h", &RunContext::new(3, ".")).unwrap_err();
    assert!(
        err.to_string().contains("group column 'ward' not found"),
        "{err}"
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

#[test]
fn a_labels_file_and_its_table_find_each_other_in_a_directory() {
    let dir = Scratch::new("labels-beside");
    let n = 200;
    // Features of 200 rows keyed by non-contiguous ids; labels for 150 of them, shuffled,
    // in a file of their own; an unrelated table with an `id` column of other values.
    let ids: Vec<f64> = (0..n).map(|i| (1000 + 7 * i) as f64).collect();
    let features = RawTable {
        columns: vec![
            number_column("id", ids.clone()),
            number_column("x", (0..n).map(|i| (i % 13) as f64).collect()),
            text_column("c", (0..n).map(|i| ["u", "v"][i % 2].to_string()).collect()),
        ],
    };
    let labelled: Vec<usize> = (0..150).map(|i| (i * 37) % n).collect();
    let labels_table = RawTable {
        columns: vec![
            number_column("id", labelled.iter().map(|&i| ids[i]).collect()),
            text_column(
                "y",
                labelled.iter().map(|&i| format!("k{}", i % 3)).collect(),
            ),
        ],
    };
    let other = RawTable {
        columns: vec![
            number_column("id", (0..n).map(|i| i as f64).collect()),
            number_column("z", vec![1.0; n]),
        ],
    };
    write_table(&features, &dir.path().join("features.parquet")).unwrap();
    let labels_path = dir.path().join("features_labels.csv");
    let mut csv = String::from("id,y\n");
    for r in 0..labels_table.n_rows() {
        csv += &format!(
            "{},{}\n",
            labels_table.columns[0].values.label(r).unwrap(),
            labels_table.columns[1].values.label(r).unwrap()
        );
    }
    std::fs::write(&labels_path, csv).unwrap();
    write_table(&other, &dir.path().join("other.parquet")).unwrap();

    let labels_read = read_table(&labels_path).unwrap();
    assert_eq!(
        autodl_data::labels_only(&labels_read),
        Some(("id".to_string(), "y".to_string()))
    );
    let (path, joined, report) =
        autodl_data::find_labelled_table(&labels_path, &labels_read, "id").unwrap();
    assert_eq!(path.file_name().unwrap(), "features.parquet");
    assert_eq!((report.matched, report.label_rows), (150, 150));
    assert_eq!(joined.names(), vec!["id", "x", "c", "y"]);
    for r in 0..joined.n_rows() {
        let id: f64 = joined.columns[0].values.label(r).unwrap().parse().unwrap();
        let i = ((id - 1000.0) / 7.0) as usize;
        assert_eq!(
            joined.columns[3].values.label(r).unwrap(),
            format!("k{}", i % 3)
        );
        assert_eq!(
            joined.columns[1].values.label(r).unwrap(),
            ((i % 13) as f64).to_string()
        );
    }

    let features_path = dir.path().join("features.parquet");
    let features_read = read_table(&features_path).unwrap();
    let (path, label, joined, report) =
        autodl_data::find_labels_for(&features_path, &features_read).unwrap();
    assert_eq!(
        (path.file_name().unwrap(), label.as_str()),
        ("features_labels.csv".as_ref(), "y")
    );
    assert_eq!(report.matched, 150);
    assert_eq!(joined.n_rows(), 150);

    // Labels for under half of the rows are not taken as this table's labels.
    let few: String = (0..99)
        .map(|i| format!("{},k{}\n", ids[i], i % 3))
        .collect();
    std::fs::write(&labels_path, format!("id,y\n{few}")).unwrap();
    assert!(autodl_data::find_labels_for(&features_path, &features_read).is_none());
    let enough: String = (0..100)
        .map(|i| format!("{},k{}\n", ids[i], i % 3))
        .collect();
    std::fs::write(&labels_path, format!("id,y\n{enough}")).unwrap();
    assert!(autodl_data::find_labels_for(&features_path, &features_read).is_some());
}

/// A CSV file of `n` rows with every kind of column, quoted fields holding delimiters, quotes
/// and line breaks, and missing values.
fn awkward_csv(n: usize) -> String {
    let mut csv = String::from("id,amount,city,note,flag,day,y\n");
    for i in 0..n {
        let amount = if i % 17 == 0 {
            String::new()
        } else {
            format!(
                "{:.3}",
                (i as f64 * 0.37).sin() * 100.0 + if i % 500 == 3 { 1e4 } else { 0.0 }
            )
        };
        let city = ["Oslo", "Lima", "\"Rome, IT\"", "Pune"][i % 4];
        let note = match i % 5 {
            0 => "\"line one\nline two\"".to_string(),
            1 => "\"she said \"\"hi\"\"\"".to_string(),
            _ => format!("w{}", i % 7),
        };
        let flag = ["yes", "no", ""][i % 3];
        let day = format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        let y = ["a", "b", "b", "c"][(i * 7 + i / 3) % 4];
        csv += &format!("{},{amount},{city},{note},{flag},{day},{y}\n", 10 + 3 * i);
    }
    csv
}

#[test]
fn a_streamed_profile_equals_the_in_memory_one() {
    let dir = Scratch::new("stream-profile");
    let path = dir.path().join("awkward.csv");
    std::fs::write(&path, awkward_csv(3000)).unwrap();
    let table = read_table(&path).unwrap();
    let cfg = PrepareConfig::new("y");
    let whole = autodl_data::profile_table(&cfg, &table, "sha").unwrap();
    let mut pieces = 0;
    let opts = autodl_data::StreamOptions {
        chunk_bytes: 4096,
        sample_rows: 10_000,
        ..Default::default()
    };
    let streamed =
        autodl_data::profile_streaming(&path, &cfg, "sha", &opts, |_| pieces += 1).unwrap();
    assert!(pieces > 20, "{pieces} pieces");
    assert_eq!(streamed.sampled_rows, None);
    assert_eq!(streamed.n_rows, 3000);
    assert_eq!(streamed.class_counts, whole.class_counts);
    assert_eq!(streamed.duplicate_rows, whole.duplicate_rows);
    for (s, w) in streamed.columns.iter().zip(&whole.columns) {
        let (mut s, mut w) = (s.clone(), w.clone());
        // Summaries are accumulated in another order: equal to rounding.
        if let (Some(a), Some(b)) = (s.numeric.take(), w.numeric.take()) {
            for (x, y) in [
                (a.min, b.min),
                (a.max, b.max),
                (a.mean, b.mean),
                (a.std, b.std),
            ] {
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "{}: {x} vs {y}",
                    s.name
                );
            }
        }
        assert_eq!(s, w);
    }
    assert!(column(&streamed.columns, "id").id_like);
    assert_eq!(column(&streamed.columns, "day").kind, ColumnKind::Datetime);
    assert_eq!(column(&streamed.columns, "note").distinct, 9);

    // With a sample smaller than the file, what is counted stays exact.
    let small = autodl_data::StreamOptions {
        chunk_bytes: 8192,
        sample_rows: 500,
        seed: 3,
        ..Default::default()
    };
    let sampled = autodl_data::profile_streaming(&path, &cfg, "sha", &small, |_| ()).unwrap();
    assert_eq!(sampled.sampled_rows, Some(500));
    assert_eq!(sampled.class_counts, whole.class_counts);
    for (s, w) in sampled.columns.iter().zip(&whole.columns) {
        assert_eq!(
            (s.missing, s.distinct, s.id_like, s.kind),
            (w.missing, w.distinct, w.id_like, w.kind),
            "{}",
            s.name
        );
    }
    let amount = column(&sampled.columns, "amount").numeric.as_ref().unwrap();
    let exact = column(&whole.columns, "amount").numeric.as_ref().unwrap();
    assert!((amount.mean - exact.mean).abs() < 1e-9 && (amount.std - exact.std).abs() < 1e-9);

    // Parquet streams by rows; a ragged row deep in a CSV file is reported at its line.
    let parquet = dir.path().join("awkward.parquet");
    write_table(&table, &parquet).unwrap();
    let by_rows = autodl_data::StreamOptions {
        chunk_rows: 700,
        ..opts
    };
    let p = autodl_data::profile_streaming(&parquet, &cfg, "sha", &by_rows, |_| ()).unwrap();
    assert_eq!(
        (p.n_rows, p.class_counts.clone()),
        (3000, whole.class_counts.clone())
    );
    let mut text = awkward_csv(3000);
    text.push_str("1,2,3\n");
    std::fs::write(&path, text).unwrap();
    let err = autodl_data::profile_streaming(&path, &cfg, "sha", &opts, |_| ()).unwrap_err();
    let lines = awkward_csv(3000).lines().count();
    assert!(
        err.to_string()
            .contains(&format!("line {} has 3 fields", lines + 1)),
        "{err}"
    );
}

#[test]
fn distinct_counts_past_the_exact_limit_are_estimated_closely() {
    let dir = Scratch::new("stream-distinct");
    let path = dir.path().join("many.csv");
    let n = autodl_data::EXACT_DISTINCT * 2;
    let mut csv = String::from("key,y\n");
    for i in 0..n {
        csv += &format!("k{},{}\n", (i * 7919) % n, i % 2);
    }
    std::fs::write(&path, csv).unwrap();
    let opts = autodl_data::StreamOptions {
        chunk_bytes: 1 << 20,
        sample_rows: 1000,
        ..Default::default()
    };
    let p = autodl_data::profile_streaming(&path, &PrepareConfig::new("y"), "sha", &opts, |_| ())
        .unwrap();
    let key = column(&p.columns, "key");
    let error = (key.distinct as f64 - n as f64).abs() / n as f64;
    assert!(error < 0.03, "estimated {} of {n}", key.distinct);
    assert!(key.id_like);
}

#[test]
fn small_data_gets_stratified_folds_each_fitted_on_its_own_rows() {
    let table = read_table(&dataset("penguins.csv")).unwrap();
    let p = prepare_default(&table, "species", 7);
    let pool = p.data.train.y.len() + p.data.valid.y.len();
    assert_eq!(p.folds.len(), 5);
    assert!(p.transform.decisions.iter().any(|d| d.action == "k_fold"));
    let held_out: usize = p.folds.iter().map(|f| f.valid.y.len()).sum();
    assert_eq!(held_out, pool);
    let width = p.data.feature_names.len();
    for fold in &p.folds {
        assert_eq!(fold.train.y.len() + fold.valid.y.len(), pool);
        assert_eq!((fold.train.x.n_cols, fold.valid.x.n_cols), (width, width));
        // Stratified: each class's share held out is within one row of a fifth.
        for class in 0..3u32 {
            let all = p
                .folds
                .iter()
                .map(|f| f.valid.y.iter().filter(|&&y| y == class as f32).count())
                .sum::<usize>();
            let here = fold.valid.y.iter().filter(|&&y| y == class as f32).count();
            assert!(
                (here as f64 - all as f64 / 5.0).abs() <= 1.0,
                "class {class}: {here} of {all}"
            );
        }
        // Refitted on the fold's training rows: a standardised, unclipped numeric feature has
        // mean 0 there (imputed values included).
        let j = p
            .data
            .feature_names
            .iter()
            .position(|n| n == "bill_length_mm")
            .unwrap();
        let mean = (0..fold.train.x.n_rows)
            .map(|i| f64::from(fold.train.x.row(i)[j]))
            .sum::<f64>()
            / fold.train.x.n_rows as f64;
        assert!(mean.abs() < 1e-5, "fold mean {mean}");
    }
    // Larger tables, and tables split by time, get none.
    let digits = read_table(&dataset("digits.csv")).unwrap();
    assert!(prepare_default(&digits, "digit", 7).folds.is_empty());
    let mut off = PrepareConfig::new("species");
    off.kfold_rows = 0;
    assert!(
        prepare(&off, &table, "sha", &RunContext::new(7, "."))
            .unwrap()
            .folds
            .is_empty()
    );
}
