//! Profiling, task inference, splitting and fitting the transform.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use autodl_artifacts::SCHEMA_VERSION;
use autodl_artifacts::arch::InputShape;
use autodl_artifacts::context::RunContext;
use autodl_artifacts::profile::{ColumnKind, ColumnProfile, DataProfile, NumericSummary};
use autodl_artifacts::table::{
    ColumnValues, FastHash, Fold, MISSING_CODE, PreparedData, RawColumn, RawTable, SplitData, Task,
};
use autodl_artifacts::transform::{
    CleaningDecision, FeatureStep, FeatureTransform, TargetEncoding, has_time_of_day, parse_bool,
    parse_datetime, parse_number,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::{DataError, Result};

/// Settings of the data stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareConfig {
    /// The target column.
    pub target: String,
    /// Force a task instead of inferring it.
    pub task: Option<Task>,
    /// Share of rows for validation.
    pub valid_fraction: f64,
    /// Share of rows for the test split.
    pub test_fraction: f64,
    /// A categorical column with at most this many categories is one-hot encoded; one with
    /// more is frequency encoded.
    pub max_categories: usize,
    /// A category seen in fewer than this share of the training rows is merged into
    /// `(other)` (one-hot encoding).
    #[serde(default = "default_rare_share")]
    pub rare_share: f64,
    /// Hash buckets for a free-text column (0 drops free text instead).
    #[serde(default = "default_text_buckets")]
    pub text_buckets: usize,
    /// A feature that alone predicts the target at least this well on rows it was not fitted
    /// on (accuracy, or R² for regression) is dropped as a leak.
    #[serde(default = "default_leak_threshold")]
    pub leak_threshold: f64,
    /// A numeric target with integer values and at most this many distinct values is read as
    /// class labels.
    pub max_integer_classes: usize,
    /// Keep all rows of a group (one value of this column) in the same split.
    #[serde(default)]
    pub group_column: Option<String>,
    /// Split by time: the earliest rows train, later ones validate, the latest test.
    #[serde(default)]
    pub time_column: Option<String>,
    /// With neither a group nor a time column given, split by time when a date column rises
    /// with the row order (a table logged as time went by).
    #[serde(default = "default_detect_time_order")]
    pub detect_time_order: bool,
    /// Small data: when fewer rows than this are left for training and validation (and the
    /// rows are shuffled, not split by time or group), `folds` stratified cross-validation folds
    /// of them are prepared as well. 0 turns k-fold off.
    #[serde(default = "default_kfold_rows")]
    pub kfold_rows: usize,
    /// Folds for small data (at least 2).
    #[serde(default = "default_folds")]
    pub folds: usize,
}

fn default_kfold_rows() -> usize {
    1000
}

fn default_folds() -> usize {
    5
}

fn default_detect_time_order() -> bool {
    true
}

fn default_rare_share() -> f64 {
    0.01
}

fn default_text_buckets() -> usize {
    32
}

fn default_leak_threshold() -> f64 {
    0.99
}

impl PrepareConfig {
    /// Defaults: 15% validation, 15% test, one-hot up to 20 categories (frequency encoding
    /// above), categories under 1% of the training rows merged, free text hashed into 32
    /// buckets, a feature that alone predicts the target to 0.99 dropped as a leak, integer
    /// targets with at most 20 distinct values are classes, 5 cross-validation folds when
    /// fewer than 1,000 rows train and validate.
    pub fn new(target: impl Into<String>) -> Self {
        PrepareConfig {
            target: target.into(),
            task: None,
            valid_fraction: 0.15,
            test_fraction: 0.15,
            max_categories: 20,
            rare_share: default_rare_share(),
            text_buckets: default_text_buckets(),
            leak_threshold: default_leak_threshold(),
            max_integer_classes: 20,
            group_column: None,
            time_column: None,
            detect_time_order: true,
            kfold_rows: default_kfold_rows(),
            folds: default_folds(),
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = |f: f64| (0.0..0.5).contains(&f) && f > 0.0;
        if !ok(self.valid_fraction) || !ok(self.test_fraction) {
            return Err(DataError::Config(format!(
                "valid_fraction {} and test_fraction {} must each be in (0, 0.5)",
                self.valid_fraction, self.test_fraction
            )));
        }
        if self.kfold_rows > 0 && self.folds < 2 {
            return Err(DataError::Config(format!(
                "folds must be at least 2 (got {}); set kfold_rows to 0 to turn k-fold off",
                self.folds
            )));
        }
        if self.max_categories < 2 {
            return Err(DataError::Config(
                "max_categories must be at least 2".into(),
            ));
        }
        Ok(())
    }
}

/// Everything the data stage produces.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Profile of the whole file.
    pub profile: DataProfile,
    /// The transform fitted on the training split.
    pub transform: FeatureTransform,
    /// The transformed splits.
    pub data: PreparedData,
    /// Raw rows of the training split (the monitor's reference).
    pub raw_train: RawTable,
    /// Raw rows of the test split, target included.
    pub raw_test: RawTable,
    /// Cross-validation folds of the training and validation rows, for small data (empty
    /// otherwise; see [`PrepareConfig::kfold_rows`]). Each fold's transform keeps the main
    /// transform's features but refits every statistic on the fold's training rows.
    pub folds: Vec<Fold>,
}

/// Classes this unbalanced (largest : smallest) get class weights offered to the search.
pub const IMBALANCE_RATIO: f64 = 3.0;

/// Rows needed at the least: a handful per split.
const MIN_ROWS: usize = 10;

/// Profiles `table`, infers the task from `cfg.target`, splits, fits the transform on the
/// training split and transforms all three splits.
pub fn prepare(
    cfg: &PrepareConfig,
    table: &RawTable,
    source_sha256: &str,
    ctx: &RunContext,
) -> Result<Prepared> {
    prepare_split(cfg, table, None, source_sha256, ctx)
}

/// Like [`prepare`], but the test split is `test` (a separate file with the same columns):
/// `table` is split into training and validation only, in the same proportions as before.
pub fn prepare_with_test(
    cfg: &PrepareConfig,
    table: &RawTable,
    test: &RawTable,
    source_sha256: &str,
    ctx: &RunContext,
) -> Result<Prepared> {
    prepare_split(cfg, table, Some(test), source_sha256, ctx)
}

