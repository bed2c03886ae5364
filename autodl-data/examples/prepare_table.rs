//! The data stage on its own: profile and prepare a table, then apply the fitted transform to
//! new rows the way serving does.
//!
//! ```text
//! cargo run -p autodl-data --example prepare_table -- datasets/messy_loans.csv approved
//! ```

use std::path::PathBuf;

use autodl_artifacts::context::RunContext;
use autodl_artifacts::transform::AbsentColumns;
use autodl_data::{PrepareConfig, prepare, read_table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "datasets/penguins.csv".into()),
    );
    let target = args.next().unwrap_or_else(|| "species".into());

    let table = read_table(&path)?;
    let cfg = PrepareConfig::new(&target);
    let prepared = prepare(&cfg, &table, "example", &RunContext::new(42, "."))?;

    println!(
        "{}: {} rows; task {} ({})",
        path.display(),
        prepared.profile.n_rows,
        prepared.profile.task,
        prepared.profile.task_reason
    );
    for c in &prepared.profile.columns {
        println!(
            "  {:<20} {:<12} missing {:>5.1}%  distinct {:>6}{}{}",
            c.name,
            c.kind.to_string(),
            100.0 * c.missing_share,
            c.distinct,
            if c.id_like { "  ID-like" } else { "" },
            c.alone_predicts_target
                .map_or(String::new(), |s| format!("  alone → target {s:.3}"))
        );
    }
    println!("decisions:");
    for d in &prepared.transform.decisions {
        println!("  {:<20} {:<16} {}", d.column, d.action, d.reason);
    }
    println!(
        "{} features; train/valid/test rows {}/{}/{}",
        prepared.data.feature_names.len(),
        prepared.data.train.y.len(),
        prepared.data.valid.y.len(),
        prepared.data.test.y.len()
    );

    // Serving sees raw rows: here the test rows without their first feature column, which
    // the transform imputes on request instead of refusing.
    let mut rows = prepared.raw_test.clone();
    let dropped = rows.columns.remove(0).name;
    let x = prepared
        .transform
        .transform_with(&rows, AbsentColumns::Impute)?;
    println!(
        "test rows without '{dropped}', imputed: {} × {} matrix",
        x.n_rows, x.n_cols
    );
    Ok(())
}
