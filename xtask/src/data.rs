//! `cargo xtask data`: the data stage on its own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use autodl_artifacts::context::RunContext;
use autodl_artifacts::run::paths;

use crate::report::profile_markdown;

/// The target: the one given, else the table's last column (as `cargo xtask run` does).
fn target_or_last(table: &autodl_artifacts::table::RawTable, target: Option<String>) -> String {
    target.unwrap_or_else(|| {
        let last = table
            .columns
            .last()
            .map(|c| c.name.clone())
            .unwrap_or_default();
        eprintln!("no --target given; using the last column, '{last}'");
        last
    })
}

fn read(file: &Path) -> Result<(autodl_artifacts::table::RawTable, String)> {
    let t = Instant::now();
    let table = autodl_data::read_table(file)?;
    let sha = autodl_artifacts::io::sha256_file(file)?;
    eprintln!(
        "read {}: {} rows × {} columns in {:.2} s",
        file.display(),
        table.n_rows(),
        table.columns.len(),
        t.elapsed().as_secs_f64()
    );
    Ok((table, sha))
}

/// Profiles `file`: prints the profile as a table and writes it as JSON to `out`.
pub fn profile(file: &Path, target: Option<String>, out: &Path) -> Result<()> {
    let (table, sha) = read(file)?;
    let cfg = autodl_data::PrepareConfig::new(target_or_last(&table, target));
    let profile = autodl_data::profile_table(&cfg, &table, &sha)?;
    println!("{}", profile_markdown(&profile, None));
    autodl_artifacts::io::write_json(out, &profile)?;
    eprintln!("profile: {}", out.display());
    Ok(())
}

/// Prepares `file` for training: profile, split, fitted transform and transformed splits,
/// written under `out` as a run directory's `data/` would be. Prints the profile and every
/// cleaning decision.
pub fn prepare(
    file: &Path,
    target: Option<String>,
    seed: u64,
    (group_column, time_column): (Option<String>, Option<String>),
    out: &Path,
) -> Result<()> {
    let (table, sha) = read(file)?;
    let mut cfg = autodl_data::PrepareConfig::new(target_or_last(&table, target));
    cfg.group_column = group_column;
    cfg.time_column = time_column;
    let t = Instant::now();
    let prepared = autodl_data::prepare(&cfg, &table, &sha, &RunContext::new(seed, out))?;
    eprintln!("prepared in {:.2} s", t.elapsed().as_secs_f64());
    println!(
        "{}",
        profile_markdown(&prepared.profile, Some(&prepared.transform))
    );
    autodl_artifacts::io::write_json(&out.join(paths::PROFILE), &prepared.profile)?;
    autodl_artifacts::io::write_json(&out.join(paths::TRANSFORM), &prepared.transform)?;
    let data = &prepared.data;
    for (rel, split) in [
        (paths::TRAIN, &data.train),
        (paths::VALID, &data.valid),
        (paths::TEST, &data.test),
    ] {
        autodl_data::write_matrix(
            &split.x,
            &split.y,
            &data.feature_names,
            &format!("target:{}", cfg.target),
            &out.join(rel),
        )
        .with_context(|| format!("writing {rel}"))?;
    }
    println!(
        "split {}/{}/{} rows (train/validation/test) → {} features; written under {}",
        data.train.y.len(),
        data.valid.y.len(),
        data.test.y.len(),
        data.feature_names.len(),
        out.join("data").display()
    );
    Ok(())
}

/// The default output of a `data` command: `runs/<prefix><file stem><suffix>`.
pub fn default_out(file: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "data".into());
    PathBuf::from("runs").join(format!("{prefix}{stem}{suffix}"))
}