fn prepare_split(
    cfg: &PrepareConfig,
    table: &RawTable,
    holdout: Option<&RawTable>,
    source_sha256: &str,
    ctx: &RunContext,
) -> Result<Prepared> {
    cfg.validate()?;
    let (mut profile, feature_keys) = profile_table_keyed(cfg, table, source_sha256)?;
    let target = table
        .column(&cfg.target)
        .expect("profile_table checked the target");
    let mut decisions = Vec::new();

    // Rows with a target; the rest cannot be learned from.
    let labelled: Vec<usize> = (0..table.n_rows())
        .filter(|&i| !target.values.is_missing(i))
        .collect();
    if labelled.len() < table.n_rows() {
        decisions.push(CleaningDecision {
            column: cfg.target.clone(),
            action: "drop_rows".into(),
            reason: format!(
                "{} rows have no target value",
                table.n_rows() - labelled.len()
            ),
        });
    }
    if labelled.len() < MIN_ROWS {
        return Err(DataError::TooFewRows {
            rows: labelled.len(),
            needed: MIN_ROWS,
        });
    }

    let strata: Option<Vec<u32>> = profile.task.is_classification().then(|| {
        let classes = class_indices(target, &profile.class_counts);
        labelled
            .iter()
            .map(|&i| classes[i].unwrap_or(u32::MAX))
            .collect()
    });
    let (valid_fraction, test_fraction) = match holdout {
        // The validation share of what is left once a test split is taken elsewhere.
        Some(_) => (cfg.valid_fraction / (1.0 - cfg.test_fraction), 0.0),
        None => (cfg.valid_fraction, cfg.test_fraction),
    };
    let plan = split_plan(cfg, &profile, table)?;
    let shuffled = matches!(plan, SplitPlan::Shuffled);
    let (train_idx, valid_idx, test_idx) = match plan {
        SplitPlan::Time { column, times, why } => {
            decisions.push(CleaningDecision {
                column: column.clone(),
                action: "split_by_time".into(),
                reason: format!(
                    "{why}: the earliest rows train, the next validate{}, so the model is judged on the future",
                    if holdout.is_some() { "" } else { ", the latest test" }
                ),
            });
            time_split(&labelled, &times, valid_fraction, test_fraction)
        }
        SplitPlan::Groups { column, groups } => {
            let (train, valid, test) = group_split(
                &labelled,
                &groups,
                valid_fraction,
                test_fraction,
                ctx.derive_seed("split"),
            );
            let distinct: std::collections::HashSet<u64, FastHash> =
                labelled.iter().map(|&i| groups[i]).collect();
            decisions.push(CleaningDecision {
                column,
                action: "split_by_group".into(),
                reason: format!(
                    "{} groups; each group's rows are all in one split, so no group is both trained and judged on",
                    distinct.len()
                ),
            });
            (train, valid, test)
        }
        SplitPlan::Shuffled => split(
            &labelled,
            strata.as_deref(),
            valid_fraction,
            test_fraction,
            ctx.derive_seed("split"),
        ),
    };
    let raw_test = match holdout {
        Some(test) => {
            let target = test
                .column(&cfg.target)
                .ok_or_else(|| DataError::MissingTarget {
                    name: cfg.target.clone(),
                    available: test.names().iter().map(|s| s.to_string()).collect(),
                })?;
            let rows: Vec<usize> = (0..test.n_rows())
                .filter(|&i| !target.values.is_missing(i))
                .collect();
            test.take(&rows)
        }
        None => table.take(&test_idx),
    };

    if valid_idx.is_empty() || raw_test.n_rows() == 0 {
        return Err(DataError::TooFewRows {
            rows: labelled.len(),
            needed: MIN_ROWS.max(labelled.len() + 1),
        });
    }
    let raw_train = table.take(&train_idx);
    let raw_valid = table.take(&valid_idx);

    // Row hashes over the features: the profile's, or the separate test file's own.
    let train_keys: std::collections::HashSet<u64, FastHash> =
        train_idx.iter().map(|&i| feature_keys[i]).collect();
    let test_keys = match holdout {
        Some(_) => row_keys(&raw_test, Some(&cfg.target)),
        None => test_idx.iter().map(|&i| feature_keys[i]).collect(),
    };
    let shared = test_keys.iter().filter(|k| train_keys.contains(k)).count();
    profile.test_rows_also_in_train = Some(shared);
    if shared > 0 {
        decisions.push(CleaningDecision {
            column: "(rows)".into(),
            action: "note".into(),
            reason: format!(
                "{shared} of {} test rows have the same features as a training row; the test score may flatter the model",
                raw_test.n_rows()
            ),
        });
    }
    let counts: Vec<usize> = profile.class_counts.iter().map(|(_, c)| *c).collect();
    if let (Some(&most), Some(&least)) = (counts.iter().max(), counts.iter().min())
        && least > 0
        && most as f64 >= IMBALANCE_RATIO * least as f64
    {
        decisions.push(CleaningDecision {
            column: cfg.target.clone(),
            action: "class_weights".into(),
            reason: format!(
                "imbalanced: the largest class has {most} rows, the smallest {least} ({:.1}:1); the search is offered class weights inversely proportional to class frequency",
                most as f64 / least as f64
            ),
        });
    }

    let target_encoding = fit_target(&profile, raw_train.column(&cfg.target).unwrap())?;
    let layout = detect_layout(cfg, &profile);
    let steps = match &layout {
        Some((shape, columns)) => {
            decisions.push(CleaningDecision {
                column: format!("{}..{}", columns[0], columns[columns.len() - 1]),
                action: "spatial_layout".into(),
                reason: format!(
                    "{} numeric columns named by consecutive positions form {}; they are kept \
                     in order (constant ones included) and share one mean and scale",
                    columns.len(),
                    describe_shape(shape)
                ),
            });
            fit_spatial_steps(columns, &raw_train, &mut decisions)?
        }
        None => fit_steps(cfg, &profile, &raw_train, &mut decisions)?,
    };
    let transform = FeatureTransform {
        schema_version: SCHEMA_VERSION,
        fitted_on_sha256: source_sha256.to_string(),
        fitted_rows: raw_train.n_rows(),
        target: cfg.target.clone(),
        task: profile.task,
        target_encoding,
        steps,
        decisions,
    };

    let pool: Vec<usize> = {
        let mut pool = [train_idx.as_slice(), valid_idx.as_slice()].concat();
        pool.sort_unstable();
        pool
    };
    let use_folds = shuffled && cfg.kfold_rows > 0 && pool.len() < cfg.kfold_rows;
    let mut transform = transform;
    if use_folds {
        transform.decisions.push(CleaningDecision {
            column: "(rows)".into(),
            action: "k_fold".into(),
            reason: format!(
                "small data: {} rows train and validate (fewer than {}), so they are also cut into {} {}cross-validation folds, each with the transform refitted on its training rows",
                pool.len(),
                cfg.kfold_rows,
                cfg.folds,
                if strata.is_some() { "stratified " } else { "" }
            ),
        });
    }
    let transform = transform;
    let encode_with = |transform: &FeatureTransform, raw: &RawTable| -> Result<SplitData> {
        Ok(SplitData {
            x: transform.transform(raw)?,
            y: transform.encode_target(raw.column(&cfg.target).unwrap())?,
        })
    };
    let encode = |raw: &RawTable| encode_with(&transform, raw);
    let mut folds = Vec::new();
    if use_folds {
        let stratum: HashMap<usize, u32> = match &strata {
            Some(s) => labelled.iter().copied().zip(s.iter().copied()).collect(),
            None => HashMap::new(),
        };
        let pool_strata: Option<Vec<u32>> = strata
            .as_ref()
            .map(|_| pool.iter().map(|r| stratum[r]).collect());
        let assignment = fold_assignment(
            &pool,
            pool_strata.as_deref(),
            cfg.folds,
            ctx.derive_seed("folds"),
        );
        for k in 0..cfg.folds {
            let rows_where = |held_out: bool| -> Vec<usize> {
                pool.iter()
                    .zip(&assignment)
                    .filter(|&(_, &f)| (f == k) == held_out)
                    .map(|(&r, _)| r)
                    .collect()
            };
            let (fold_train, fold_valid) = (
                table.take(&rows_where(false)),
                table.take(&rows_where(true)),
            );
            let steps = match &layout {
                Some((_, columns)) => fit_spatial_steps(columns, &fold_train, &mut Vec::new())?,
                None => refit_within(&transform.steps, &fold_train),
            };
            let fold_transform = FeatureTransform {
                steps,
                fitted_rows: fold_train.n_rows(),
                ..transform.clone()
            };
            folds.push(Fold {
                train: encode_with(&fold_transform, &fold_train)?,
                valid: encode_with(&fold_transform, &fold_valid)?,
            });
        }
    }
    let data = PreparedData {
        task: profile.task,
        n_classes: match &transform.target_encoding {
            TargetEncoding::Classes { labels } => labels.len(),
            TargetEncoding::Standardized { .. } => 0,
        },
        feature_names: transform.feature_names(),
        input_shape: layout.map_or(InputShape::Vector, |(shape, _)| shape),
        train: encode(&raw_train)?,
        valid: encode(&raw_valid)?,
        test: encode(&raw_test)?,
    };
    Ok(Prepared {
        profile,
        transform,
        data,
        raw_train,
        raw_test,
        folds,
    })
}

/// Profiles every column and infers the task from the target column.
pub fn profile_table(
    cfg: &PrepareConfig,
    table: &RawTable,
    source_sha256: &str,
) -> Result<DataProfile> {
    Ok(profile_table_keyed(cfg, table, source_sha256)?.0)
}

/// [`profile_table`], also returning every row's hash over the features (all columns but the
/// target), which the split reuses to find test rows that repeat training rows.
fn profile_table_keyed(
    cfg: &PrepareConfig,
    table: &RawTable,
    source_sha256: &str,
) -> Result<(DataProfile, Vec<u64>)> {
    let target = table
        .column(&cfg.target)
        .ok_or_else(|| DataError::MissingTarget {
            name: cfg.target.clone(),
            available: table.names().iter().map(|s| s.to_string()).collect(),
        })?;
    let (task, task_reason) = infer_task(cfg, target)?;
    let class_counts = if task.is_classification() {
        sorted_labels(target.values.label_counts())
    } else {
        Vec::new()
    };
    let sample = LeakSample::new(target, task, &class_counts);
    let sample = sample.as_ref();
    // Columns are independent: profile them on all available cores.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(table.columns.len())
        .max(1);
    // Duplicate rows are counted alongside. Columns are handed out one at a time, so that a
    // thread that drew cheap columns takes more.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let next = &next;
    type Profiled = (Vec<(usize, ColumnProfile)>, (usize, Vec<u64>));
    let (mut profiled, (duplicates, keys)): Profiled = std::thread::scope(|scope| {
        let duplicates = scope.spawn(|| duplicate_rows(table, &cfg.target));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(column) = table.columns.get(i) else {
                            return done;
                        };
                        let mut profile = profile_column(column);
                        if let Some(sample) = sample
                            .filter(|_| column.name != cfg.target)
                            .filter(|_| !profile.constant && !profile.id_like)
                        {
                            profile.alone_predicts_target =
                                alone_predicts(column, profile.kind, sample);
                        }
                        done.push((i, profile));
                    }
                })
            })
            .collect();
        let profiled = workers
            .into_iter()
            .flat_map(|w| w.join().expect("a profiling thread panicked"))
            .collect();
        let duplicates = duplicates.join().expect("the duplicate count panicked");
        (profiled, duplicates)
    });
    profiled.sort_by_key(|(i, _)| *i);
    let columns: Vec<ColumnProfile> = profiled.into_iter().map(|(_, p)| p).collect();
    let profile = DataProfile {
        schema_version: SCHEMA_VERSION,
        source_sha256: source_sha256.to_string(),
        n_rows: table.n_rows(),
        columns,
        target: cfg.target.clone(),
        task,
        task_reason,
        class_counts,
        duplicate_rows: duplicates,
        test_rows_also_in_train: None,
        formulation: Vec::new(),
        sampled_rows: None,
    };
    Ok((profile, keys))
}

