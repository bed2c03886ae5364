//! `cargo xtask data`: the data stage on its own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use autodl_artifacts::context::RunContext;
use autodl_artifacts::run::paths;

use crate::report::profile_markdown;

/// A table ready for the data stage: read, joined to its labels where they come apart, and
/// with its target chosen.
pub struct Loaded {
    /// The table (features and target).
    pub table: autodl_artifacts::table::RawTable,
    /// The target column.
    pub target: String,
    /// SHA-256 of the data file (the labels file's is in `formulation`).
    pub sha: String,
    /// How the problem was formulated (recorded in the profile).
    pub formulation: Vec<String>,
}

/// Reads `file`; joins `labels` to it (on their one shared column) when given, or, when
/// `file` is itself a labels file (an identifier and one label), the table beside it that
/// it labels; chooses the target when none is given ([`autodl_data::infer_target`]). Each
/// choice is printed and recorded.
pub fn load(file: &Path, target: Option<String>, labels: Option<&Path>) -> Result<Loaded> {
    let t = Instant::now();
    let mut table = autodl_data::read_table(file)?;
    let sha = autodl_artifacts::io::sha256_file(file)?;
    eprintln!(
        "  read {}: {} rows × {} columns in {:.2} s",
        file.display(),
        table.n_rows(),
        table.columns.len(),
        t.elapsed().as_secs_f64()
    );
    let mut formulation = Vec::new();
    let mut label_column = None;
    if let Some(labels_path) = labels {
        let labels = autodl_data::read_table(labels_path)?;
        let (joined, report) = autodl_data::join_labels(&table, &labels)
            .with_context(|| format!("joining {} to {}", labels_path.display(), file.display()))?;
        label_column = labels
            .names()
            .into_iter()
            .find(|n| table.column(n).is_none())
            .map(str::to_string);
        formulation.push(format!(
            "labels from {} (sha256 {}), {report}",
            labels_path.display(),
            autodl_artifacts::io::sha256_file(labels_path)?
        ));
        table = joined;
    } else if let Some((id, label)) = autodl_data::labels_only(&table)
        && target.as_deref().is_none_or(|t| t == label)
        && let Some((path, joined, report)) = autodl_data::find_labelled_table(file, &table, &id)
    {
        formulation.push(format!(
            "{} holds only an identifier ('{id}') and a label ('{label}'): the labels of {} (sha256 {}), {report}",
            file.display(),
            path.display(),
            autodl_artifacts::io::sha256_file(&path)?
        ));
        label_column = Some(label);
        table = joined;
    } else if target.is_none()
        && let Some((path, label, joined, report)) = autodl_data::find_labels_for(file, &table)
    {
        formulation.push(format!(
            "labels for {} found beside it in {} (sha256 {}), {report}",
            file.display(),
            path.display(),
            autodl_artifacts::io::sha256_file(&path)?
        ));
        label_column = Some(label);
        table = joined;
    }
    let target = match (target, label_column) {
        (Some(t), _) => t,
        (None, Some(label)) => {
            formulation.push(format!("target '{label}': the joined labels"));
            label
        }
        (None, None) => {
            let choice = autodl_data::infer_target(&table)?;
            formulation.push(format!("target '{}': {}", choice.column, choice.reason));
            choice.column
        }
    };
    for note in &formulation {
        eprintln!("  {note}");
    }
    Ok(Loaded {
        table,
        target,
        sha,
        formulation,
    })
}

/// Files larger than this share of the available memory are profiled by streaming.
const STREAM_MEMORY_SHARE: f64 = 0.25;

/// Profiles `file`: prints the profile as a table and writes it as JSON to `out`. With
/// `stream`, or when the file is larger than a quarter of the available memory, the file is
/// streamed ([`autodl_data::profile_streaming`]) instead of read whole.
pub fn profile(
    file: &Path,
    target: Option<String>,
    labels: Option<&Path>,
    stream: bool,
    out: &Path,
) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("file not found: {}", file.display()))?
        .len();
    let large = crate::machine::available_memory()
        .is_some_and(|available| size as f64 > STREAM_MEMORY_SHARE * available as f64);
    let profile = if stream || large {
        if labels.is_some() {
            bail!("--labels cannot be joined while streaming; profile the joined table instead");
        }
        eprintln!(
            "streaming {} ({:.1} MB{})",
            file.display(),
            size as f64 / 1e6,
            if large && !stream {
                ", over a quarter of the available memory"
            } else {
                ""
            }
        );
        let t = Instant::now();
        let sha = autodl_artifacts::io::sha256_file(file)?;
        let cfg = autodl_data::PrepareConfig::new(target.unwrap_or_default());
        let opts = autodl_data::StreamOptions::default();
        let mut last = Instant::now();
        let profile = autodl_data::profile_streaming(file, &cfg, &sha, &opts, |at| {
            if last.elapsed().as_secs_f64() >= 1.0 || at.done == at.total {
                last = Instant::now();
                let secs = t.elapsed().as_secs_f64();
                eprintln!(
                    "  {:5.1}%  {} rows  {:.1} s  {:.0} MB/s",
                    100.0 * at.done as f64 / at.total.max(1) as f64,
                    at.rows,
                    secs,
                    size as f64 * at.done as f64 / at.total.max(1) as f64 / 1e6 / secs.max(1e-9)
                );
            }
        })?;
        for note in &profile.formulation {
            eprintln!("  {note}");
        }
        eprintln!(
            "streamed {} rows in {:.2} s",
            profile.n_rows,
            t.elapsed().as_secs_f64()
        );
        profile
    } else {
        let loaded = load(file, target, labels)?;
        let cfg = autodl_data::PrepareConfig::new(&loaded.target);
        let mut profile = autodl_data::profile_table(&cfg, &loaded.table, &loaded.sha)?;
        profile.formulation = loaded.formulation;
        profile
    };
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
    labels: Option<&Path>,
    seed: u64,
    (group_column, time_column): (Option<String>, Option<String>),
    out: &Path,
) -> Result<()> {
    let loaded = load(file, target, labels)?;
    let mut cfg = autodl_data::PrepareConfig::new(&loaded.target);
    cfg.group_column = group_column;
    cfg.time_column = time_column;
    let t = Instant::now();
    let mut prepared = autodl_data::prepare(
        &cfg,
        &loaded.table,
        &loaded.sha,
        &RunContext::new(seed, out),
    )?;
    prepared.profile.formulation = loaded.formulation;
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