/// Rows that repeat an earlier row exactly (target included), and every row's hash over the
/// other columns.
fn duplicate_rows(table: &RawTable, target: &str) -> (usize, Vec<u64>) {
    let keys = row_keys(table, Some(target));
    let mut whole = keys.clone();
    if let Some(t) = table.column(target) {
        mix_column(&mut whole, t);
    }
    let mut seen: std::collections::HashSet<u64, FastHash> =
        std::collections::HashSet::with_capacity_and_hasher(keys.len(), FastHash::default());
    let duplicates = whole.into_iter().filter(|k| !seen.insert(*k)).count();
    (duplicates, keys)
}

/// A 64-bit hash of every row's values (all columns but `skip`).
fn row_keys(table: &RawTable, skip: Option<&str>) -> Vec<u64> {
    let mut keys = vec![FNV_OFFSET; table.n_rows()];
    for column in table
        .columns
        .iter()
        .filter(|c| Some(c.name.as_str()) != skip)
    {
        mix_column(&mut keys, column);
    }
    keys
}

/// Folds each row's value of `column` into its running hash.
fn mix_column(keys: &mut [u64], column: &RawColumn) {
    match &column.values {
        ColumnValues::Numeric(v) => {
            for (h, x) in keys.iter_mut().zip(v) {
                *h = mix(*h, x.map_or(MISSING_KEY, f64::to_bits));
            }
        }
        ColumnValues::Text(v) => {
            for (h, x) in keys.iter_mut().zip(v) {
                *h = mix(*h, x.as_deref().map_or(MISSING_KEY, text_key));
            }
        }
        ColumnValues::Dict { levels, codes } => {
            let level_keys: Vec<u64> = levels.iter().map(|l| text_key(l)).collect();
            for (h, &c) in keys.iter_mut().zip(codes) {
                let k = if c == MISSING_CODE {
                    MISSING_KEY
                } else {
                    level_keys[c as usize]
                };
                *h = mix(*h, k);
            }
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;
/// The key of a missing value (a number or text shares it with a 2⁻⁶⁴ chance).
const MISSING_KEY: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a over the bytes of `s`.
fn text_key(s: &str) -> u64 {
    s.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Folds `x` into the running hash `h` (a multiply-xorshift step).
fn mix(h: u64, x: u64) -> u64 {
    let z = (h ^ x).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// Rows the leakage check looks at, at most: an even spread over the table.
const LEAK_CHECK_ROWS: usize = 100_000;

/// The target on the rows the leakage check looks at (at most [`LEAK_CHECK_ROWS`], evenly
/// spread, labelled ones only), each row assigned to the fitting or the evaluation half by a
/// hash of its number, so that periodic tables do not split by class.
struct LeakSample {
    rows: Vec<usize>,
    fit: Vec<bool>,
    /// Class of each row (classification) as an index, or its value (regression).
    y: Vec<f64>,
    classification: bool,
}

impl LeakSample {
    fn new(target: &RawColumn, task: Task, classes: &[(String, usize)]) -> Option<LeakSample> {
        let n = target.values.len();
        let step = n.div_ceil(LEAK_CHECK_ROWS).max(1);
        let rows: Vec<usize> = (0..n)
            .step_by(step)
            .filter(|&i| !target.values.is_missing(i))
            .collect();
        let y: Vec<f64> = if task.is_classification() {
            let labels: Vec<String> = classes.iter().map(|(l, _)| l.clone()).collect();
            let all = target.values.label_indices(&labels).ok()?;
            rows.iter()
                .map(|&i| f64::from(all[i].unwrap_or(0)))
                .collect()
        } else {
            let values = as_numbers(target)?;
            rows.iter().map(|&i| values[i].unwrap_or(0.0)).collect()
        };
        let fit = rows
            .iter()
            .map(|&i| {
                let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) & 1 == 0
            })
            .collect::<Vec<bool>>();
        let fitted = fit.iter().filter(|&&f| f).count();
        (rows.len() >= 20 && fitted > 0 && fitted < rows.len()).then_some(LeakSample {
            rows,
            fit,
            y,
            classification: task.is_classification(),
        })
    }
}

/// How well `column` alone predicts the target on rows it was not fitted on (see
/// [`LeakSample`]): a numeric column is cut at the fitting half's 32-quantiles, a categorical
/// one is taken as is; each value (or bin) predicts the fitting half's majority class
/// (accuracy) or mean (R²). Unseen values predict the overall majority or mean. Free text
/// scores nothing here (ID-like columns are flagged separately).
fn alone_predicts(column: &RawColumn, kind: ColumnKind, sample: &LeakSample) -> Option<f64> {
    if kind == ColumnKind::Text {
        return None;
    }
    let numbers = as_numbers(column).filter(|_| kind != ColumnKind::Categorical);
    // Each sampled row's value as a key: its bin for numbers, a hash of the text otherwise.
    let keys: Vec<u64> = match &numbers {
        Some(values) => {
            let mut present: Vec<f64> = sample
                .rows
                .iter()
                .zip(&sample.fit)
                .filter(|(_, f)| **f)
                .filter_map(|(&i, _)| values[i])
                .collect();
            present.sort_unstable_by(f64::total_cmp);
            if present.is_empty() {
                return None;
            }
            let mut edges: Vec<f64> = (1..32)
                .map(|k| present[k * (present.len() - 1) / 32])
                .collect();
            edges.dedup();
            sample
                .rows
                .iter()
                .map(|&i| {
                    values[i].map_or(MISSING_KEY, |x| edges.partition_point(|e| *e < x) as u64)
                })
                .collect()
        }
        None => match &column.values {
            ColumnValues::Dict { codes, .. } => {
                sample.rows.iter().map(|&i| u64::from(codes[i])).collect()
            }
            values => sample
                .rows
                .iter()
                .map(|&i| values.label_ref(i).map_or(MISSING_KEY, |l| text_key(&l)))
                .collect(),
        },
    };
    let halves = || {
        keys.iter()
            .zip(&sample.y)
            .zip(&sample.fit)
            .map(|((&k, &y), &f)| (k, y, f))
    };
    if sample.classification {
        let mut by_key: HashMap<u64, HashMap<u64, usize>> = HashMap::new();
        let mut overall: HashMap<u64, usize> = HashMap::new();
        for (k, y, _) in halves().filter(|h| h.2) {
            *by_key.entry(k).or_default().entry(y as u64).or_default() += 1;
            *overall.entry(y as u64).or_default() += 1;
        }
        let majority = |counts: &HashMap<u64, usize>| {
            counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(l, _)| *l)
        };
        let fallback = majority(&overall)?;
        let predict: HashMap<u64, u64> = by_key
            .iter()
            .filter_map(|(k, c)| majority(c).map(|m| (*k, m)))
            .collect();
        let (mut hits, mut total) = (0usize, 0usize);
        for (k, y, _) in halves().filter(|h| !h.2) {
            total += 1;
            hits += usize::from(*predict.get(&k).unwrap_or(&fallback) == y as u64);
        }
        (total > 0).then(|| hits as f64 / total as f64)
    } else {
        let mut sums: HashMap<u64, (f64, usize)> = HashMap::new();
        let (mut sum, mut count) = (0.0, 0usize);
        for (k, y, _) in halves().filter(|h| h.2) {
            let e = sums.entry(k).or_default();
            e.0 += y;
            e.1 += 1;
            sum += y;
            count += 1;
        }
        let mean = sum / count.max(1) as f64;
        let eval: Vec<(u64, f64)> = halves().filter(|h| !h.2).map(|(k, y, _)| (k, y)).collect();
        let eval_mean = eval.iter().map(|e| e.1).sum::<f64>() / eval.len().max(1) as f64;
        let (mut sse, mut sst) = (0.0, 0.0);
        for (k, y) in eval {
            let p = sums.get(&k).map_or(mean, |(s, c)| s / *c as f64);
            sse += (y - p).powi(2);
            sst += (y - eval_mean).powi(2);
        }
        (sst > 0.0).then(|| 1.0 - sse / sst)
    }
}

/// Numbers parsed from a text column (booleans in their common spellings included), if every
/// non-missing value is one.
fn parse_numbers(values: &[Option<String>]) -> Option<Vec<Option<f64>>> {
    values
        .iter()
        .map(|v| match v {
            None => Some(None),
            Some(s) => parse_number(s).map(Some),
        })
        .collect()
}

/// The column's values as numbers, if it is numeric or text holding only numbers or booleans.
fn as_numbers(column: &RawColumn) -> Option<std::borrow::Cow<'_, [Option<f64>]>> {
    match &column.values {
        ColumnValues::Numeric(v) => Some(std::borrow::Cow::Borrowed(v.as_slice())),
        ColumnValues::Text(v) => parse_numbers(v).map(std::borrow::Cow::Owned),
        ColumnValues::Dict { levels, codes } => {
            let parsed: Vec<f64> = levels
                .iter()
                .map(|l| parse_number(l))
                .collect::<Option<_>>()?;
            Some(std::borrow::Cow::Owned(
                codes
                    .iter()
                    .map(|&c| (c != MISSING_CODE).then(|| parsed[c as usize]))
                    .collect(),
            ))
        }
    }
}

/// Every distinct non-missing value (numbers as labels) with its count, in no particular
/// order; a dictionary column is counted by code.
fn level_counts(values: &ColumnValues) -> Vec<(Cow<'_, str>, usize)> {
    match values {
        ColumnValues::Dict { levels, codes } => {
            let mut counts = vec![0usize; levels.len()];
            for &c in codes {
                if c != MISSING_CODE {
                    counts[c as usize] += 1;
                }
            }
            levels
                .iter()
                .zip(counts)
                .filter(|(_, k)| *k > 0)
                .map(|(l, k)| (Cow::Borrowed(l.as_str()), k))
                .collect()
        }
        _ => {
            let mut counts: HashMap<Cow<'_, str>, usize> = HashMap::new();
            for i in 0..values.len() {
                if let Some(l) = values.label_ref(i) {
                    *counts.entry(l).or_default() += 1;
                }
            }
            counts.into_iter().collect()
        }
    }
}

/// Text values that parse as dates make a date column when at least this share of them do.
const DATE_SHARE: f64 = 0.95;
/// A text column is free text when at least this share of its values are distinct ...
const TEXT_DISTINCT_SHARE: f64 = 0.5;
/// ... and its values average at least this many words.
const TEXT_MIN_WORDS: f64 = 3.0;
/// Fewer rows than this never make a column ID-like.
pub(crate) const ID_MIN_ROWS: usize = 20;

pub(crate) fn profile_column(column: &RawColumn) -> ColumnProfile {
    let n = column.values.len();
    let missing = column.values.missing();
    let present = n - missing;
    let source_type = match &column.values {
        ColumnValues::Numeric(_) => "number",
        ColumnValues::Text(_) | ColumnValues::Dict { .. } => "string",
    };
    // Distinct values and the most frequent ones: numbers by sorting, text by counting.
    let numbers = as_numbers(column);
    let mut sorted: Vec<f64> = numbers
        .as_ref()
        .map(|v| v.iter().flatten().copied().collect())
        .unwrap_or_default();
    sort_f64(&mut sorted);
    // Each distinct text once, with how often it occurs (text columns only).
    let levels = if numbers.is_some() {
        Vec::new()
    } else {
        level_counts(&column.values)
    };
    let (distinct, top_count, top) = if numbers.is_some() {
        let (mut distinct, mut top_count, mut run) = (0, 0, 0);
        for (i, x) in sorted.iter().enumerate() {
            if i == 0 || *x != sorted[i - 1] {
                distinct += 1;
                run = 0;
            }
            run += 1;
            top_count = top_count.max(run);
        }
        (distinct, top_count, Vec::new())
    } else {
        let by_count = |a: &(Cow<'_, str>, usize), b: &(Cow<'_, str>, usize)| {
            b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
        };
        let mut top = levels.clone();
        let distinct = top.len();
        if top.len() > 10 {
            top.select_nth_unstable_by(9, by_count);
            top.truncate(10);
        }
        top.sort_by(by_count);
        let top: Vec<(String, usize)> = top.into_iter().map(|(l, c)| (l.into_owned(), c)).collect();
        (distinct, top.first().map_or(0, |t| t.1), top)
    };
    let top_share = top_count as f64 / present.max(1) as f64;
    let unique_per_row = distinct == n && n >= ID_MIN_ROWS;
    let mut profile = ColumnProfile {
        name: column.name.clone(),
        source_type: source_type.into(),
        kind: ColumnKind::Categorical,
        missing,
        missing_share: missing as f64 / n.max(1) as f64,
        distinct,
        numeric: None,
        top_categories: Vec::new(),
        top_share,
        constant: distinct <= 1,
        near_constant: distinct > 1 && top_share >= 0.99,
        id_like: false,
        outliers: 0,
        alone_predicts_target: None,
    };
    if numbers.is_some() {
        let text_booleans = !matches!(column.values, ColumnValues::Numeric(_))
            && level_counts(&column.values)
                .iter()
                .all(|(s, _)| parse_bool(s).is_some());
        profile.kind = if text_booleans {
            ColumnKind::Boolean
        } else {
            ColumnKind::Numeric
        };
        let integers = sorted.iter().all(|x| x.fract() == 0.0);
        // Unique integers in an evenly spaced run (0, 1, 2, …): row numbers, not measurements.
        let evenly_spaced = sorted.len() >= 2 && {
            let d = sorted[1] - sorted[0];
            d > 0.0 && sorted.windows(2).all(|w| w[1] - w[0] == d)
        };
        profile.id_like = unique_per_row && integers && evenly_spaced;
        if let Some([lo, hi]) = outlier_fences(&sorted) {
            profile.outliers = sorted.iter().filter(|&&x| x < lo || x > hi).count();
        }
        profile.numeric = NumericSummary::of(sorted.into_iter());
        return profile;
    }
    profile.top_categories = top;
    let days: Vec<(f64, usize)> = levels
        .iter()
        .filter_map(|(s, k)| parse_datetime(s).map(|d| (d, *k)))
        .collect();
    let dates: usize = days.iter().map(|(_, k)| k).sum();
    if present > 0 && dates as f64 >= DATE_SHARE * present as f64 {
        profile.kind = ColumnKind::Datetime;
        profile.numeric =
            NumericSummary::of(days.iter().flat_map(|&(d, k)| std::iter::repeat_n(d, k)));
        return profile;
    }
    let words = levels
        .iter()
        .map(|(s, k)| s.split_whitespace().count() * k)
        .sum::<usize>() as f64
        / present.max(1) as f64;
    if distinct as f64 >= TEXT_DISTINCT_SHARE * present as f64
        && words >= TEXT_MIN_WORDS
        && present >= ID_MIN_ROWS
    {
        profile.kind = ColumnKind::Text;
        return profile;
    }
    profile.id_like = unique_per_row;
    profile
}

fn infer_task(cfg: &PrepareConfig, target: &RawColumn) -> Result<(Task, String)> {
    let distinct: BTreeMap<String, usize> = target.values.label_counts().into_iter().collect();
    if distinct.len() < 2 {
        return Err(DataError::SingleClass {
            target: target.name.clone(),
            value: distinct
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "(all missing)".into()),
        });
    }
    // Booleans spelled as words are labels here, not numbers.
    let numbers = match &target.values {
        ColumnValues::Numeric(v) => Some(std::borrow::Cow::Borrowed(v.as_slice())),
        values => (0..values.len())
            .map(|i| match values.label_ref(i) {
                None => Some(None),
                Some(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(Some),
            })
            .collect::<Option<Vec<Option<f64>>>>()
            .map(std::borrow::Cow::Owned),
    };
    let classification = |reason: String| {
        let task = if distinct.len() == 2 {
            Task::Binary
        } else {
            Task::Multiclass
        };
        Ok((task, reason))
    };
    match (cfg.task, numbers) {
        (Some(Task::Regression), None) => {
            let (row, example) = (0..target.values.len())
                .find_map(|i| {
                    target
                        .values
                        .label(i)
                        .filter(|l| l.trim().parse::<f64>().is_err())
                        .map(|l| (i + 1, l))
                })
                .unwrap_or((0, String::new()));
            Err(DataError::NonNumericTarget {
                target: target.name.clone(),
                example,
                row,
            })
        }
        (Some(Task::Regression), Some(_)) => Ok((Task::Regression, "requested".into())),
        (Some(_), _) => classification(format!("requested; {} classes", distinct.len())),
        (None, None) => classification(format!(
            "the target holds text labels ({} distinct)",
            distinct.len()
        )),
        (None, Some(values)) => {
            let integers = values.iter().flatten().all(|x| x.fract() == 0.0);
            if integers && distinct.len() <= cfg.max_integer_classes {
                classification(format!(
                    "the target holds {} distinct integers (at most {} are read as classes)",
                    distinct.len(),
                    cfg.max_integer_classes
                ))
            } else {
                Ok((
                    Task::Regression,
                    format!(
                        "the target is numeric with {} distinct values{}",
                        distinct.len(),
                        if integers { "" } else { ", not all integers" }
                    ),
                ))
            }
        }
    }
}

/// Each row's index into `classes` (labels with counts), `None` where the target is missing.
fn class_indices(target: &RawColumn, classes: &[(String, usize)]) -> Vec<Option<u32>> {
    let labels: Vec<String> = classes.iter().map(|(l, _)| l.clone()).collect();
    target
        .values
        .label_indices(&labels)
        .expect("the classes come from this column")
}

/// Sorts labels numerically when they are all numbers, else lexically.
pub(crate) fn sorted_labels(mut labels: Vec<(String, usize)>) -> Vec<(String, usize)> {
    if labels.iter().all(|(l, _)| l.parse::<f64>().is_ok()) {
        labels.sort_by(|a, b| {
            a.0.parse::<f64>()
                .unwrap()
                .total_cmp(&b.0.parse::<f64>().unwrap())
        });
    } else {
        labels.sort();
    }
    labels
}

/// How the rows are split.
enum SplitPlan {
    /// Seeded shuffle, stratified for classification.
    Shuffled,
    /// Ordered by `times` (per row; missing ones first).
    Time {
        column: String,
        times: Vec<Option<f64>>,
        why: String,
    },
    /// Whole groups (`groups`: a key per row) to one split each.
    Groups { column: String, groups: Vec<u64> },
}

/// A date column's values rise with the row order when at least this share of consecutive
/// present pairs does not go back in time.
const TIME_ORDER_SHARE: f64 = 0.99;

fn split_plan(cfg: &PrepareConfig, profile: &DataProfile, table: &RawTable) -> Result<SplitPlan> {
    let find = |name: &str, what: &str| {
        table.column(name).ok_or_else(|| {
            DataError::Config(format!(
                "{what} column '{name}' not found; available columns: {}",
                table.names().join(", ")
            ))
        })
    };
    let times = |column: &RawColumn| -> Vec<Option<f64>> {
        match as_numbers(column) {
            Some(v) => v.into_owned(),
            None => column
                .values
                .map_text(0..column.values.len(), |t| t.and_then(parse_datetime)),
        }
    };
    if let Some(name) = &cfg.time_column {
        let column = find(name, "time")?;
        let times = times(column);
        if times.iter().all(Option::is_none) {
            return Err(DataError::Config(format!(
                "time column '{name}' holds neither numbers nor dates"
            )));
        }
        return Ok(SplitPlan::Time {
            column: name.clone(),
            times,
            why: "requested".into(),
        });
    }
    if let Some(name) = &cfg.group_column {
        let column = find(name, "group")?;
        let groups = (0..column.values.len())
            .map(|i| {
                column
                    .values
                    .label_ref(i)
                    .map_or(MISSING_KEY, |l| text_key(&l))
            })
            .collect();
        return Ok(SplitPlan::Groups {
            column: name.clone(),
            groups,
        });
    }
    if cfg.detect_time_order {
        for p in profile
            .columns
            .iter()
            .filter(|p| p.kind == ColumnKind::Datetime && p.name != cfg.target && p.distinct > 1)
        {
            let column = table.column(&p.name).expect("a profiled column");
            let times = times(column);
            let present: Vec<f64> = times.iter().flatten().copied().collect();
            let pairs = present.len().saturating_sub(1);
            let forward = present.windows(2).filter(|w| w[1] >= w[0]).count();
            if pairs >= 10 && forward as f64 >= TIME_ORDER_SHARE * pairs as f64 {
                return Ok(SplitPlan::Time {
                    column: p.name.clone(),
                    why: format!(
                        "the rows are in time order by '{}' ({forward} of {pairs} consecutive dates move forward)",
                        p.name
                    ),
                    times,
                });
            }
        }
    }
    Ok(SplitPlan::Shuffled)
}

/// Train / validation / test by time: `rows` ordered by `times` (missing first, ties in row
/// order), then cut at the shares.
fn time_split(
    rows: &[usize],
    times: &[Option<f64>],
    valid_fraction: f64,
    test_fraction: f64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut ordered = rows.to_vec();
    ordered.sort_by(|&a, &b| {
        let key = |i: usize| times[i].unwrap_or(f64::NEG_INFINITY);
        key(a).total_cmp(&key(b)).then(a.cmp(&b))
    });
    let n = ordered.len();
    let n_test = ((n as f64 * test_fraction).round() as usize).min(n.saturating_sub(2));
    let n_valid = ((n as f64 * valid_fraction).round() as usize).min(n - n_test - 1);
    let n_train = n - n_test - n_valid;
    let mut train = ordered[..n_train].to_vec();
    let mut valid = ordered[n_train..n_train + n_valid].to_vec();
    let mut test = ordered[n_train + n_valid..].to_vec();
    train.sort_unstable();
    valid.sort_unstable();
    test.sort_unstable();
    (train, valid, test)
}

/// Train / validation / test by whole groups: the groups (`groups[row]`) in a seeded random
/// order go to the test split until it has its share of rows, then to validation, the rest
/// to training.
fn group_split(
    rows: &[usize],
    groups: &[u64],
    valid_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &row in rows {
        members.entry(groups[row]).or_default().push(row);
    }
    let mut order: Vec<Vec<usize>> = members.into_values().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = rows.len() as f64;
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    let last = order.len().saturating_sub(1);
    for (k, group) in order.into_iter().enumerate() {
        // The last group always trains, so that training is never empty.
        if k < last && (test.len() as f64) < n * test_fraction {
            test.extend(group);
        } else if k < last && (valid.len() as f64) < n * valid_fraction {
            valid.extend(group);
        } else {
            train.extend(group);
        }
    }
    train.sort_unstable();
    valid.sort_unstable();
    test.sort_unstable();
    (train, valid, test)
}

/// Splits `rows` into train / validation / test, stratified by `strata` when given.
/// Every stratum keeps at least one training row.
fn split<K: Ord + Clone>(
    rows: &[usize],
    strata: Option<&[K]>,
    valid_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups: BTreeMap<Option<K>, Vec<usize>> = BTreeMap::new();
    for (k, &row) in rows.iter().enumerate() {
        let key = strata.map(|s| s[k].clone());
        groups.entry(key).or_default().push(row);
    }
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (_, mut members) in groups {
        members.shuffle(&mut rng);
        let n = members.len();
        let mut n_test = (n as f64 * test_fraction).round() as usize;
        let mut n_valid = (n as f64 * valid_fraction).round() as usize;
        while n_test + n_valid >= n && (n_test > 0 || n_valid > 0) {
            if n_valid >= n_test {
                n_valid -= 1
            } else {
                n_test -= 1
            }
        }
        test.extend_from_slice(&members[..n_test]);
        valid.extend_from_slice(&members[n_test..n_test + n_valid]);
        train.extend_from_slice(&members[n_test + n_valid..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    test.sort_unstable();
    (train, valid, test)
}

fn fit_target(profile: &DataProfile, target: &RawColumn) -> Result<TargetEncoding> {
    if profile.task.is_classification() {
        // Labels from the whole file, so that a class absent from the training split still has
        // an output (it will be predicted rarely, but test rows of that class stay encodable).
        return Ok(TargetEncoding::Classes {
            labels: profile
                .class_counts
                .iter()
                .map(|(l, _)| l.clone())
                .collect(),
        });
    }
    let values = as_numbers(target).expect("regression targets were checked to be numeric");
    let s = NumericSummary::of(values.iter().flatten().copied())
        .expect("the training split has labelled rows");
    Ok(TargetEncoding::Standardized {
        mean: s.mean,
        std: s.scale(),
    })
}

fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let upper = *values.select_nth_unstable_by(n / 2, f64::total_cmp).1;
    if n % 2 == 1 {
        upper
    } else {
        // The lower middle is the largest value left of the upper one.
        let lower = values[..n / 2]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Columns smaller than this never form a signal.
const MIN_SIGNAL_LENGTH: usize = 8;

/// Detects a signal or image: every feature column numeric and named `<prefix><k>` with one
/// prefix and `k` running 0, 1, 2, … (or from 1) in column order, at least
/// [`MIN_SIGNAL_LENGTH`] of them. A perfect square count with a side of 4 or more is a
/// one-channel image (`px0..px63` → 8×8); any other count is a one-channel signal.
fn detect_layout(cfg: &PrepareConfig, profile: &DataProfile) -> Option<(InputShape, Vec<String>)> {
    let features: Vec<&ColumnProfile> = profile
        .columns
        .iter()
        .filter(|c| c.name != cfg.target)
        .collect();
    let n = features.len();
    if n < MIN_SIGNAL_LENGTH || features.iter().any(|c| c.kind != ColumnKind::Numeric) {
        return None;
    }
    let split = |name: &str| {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, number) = name.split_at(name.len() - digits);
        number
            .parse::<usize>()
            .ok()
            .map(|k| (prefix.to_string(), k))
    };
    let parsed: Vec<(String, usize)> = features
        .iter()
        .map(|c| split(&c.name))
        .collect::<Option<_>>()?;
    let first = parsed[0].1;
    let consecutive = parsed
        .iter()
        .enumerate()
        .all(|(i, (prefix, k))| *prefix == parsed[0].0 && *k == first + i);
    if !consecutive || first > 1 {
        return None;
    }
    let side = (n as f64).sqrt().round() as usize;
    let shape = if side * side == n && side >= 4 {
        InputShape::Image {
            channels: 1,
            height: side,
            width: side,
        }
    } else {
        InputShape::Signal {
            channels: 1,
            length: n,
        }
    };
    Some((shape, features.iter().map(|c| c.name.clone()).collect()))
}

fn describe_shape(shape: &InputShape) -> String {
    match shape {
        InputShape::Vector => "a feature vector".into(),
        InputShape::Signal { channels, length } => {
            format!("a {channels}-channel signal of length {length}")
        }
        InputShape::Image {
            channels,
            height,
            width,
        } => format!("a {channels}-channel {height}×{width} image"),
    }
}

/// Steps for a spatial layout: every column kept in order, missing values filled with the
/// column's median, and one mean and standard deviation over all positions (so the relative
/// intensities that convolutions see are preserved).
fn fit_spatial_steps(
    columns: &[String],
    train: &RawTable,
    decisions: &mut Vec<CleaningDecision>,
) -> Result<Vec<FeatureStep>> {
    let mut imputes = Vec::with_capacity(columns.len());
    let mut all = Vec::new();
    for name in columns {
        let column = train.column(name).expect("a profiled column");
        let values = as_numbers(column).expect("profiled as numeric");
        let mut present: Vec<f64> = values.iter().flatten().copied().collect();
        let impute = if present.is_empty() {
            0.0
        } else {
            median(&mut present)
        };
        let missing = values.iter().filter(|v| v.is_none()).count();
        if missing > 0 {
            decisions.push(CleaningDecision {
                column: name.clone(),
                action: "impute_median".into(),
                reason: format!(
                    "{missing} missing values in training, filled with the median {impute}"
                ),
            });
        }
        all.extend(values.iter().map(|v| v.unwrap_or(impute)));
        imputes.push(impute);
    }
    let s = NumericSummary::of(all.into_iter()).expect("non-empty training split");
    Ok(columns
        .iter()
        .zip(imputes)
        .map(|(name, impute)| FeatureStep::Numeric {
            column: name.clone(),
            impute,
            mean: s.mean,
            std: s.scale(),
            clip: None,
            missing_indicator: false,
        })
        .collect())
}

fn fit_steps(
    cfg: &PrepareConfig,
    profile: &DataProfile,
    train: &RawTable,
    decisions: &mut Vec<CleaningDecision>,
) -> Result<Vec<FeatureStep>> {
    let mut steps = Vec::new();
    let mut decide = |column: &str, action: &str, reason: String| {
        decisions.push(CleaningDecision {
            column: column.to_string(),
            action: action.to_string(),
            reason,
        })
    };
    let n_train = train.n_rows();
    // Accuracy of always predicting the most frequent class, for the leak rule.
    let baseline = profile
        .class_counts
        .iter()
        .map(|(_, c)| *c)
        .max()
        .map(|m| m as f64 / profile.class_counts.iter().map(|(_, c)| c).sum::<usize>() as f64);
    // The numeric columns' statistics, which cost the most, on all available cores.
    let numeric: Vec<&RawColumn> = train
        .columns
        .iter()
        .zip(&profile.columns)
        .filter(|(c, p)| {
            c.name != cfg.target && matches!(p.kind, ColumnKind::Numeric | ColumnKind::Boolean)
        })
        .map(|(c, _)| c)
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(numeric.len())
        .max(1);
    let numeric_fits: HashMap<&str, Option<NumericFit>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let numeric = &numeric;
                scope.spawn(move || {
                    numeric
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|c| {
                            let values = as_numbers(c).expect("profiled as numeric");
                            (c.name.as_str(), NumericFit::of(&values))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a fitting thread panicked"))
            .collect()
    });
    for (column, col_profile) in train.columns.iter().zip(&profile.columns) {
        if column.name == cfg.target {
            continue;
        }
        let name = column.name.as_str();
        if col_profile.missing == profile.n_rows {
            decide(name, "drop", "every value is missing".into());
            continue;
        }
        if col_profile.constant {
            decide(name, "drop", "constant: a single distinct value".into());
            continue;
        }
        if col_profile.id_like {
            decide(
                name,
                "drop",
                format!(
                    "identifier-like: a distinct value in each of the {} rows{}",
                    profile.n_rows,
                    if col_profile.kind == ColumnKind::Numeric {
                        ", evenly spaced integers (row numbers)"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        }
        if let Some(score) = col_profile.alone_predicts_target {
            let leak = match baseline {
                // Near-perfect, and far better than guessing the most frequent class.
                Some(b) => score >= cfg.leak_threshold && 1.0 - score <= 0.1 * (1.0 - b),
                None => score >= cfg.leak_threshold,
            };
            if leak {
                decide(
                    name,
                    "drop",
                    format!(
                        "target leak: this column alone predicts '{}' with {} {score:.4} on rows it was not fitted on{}",
                        cfg.target,
                        if baseline.is_some() {
                            "accuracy"
                        } else {
                            "R²"
                        },
                        baseline.map_or(String::new(), |b| format!(
                            " (the most frequent class alone: {b:.4})"
                        ))
                    ),
                );
                continue;
            }
        }
        let missing = column.values.missing();
        match col_profile.kind {
            ColumnKind::Numeric | ColumnKind::Boolean => {
                let Some(fit) = numeric_fits.get(name).cloned().flatten() else {
                    decide(name, "drop", "no values in the training split".into());
                    continue;
                };
                let NumericFit {
                    impute,
                    clip,
                    clipped,
                    summary: s,
                } = fit;
                if let Some([lo, hi]) = clip {
                    let n = clipped;
                    decide(
                        name,
                        "clip_outliers",
                        format!(
                            "{n} training {} beyond three interquartile ranges outside the quartiles; values are clipped to [{lo:.4}, {hi:.4}]",
                            if n == 1 { "value lies" } else { "values lie" }
                        ),
                    );
                }
                if missing > 0 {
                    decide(
                        name,
                        "impute_median",
                        format!(
                            "{missing} missing values in training, filled with the median {impute}; a '{name}:missing' indicator feature records where"
                        ),
                    );
                }
                if col_profile.kind == ColumnKind::Boolean {
                    decide(name, "boolean", "true/false spellings read as 1/0".into());
                }
                steps.push(FeatureStep::Numeric {
                    column: column.name.clone(),
                    impute,
                    mean: s.mean,
                    std: s.scale(),
                    clip,
                    missing_indicator: missing > 0,
                });
            }
            ColumnKind::Datetime => {
                let parsed: Vec<Option<f64>> = column
                    .values
                    .map_text(0..column.values.len(), |t| t.and_then(parse_datetime));
                let mut days: Vec<f64> = parsed.iter().flatten().copied().collect();
                if days.is_empty() {
                    decide(name, "drop", "no dates in the training split".into());
                    continue;
                }
                let unparsed = parsed.len() - days.len();
                let impute = median(&mut days);
                let time = level_counts(&column.values).iter().any(|(t, _)| {
                    has_time_of_day(t) && parse_datetime(t).is_some_and(|d| d.fract() != 0.0)
                });
                let s = NumericSummary::of(parsed.iter().map(|d| d.unwrap_or(impute)))
                    .expect("non-empty");
                decide(
                    name,
                    "expand_date",
                    format!(
                        "dates{}: days since 1970-01-01 (standardised), month and weekday{} as sine and cosine{}",
                        if time { " with times of day" } else { "" },
                        if time { " and hour" } else { "" },
                        if unparsed > 0 {
                            format!(
                                "; {unparsed} missing or unparseable in training, filled with the median date, with a '{name}:missing' indicator"
                            )
                        } else {
                            String::new()
                        }
                    ),
                );
                steps.push(FeatureStep::Date {
                    column: column.name.clone(),
                    impute,
                    mean: s.mean,
                    std: s.scale(),
                    time,
                    missing_indicator: unparsed > 0,
                });
            }
            ColumnKind::Text => {
                if cfg.text_buckets == 0 {
                    decide(
                        name,
                        "drop",
                        format!(
                            "free text ({} distinct values of several words) and text hashing is off",
                            col_profile.distinct
                        ),
                    );
                    continue;
                }
                decide(
                    name,
                    "hash_text",
                    format!(
                        "free text ({} distinct values of several words): word unigrams and bigrams hashed into {} features",
                        col_profile.distinct, cfg.text_buckets
                    ),
                );
                steps.push(FeatureStep::Text {
                    column: column.name.clone(),
                    buckets: cfg.text_buckets,
                });
            }
            ColumnKind::Categorical => {
                let mut ranked: Vec<(String, usize)> = level_counts(&column.values)
                    .into_iter()
                    .map(|(l, c)| (l.into_owned(), c))
                    .collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let Some((impute, _)) = ranked.first().cloned() else {
                    decide(name, "drop", "no values in the training split".into());
                    continue;
                };
                if missing > 0 {
                    decide(
                        name,
                        "impute_mode",
                        format!(
                            "{missing} missing values in training, filled with the most frequent category '{impute}'"
                        ),
                    );
                }
                if ranked.len() > cfg.max_categories {
                    decide(
                        name,
                        "frequency_encode",
                        format!(
                            "{} categories (more than {} to one-hot encode): each becomes its share of the training rows; unseen ones 0",
                            ranked.len(),
                            cfg.max_categories
                        ),
                    );
                    let total = (n_train - missing).max(1) as f64;
                    let mut frequencies: Vec<(String, f64)> = ranked
                        .into_iter()
                        .map(|(c, k)| (c, k as f64 / total))
                        .collect();
                    frequencies.sort_by(|a, b| a.0.cmp(&b.0));
                    steps.push(FeatureStep::Frequency {
                        column: column.name.clone(),
                        frequencies,
                        impute,
                    });
                    continue;
                }
                let min_count = (cfg.rare_share * n_train as f64).ceil() as usize;
                let (kept, rare): (Vec<_>, Vec<_>) = ranked
                    .into_iter()
                    .partition(|(_, k)| *k >= min_count.max(1));
                let other = !rare.is_empty();
                if other {
                    decide(
                        name,
                        "merge_rare",
                        format!(
                            "{} {} seen in fewer than {min_count} training rows ({}% of them) merged into '(other)': {}",
                            rare.len(),
                            if rare.len() == 1 {
                                "category"
                            } else {
                                "categories"
                            },
                            cfg.rare_share * 100.0,
                            rare.iter()
                                .map(|(c, _)| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                decide(
                    name,
                    "one_hot",
                    format!(
                        "categorical with {} categories{}",
                        kept.len(),
                        if other { " and '(other)'" } else { "" }
                    ),
                );
                let mut categories: Vec<String> = kept.into_iter().map(|(c, _)| c).collect();
                categories.sort();
                steps.push(FeatureStep::OneHot {
                    column: column.name.clone(),
                    categories,
                    impute,
                    other,
                });
            }
        }
    }
    if steps.is_empty() {
        let reasons = decisions
            .iter()
            .map(|d| format!("{} ({})", d.column, d.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(DataError::NoFeatures {
            reasons: if reasons.is_empty() {
                "the table has only the target column".into()
            } else {
                reasons
            },
        });
    }
    Ok(steps)
}

/// Each of `rows` assigned to one of `k` folds: shuffled with `seed`, then dealt out in turn
/// within each stratum (when given), so every fold gets its share of every class.
fn fold_assignment(rows: &[usize], strata: Option<&[u32]>, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..rows.len() {
        groups
            .entry(strata.map_or(0, |s| s[i]))
            .or_default()
            .push(i);
    }
    let mut fold = vec![0; rows.len()];
    // Each stratum continues the dealing where the last one stopped, so fold sizes stay even.
    let mut next = 0;
    for (_, mut members) in groups {
        members.shuffle(&mut rng);
        for i in members {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// The steps of a fitted transform with every statistic refitted on `train` and the features
/// unchanged (the same columns, categories and indicator features): medians, clip bounds,
/// means and scales, the most frequent category, category frequencies. A statistic `train`
/// has no values for keeps its earlier value.
fn refit_within(steps: &[FeatureStep], train: &RawTable) -> Vec<FeatureStep> {
    steps
        .iter()
        .map(|step| {
            let Some(column) = train.column(step.column()) else {
                return step.clone();
            };
            let mut step = step.clone();
            match &mut step {
                FeatureStep::Numeric {
                    impute,
                    mean,
                    std,
                    clip,
                    ..
                } => {
                    if let Some(fit) = as_numbers(column).and_then(|v| NumericFit::of(&v)) {
                        (*impute, *clip) = (fit.impute, fit.clip);
                        (*mean, *std) = (fit.summary.mean, fit.summary.scale());
                    }
                }
                FeatureStep::Date {
                    impute, mean, std, ..
                } => {
                    let parsed: Vec<Option<f64>> = column
                        .values
                        .map_text(0..column.values.len(), |t| t.and_then(parse_datetime));
                    let mut days: Vec<f64> = parsed.iter().flatten().copied().collect();
                    if !days.is_empty() {
                        let median_day = median(&mut days);
                        let s = NumericSummary::of(parsed.iter().map(|d| d.unwrap_or(median_day)))
                            .expect("non-empty");
                        (*impute, *mean, *std) = (median_day, s.mean, s.scale());
                    }
                }
                FeatureStep::OneHot {
                    categories, impute, ..
                } => {
                    let counts = level_counts(&column.values);
                    if let Some((mode, _)) = counts
                        .iter()
                        .filter(|(l, _)| categories.iter().any(|c| c == l))
                        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                    {
                        *impute = mode.to_string();
                    }
                }
                FeatureStep::Frequency {
                    frequencies,
                    impute,
                    ..
                } => {
                    let mut counts: Vec<(String, usize)> = level_counts(&column.values)
                        .into_iter()
                        .map(|(l, c)| (l.into_owned(), c))
                        .collect();
                    let total: usize = counts.iter().map(|(_, c)| c).sum();
                    if total > 0 {
                        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        *impute = counts[0].0.clone();
                        counts.sort_by(|a, b| a.0.cmp(&b.0));
                        *frequencies = counts
                            .into_iter()
                            .map(|(l, c)| (l, c as f64 / total as f64))
                            .collect();
                    }
                }
                FeatureStep::Text { .. } => {}
            }
            step
        })
        .collect()
}

/// What a numeric column's transform step needs from the training split.
#[derive(Debug, Clone)]
struct NumericFit {
    /// The median, for missing values.
    impute: f64,
    /// The outlier fences, where some training value lies beyond them.
    clip: Option<[f64; 2]>,
    /// Training values beyond the fences.
    clipped: usize,
    /// Mean and standard deviation after imputation and clipping.
    summary: NumericSummary,
}

impl NumericFit {
    /// `None` when the column has no values.
    fn of(values: &[Option<f64>]) -> Option<NumericFit> {
        let mut present: Vec<f64> = values.iter().flatten().copied().collect();
        if present.is_empty() {
            return None;
        }
        let impute = median(&mut present);
        let clip = outlier_fences(&present);
        let clipped = clip.map_or(0, |[lo, hi]| {
            present.iter().filter(|&&x| x < lo || x > hi).count()
        });
        let clip = clip.filter(|_| clipped > 0);
        let filled = values.iter().map(|v| {
            let x = v.unwrap_or(impute);
            clip.map_or(x, |[lo, hi]| x.clamp(lo, hi))
        });
        Some(NumericFit {
            impute,
            clip,
            clipped,
            summary: NumericSummary::of(filled).expect("non-empty"),
        })
    }
}

/// The clip bounds for extreme outliers: three interquartile ranges beyond the quartiles of
/// `values` (`None` when the quartiles coincide).
fn outlier_fences(values: &[f64]) -> Option<[f64; 2]> {
    if values.len() < 4 {
        return None;
    }
    let mut v = values.to_vec();
    let mut q = |p: f64| {
        let k = ((v.len() - 1) as f64 * p).round() as usize;
        *v.select_nth_unstable_by(k, f64::total_cmp).1
    };
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    (iqr > 0.0).then_some([q1 - 3.0 * iqr, q3 + 3.0 * iqr])
}

/// Sorts `values` in `f64::total_cmp` order: a least-significant-digit radix sort on the bits
/// (eight passes of one byte, with the sign flipped so that the bits order as the numbers),
/// several times faster than a comparison sort on the million-value columns profiling sees.
/// Short slices use the comparison sort.
fn sort_f64(values: &mut [f64]) {
    if values.len() < 4096 {
        values.sort_unstable_by(f64::total_cmp);
        return;
    }
    // The order-preserving key of total_cmp: flip every bit of negatives, the sign bit of
    // the rest.
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    // Every pass's byte counts in one read of the data.
    let mut histograms = vec![[0usize; 256]; 8];
    let mut keys: Vec<u64> = values
        .iter()
        .map(|&x| {
            let k = key(x);
            for (pass, counts) in histograms.iter_mut().enumerate() {
                counts[((k >> (pass * 8)) & 0xff) as usize] += 1;
            }
            k
        })
        .collect();
    let mut scratch = vec![0u64; keys.len()];
    for (pass, counts) in histograms.into_iter().enumerate() {
        let shift = pass * 8;
        // A byte that is the same everywhere needs no pass.
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut total = 0;
        for (o, c) in offsets.iter_mut().zip(counts) {
            *o = total;
            total += c;
        }
        for &k in &keys {
            let b = ((k >> shift) & 0xff) as usize;
            scratch[offsets[b]] = k;
            offsets[b] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (v, k) in values.iter_mut().zip(keys) {
        let b = if k >> 63 == 1 { k & !(1 << 63) } else { !k };
        *v = f64::from_bits(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(name: &str, v: Vec<f64>) -> RawColumn {
        RawColumn {
            name: name.into(),
            values: ColumnValues::Numeric(v.into_iter().map(Some).collect()),
        }
    }

    #[test]
    fn radix_sort_orders_as_total_cmp() {
        let mut state = 3u64;
        let mut values: Vec<f64> = (0..20_000)
            .map(|i| {
                state = autodl_artifacts::context::splitmix64(state);
                match i % 7 {
                    0 => -0.0,
                    1 => 0.0,
                    2 => f64::from((state % 5) as u32) - 2.0,
                    _ => (state as i64) as f64 / 1e12,
                }
            })
            .collect();
        values.extend([
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            1e-310,
            -1e-310,
        ]);
        let mut expected = values.clone();
        expected.sort_unstable_by(f64::total_cmp);
        sort_f64(&mut values);
        assert!(
            values
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn repeated_texts_transform_as_they_do_one_row_at_a_time() {
        // 3,000 rows, texts repeating (dictionary-coded, so the transform computes each
        // distinct text's features once) with some missing; the same table with plain text
        // columns goes row by row. The two must agree exactly.
        let n = 3000;
        let mut state = 11u64;
        let mut draw = |k: u64| {
            state = autodl_artifacts::context::splitmix64(state);
            state % k
        };
        let labels = |f: &mut dyn FnMut(usize) -> Option<String>| -> Vec<Option<String>> {
            (0..n).map(f).collect()
        };
        let cat = labels(&mut |_| (draw(10) > 0).then(|| format!("c{}", draw(40))));
        let few = labels(&mut |_| (draw(10) > 0).then(|| format!("f{}", draw(4))));
        let day = labels(&mut |_| {
            (draw(20) > 0).then(|| format!("2020-{:02}-{:02}", 1 + draw(12), 1 + draw(28)))
        });
        let y: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let dict = |v: &[Option<String>]| ColumnValues::dict_from(v.iter().map(|s| s.as_deref()));
        let table = RawTable {
            columns: vec![
                RawColumn {
                    name: "cat".into(),
                    values: dict(&cat),
                },
                RawColumn {
                    name: "few".into(),
                    values: dict(&few),
                },
                RawColumn {
                    name: "day".into(),
                    values: dict(&day),
                },
                numeric("x", (0..n).map(|i| i as f64 * 0.1).collect()),
                numeric("y", y),
            ],
        };
        let prepared = prepare(
            &PrepareConfig::new("y"),
            &table,
            "test",
            &RunContext::new(0, "."),
        )
        .unwrap();
        let steps = &prepared.transform.steps;
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, FeatureStep::OneHot { .. }))
                && steps
                    .iter()
                    .any(|s| matches!(s, FeatureStep::Frequency { .. }))
                && steps.iter().any(|s| matches!(s, FeatureStep::Date { .. })),
            "{steps:?}"
        );
        let plain = RawTable {
            columns: vec![
                RawColumn {
                    name: "cat".into(),
                    values: ColumnValues::Text(cat),
                },
                RawColumn {
                    name: "few".into(),
                    values: ColumnValues::Text(few),
                },
                RawColumn {
                    name: "day".into(),
                    values: ColumnValues::Text(day),
                },
                table.columns[3].clone(),
                table.columns[4].clone(),
            ],
        };
        let a = prepared.transform.transform(&table).unwrap();
        let b = prepared.transform.transform(&plain).unwrap();
        assert_eq!(a.n_cols, b.n_cols);
        assert!(
            a.data
                .iter()
                .zip(&b.data)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    #[test]
    fn split_is_disjoint_complete_stratified_and_seeded() {
        let rows: Vec<usize> = (0..200).collect();
        let strata: Vec<String> = rows
            .iter()
            .map(|i| (if i % 4 == 0 { "a" } else { "b" }).to_string())
            .collect();
        let (tr, va, te) = split(&rows, Some(&strata), 0.15, 0.15, 7);
        let mut all: Vec<usize> = tr.iter().chain(&va).chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, rows);
        // 50 "a" rows: 8 test (7.5 rounds to 8), 8 valid.
        let count_a = |s: &[usize]| s.iter().filter(|&&i| i % 4 == 0).count();
        assert_eq!((count_a(&te), count_a(&va)), (8, 8));
        assert_eq!(
            split(&rows, Some(&strata), 0.15, 0.15, 7),
            (tr.clone(), va, te)
        );
        assert_ne!(split(&rows, Some(&strata), 0.15, 0.15, 8).0, tr);
        // A stratum of one row stays in training.
        let (tr, va, te) = split(&[5], Some(&["z".to_string()]), 0.15, 0.15, 1);
        assert_eq!((tr, va, te), (vec![5], vec![], vec![]));
    }

    #[test]
    fn tiny_classes_that_leave_no_test_rows_are_an_error() {
        // Five classes of two rows: stratification keeps every row in training.
        let table = RawTable {
            columns: vec![
                numeric("x", (0..10).map(|i| i as f64).collect()),
                numeric("y", (0..10).map(|i| (i / 2) as f64).collect()),
            ],
        };
        let err = prepare(
            &PrepareConfig::new("y"),
            &table,
            "h",
            &RunContext::new(1, "/tmp"),
        )
        .unwrap_err();
        assert!(
            matches!(err, DataError::TooFewRows { rows: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn task_inference() {
        let cfg = PrepareConfig::new("y");
        let ints = numeric("y", (0..100).map(|i| (i % 3) as f64).collect());
        assert_eq!(infer_task(&cfg, &ints).unwrap().0, Task::Multiclass);
        let many = numeric("y", (0..100).map(|i| i as f64).collect());
        assert_eq!(infer_task(&cfg, &many).unwrap().0, Task::Regression);
        let two = RawColumn {
            name: "y".into(),
            values: ColumnValues::Text(
                (0..10)
                    .map(|i| Some(if i % 2 == 0 { "m" } else { "b" }.into()))
                    .collect(),
            ),
        };
        assert_eq!(infer_task(&cfg, &two).unwrap().0, Task::Binary);
        let one = numeric("y", vec![1.0; 10]);
        assert!(matches!(
            infer_task(&cfg, &one),
            Err(DataError::SingleClass { .. })
        ));
        let mut reg = PrepareConfig::new("y");
        reg.task = Some(Task::Regression);
        assert!(matches!(
            infer_task(&reg, &two),
            Err(DataError::NonNumericTarget { row: 1, .. })
        ));
    }

    #[test]
    fn numbered_columns_become_images_or_signals() {
        let shape_of = |names: Vec<String>| {
            let n_rows = 60;
            let mut columns: Vec<RawColumn> = names
                .iter()
                .enumerate()
                // The first column is constant: kept in a grid, where dropping it would shift it.
                .map(|(k, name)| {
                    numeric(
                        name,
                        (0..n_rows)
                            .map(|i| ((i * k) % 7 * k.min(1)) as f64)
                            .collect(),
                    )
                })
                .collect();
            columns.push(numeric("y", (0..n_rows).map(|i| (i % 2) as f64).collect()));
            let p = prepare(
                &PrepareConfig::new("y"),
                &RawTable { columns },
                "h",
                &RunContext::new(1, "/tmp"),
            )
            .unwrap();
            (p.data.input_shape, p.data.train.x.n_cols)
        };
        let named = |prefix: &str, from: usize, n: usize| -> Vec<String> {
            (from..from + n).map(|k| format!("{prefix}{k}")).collect()
        };
        assert_eq!(
            shape_of(named("px", 0, 64)),
            (
                InputShape::Image {
                    channels: 1,
                    height: 8,
                    width: 8
                },
                64
            )
        );
        assert_eq!(
            shape_of(named("x", 1, 40)),
            (
                InputShape::Signal {
                    channels: 1,
                    length: 40
                },
                40
            )
        );
        // Too few, out of order, or mixed prefixes: a plain vector (constant column dropped).
        assert_eq!(shape_of(named("x", 0, 5)), (InputShape::Vector, 4));
        let mut shuffled = named("x", 0, 10);
        shuffled.swap(2, 3);
        assert_eq!(shape_of(shuffled).0, InputShape::Vector);
        let mut mixed = named("x", 0, 10);
        mixed[4] = "z4".into();
        assert_eq!(shape_of(mixed).0, InputShape::Vector);
    }

    #[test]
    fn prepare_fits_on_train_only_and_records_decisions() {
        let n = 100;
        let table = RawTable {
            columns: vec![
                numeric("x", (0..n).map(|i| (i as f64).sqrt()).collect()),
                numeric("constant", vec![3.0; n]),
                RawColumn {
                    name: "colour".into(),
                    values: ColumnValues::Text(
                        (0..n)
                            .map(|i| {
                                if i % 10 == 0 {
                                    None
                                } else {
                                    Some(["red", "blue"][i % 2].to_string())
                                }
                            })
                            .collect(),
                    ),
                },
                numeric(
                    "y",
                    (0..n).map(|i| ((i * 7) % 5 < 2) as u8 as f64).collect(),
                ),
            ],
        };
        let p = prepare(
            &PrepareConfig::new("y"),
            &table,
            "h",
            &RunContext::new(1, "/tmp"),
        )
        .unwrap();
        assert_eq!(p.profile.task, Task::Binary);
        assert_eq!(p.data.feature_names, vec!["x", "colour=blue", "colour=red"]);
        assert!(
            p.transform
                .decisions
                .iter()
                .any(|d| d.column == "constant" && d.action == "drop")
        );
        assert!(
            p.transform
                .decisions
                .iter()
                .any(|d| d.column == "colour" && d.action == "impute_mode")
        );
        // Standardisation statistics come from the training rows alone.
        let FeatureStep::Numeric { mean, .. } = &p.transform.steps[0] else {
            panic!()
        };
        let train_x: Vec<f64> = match &p.raw_train.column("x").unwrap().values {
            ColumnValues::Numeric(v) => v.iter().flatten().copied().collect(),
            _ => unreachable!(),
        };
        assert_eq!(*mean, train_x.iter().sum::<f64>() / train_x.len() as f64);
        let total = p.data.train.y.len() + p.data.valid.y.len() + p.data.test.y.len();
        assert_eq!(total, n);
    }
}
