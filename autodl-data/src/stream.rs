//! Profiling a table by streaming over its file, for files larger than memory.
//!
//! The file is read a piece at a time (whole CSV records or JSON lines of about
//! [`StreamOptions::chunk_bytes`], or [`StreamOptions::chunk_rows`] rows of a Parquet file); no
//! more than one piece is held at once. Over every row the stream counts exactly: rows, missing
//! values, numeric summaries (merged per piece), the target's class counts, and distinct values
//! (exactly up to [`EXACT_DISTINCT`] per column, then a HyperLogLog estimate, about 0.8%
//! error). Everything else in the profile (column kinds, top categories, duplicate rows, the
//! leak check; outliers, scaled to the file) is computed on a uniform sample of rows drawn by
//! reservoir sampling, and the profile says so ([`DataProfile::sampled_rows`]).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use autodl_artifacts::profile::{ColumnKind, DataProfile, NumericSummary};
use autodl_artifacts::table::{ColumnValues, FastHash, RawColumn, RawTable, format_number};
use autodl_artifacts::transform::parse_number;
use polars::prelude::{ParquetReader, SerReader};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::io::{CsvShape, check_csv_piece, csv_frame, frame_to_table, last_record_end};
use crate::prepare::profile_table;
use crate::{DataError, PrepareConfig, Result};

/// Distinct values counted exactly per column before the count becomes an estimate.
pub const EXACT_DISTINCT: usize = 1 << 17;

/// HyperLogLog registers: 2^14, a standard error of 1.04/√16384 ≈ 0.8%.
const HLL_BITS: u32 = 14;

/// Labels of the target counted exactly before it is taken for a regression target.
const MAX_TARGET_LABELS: usize = 10_000;

/// How a file is streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    /// Bytes per piece of a CSV or JSON-lines file (whole records; more if one record is longer).
    pub chunk_bytes: usize,
    /// Rows per piece of a Parquet file.
    pub chunk_rows: usize,
    /// Rows in the uniform sample the sample-based fields are computed on.
    pub sample_rows: usize,
    /// Seed of the sample.
    pub seed: u64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk_bytes: 64 << 20,
            chunk_rows: 500_000,
            sample_rows: 100_000,
            seed: 0,
        }
    }
}

/// Where a stream is: reported after every piece.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamProgress {
    /// Bytes (CSV, JSON lines) or rows (Parquet) read so far.
    pub done: u64,
    /// Of how many.
    pub total: u64,
    /// Rows read so far.
    pub rows: usize,
}

/// Distinct values of a column: exact, then estimated.
enum Distinct {
    Exact(HashSet<u64, FastHash>),
    Sketch(Vec<u8>),
}

impl Distinct {
    fn insert(&mut self, hash: u64) {
        match self {
            Distinct::Exact(set) => {
                set.insert(hash);
                if set.len() > EXACT_DISTINCT {
                    let mut registers = vec![0u8; 1 << HLL_BITS];
                    for &h in set.iter() {
                        hll_add(&mut registers, h);
                    }
                    *self = Distinct::Sketch(registers);
                }
            }
            Distinct::Sketch(registers) => hll_add(registers, hash),
        }
    }

    /// The count, and whether it is exact.
    fn count(&self) -> (usize, bool) {
        match self {
            Distinct::Exact(set) => (set.len(), true),
            Distinct::Sketch(registers) => (hll_estimate(registers), false),
        }
    }
}

fn hll_add(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - HLL_BITS)) as usize;
    let rest = hash << HLL_BITS | 1 << (HLL_BITS - 1);
    registers[index] = registers[index].max(rest.leading_zeros() as u8 + 1);
}

fn hll_estimate(registers: &[u8]) -> usize {
    let m = registers.len() as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    // Linear counting where the raw estimate is biased (small cardinalities).
    if raw <= 2.5 * m && zeros > 0 {
        (m * (m / zeros as f64).ln()).round() as usize
    } else {
        raw.round() as usize
    }
}

/// A value's hash for distinct counting: numbers (also numbers written as text) by value,
/// other text by its bytes.
fn value_hash(number: Option<f64>, text: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match (number, text) {
        (Some(x), _) => (if x == 0.0 { 0.0f64 } else { x }).to_bits().hash(&mut h),
        (None, Some(s)) => {
            1u8.hash(&mut h);
            s.hash(&mut h);
        }
        (None, None) => {}
    }
    h.finish()
}

/// Summary of a column's numbers, mergeable across pieces (Chan et al.'s parallel variance).
#[derive(Clone, Copy)]
struct Moments {
    n: usize,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    /// Every value an integer so far.
    integers: bool,
    /// Greatest common divisor of the integers' distances from `first`.
    gcd: u64,
    first: Option<f64>,
}

impl Moments {
    fn new() -> Self {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            integers: true,
            gcd: 0,
            first: None,
        }
    }

    fn add(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.integers &= x.fract() == 0.0 && x.abs() < 9.0e15;
        if self.integers {
            let first = *self.first.get_or_insert(x);
            self.gcd = gcd(self.gcd, (x - first).abs() as u64);
        }
    }

    fn summary(&self) -> Option<NumericSummary> {
        (self.n > 0).then(|| NumericSummary {
            min: self.min,
            max: self.max,
            mean: self.mean,
            std: if self.n > 1 {
                (self.m2 / (self.n - 1) as f64).sqrt()
            } else {
                0.0
            },
        })
    }

    /// Integers that fill an evenly spaced run (0, 1, 2, … or 10, 13, 16, …) exactly as many
    /// steps long as there are values: unique if they are distinct, which the caller checks.
    fn fill_a_run(&self) -> bool {
        self.integers
            && self.gcd > 0
            && self.max - self.min == self.gcd as f64 * (self.n - 1) as f64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A column's sample values: numbers until a value that is not one arrives.
enum SampleValues {
    Numbers(Vec<Option<f64>>),
    Texts(Vec<Option<String>>),
}

impl SampleValues {
    fn make_texts(&mut self) {
        if let SampleValues::Numbers(v) = self {
            *self = SampleValues::Texts(v.iter().map(|x| x.map(format_number)).collect());
        }
    }
}

/// Everything streamed about one column.
struct ColumnStream {
    name: String,
    missing: usize,
    /// `None` once a value that is not a number arrived.
    moments: Option<Moments>,
    distinct: Distinct,
    sample: SampleValues,
}

/// The running state of a streamed profile.
struct Stream {
    columns: Vec<ColumnStream>,
    rows: usize,
    target: usize,
    /// Exact label counts of the target; `None` past [`MAX_TARGET_LABELS`] labels.
    labels: Option<HashMap<String, usize>>,
    rng: ChaCha8Rng,
    sample_rows: usize,
}

impl Stream {
    fn new(names: Vec<String>, target: &str, opts: &StreamOptions) -> Result<Stream> {
        let target =
            names
                .iter()
                .position(|n| n == target)
                .ok_or_else(|| DataError::MissingTarget {
                    name: target.to_string(),
                    available: names.clone(),
                })?;
        Ok(Stream {
            columns: names
                .into_iter()
                .map(|name| ColumnStream {
                    name,
                    missing: 0,
                    moments: Some(Moments::new()),
                    distinct: Distinct::Exact(HashSet::default()),
                    sample: SampleValues::Numbers(Vec::new()),
                })
                .collect(),
            rows: 0,
            target,
            labels: Some(HashMap::new()),
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            sample_rows: opts.sample_rows.max(1),
        })
    }

    /// Takes in one piece of the table.
    fn add(&mut self, piece: &RawTable, shown: &str) -> Result<()> {
        if piece.columns.len() != self.columns.len() {
            return Err(DataError::Read {
                path: shown.to_string(),
                message: format!(
                    "a piece of the file has {} columns, the first had {}",
                    piece.columns.len(),
                    self.columns.len()
                ),
            });
        }
        let n = piece.n_rows();
        // Reservoir sampling (Algorithm R): each row's slot in the sample, if it gets one.
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for r in 0..n {
            let seen = self.rows + r;
            if seen < self.sample_rows {
                slots.push((r, seen));
            } else {
                let j = self.rng.random_range(0..=seen);
                if j < self.sample_rows {
                    slots.push((r, j));
                }
            }
        }
        self.rows += n;
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(self.columns.len())
            .max(1);
        let slots = &slots;
        std::thread::scope(|scope| {
            let mut lanes: Vec<Vec<(&mut ColumnStream, &RawColumn)>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (i, pair) in self.columns.iter_mut().zip(&piece.columns).enumerate() {
                lanes[i % threads].push(pair);
            }
            for lane in lanes {
                scope.spawn(move || {
                    for (column, values) in lane {
                        column.add(&values.values, slots);
                    }
                });
            }
        });
        if let Some(labels) = &mut self.labels {
            for (label, count) in piece.columns[self.target].values.label_counts() {
                *labels.entry(label).or_default() += count;
            }
            if labels.len() > MAX_TARGET_LABELS {
                self.labels = None;
            }
        }
        Ok(())
    }

    fn sample_table(&self) -> RawTable {
        RawTable {
            columns: self
                .columns
                .iter()
                .map(|c| RawColumn {
                    name: c.name.clone(),
                    values: match &c.sample {
                        SampleValues::Numbers(v) => ColumnValues::Numeric(v.clone()),
                        SampleValues::Texts(v) => {
                            ColumnValues::dict_from(v.iter().map(|s| s.as_deref()))
                        }
                    },
                })
                .collect(),
        }
    }
}

impl ColumnStream {
    fn add(&mut self, values: &ColumnValues, slots: &[(usize, usize)]) {
        // Text that is not a number keeps the sample as text (booleans spelled as words stay
        // words, as the in-memory profile reads them); text that is not even a boolean ends the
        // numeric summary.
        if !matches!(values, ColumnValues::Numeric(_)) {
            let (mut plain, mut numeric) = (true, true);
            for (label, _) in values.label_counts() {
                plain &= label.trim().parse::<f64>().is_ok_and(f64::is_finite);
                numeric &= parse_number(&label).is_some();
            }
            if !plain {
                self.sample.make_texts();
            }
            if !numeric {
                self.moments = None;
            }
        }
        for i in 0..values.len() {
            let (number, text) = match values {
                ColumnValues::Numeric(v) => (v[i], None),
                _ => {
                    let text = values.label_ref(i);
                    (text.as_deref().and_then(parse_number), text)
                }
            };
            if number.is_none() && text.is_none() {
                self.missing += 1;
                continue;
            }
            if let (Some(m), Some(x)) = (&mut self.moments, number) {
                m.add(x);
            }
            self.distinct.insert(value_hash(number, text.as_deref()));
        }
        for &(row, slot) in slots {
            match &mut self.sample {
                SampleValues::Numbers(v) => {
                    let x = match values {
                        ColumnValues::Numeric(n) => n[row],
                        _ => values.label_ref(row).and_then(|s| parse_number(&s)),
                    };
                    put(v, slot, x);
                }
                SampleValues::Texts(v) => put(v, slot, values.label(row)),
            }
        }
    }
}

fn put<T>(v: &mut Vec<T>, slot: usize, x: T) {
    if slot == v.len() {
        v.push(x);
    } else {
        v[slot] = x;
    }
}

/// Reads the table at `path` a piece at a time (see the module documentation for how each
/// format is cut) and calls `each` with every piece, in order, and where the stream is. At
/// most one piece is held at once, so files larger than memory can be processed.
///
/// `each` may fail with its own error type (anything a [`DataError`] converts into); its
/// first error ends the stream and is returned as it is.
pub fn read_table_pieces<E: From<DataError>>(
    path: &Path,
    opts: &StreamOptions,
    mut each: impl FnMut(RawTable, StreamProgress) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(DataError::NotFound { path: shown }.into());
    }
    let read_err = |e: polars::error::PolarsError| DataError::Read {
        path: shown.clone(),
        message: e.to_string().lines().next().unwrap_or("").to_string(),
    };
    let io_err = |e: std::io::Error| DataError::Read {
        path: shown.clone(),
        message: e.to_string(),
    };
    let total = std::fs::metadata(path).map_err(io_err)?.len();
    let extension = crate::io::extension_of(path);
    let mut rows = 0usize;
    match extension.as_str() {
        "csv" | "tsv" | "txt" | "jsonl" | "ndjson" => {
            let json = matches!(extension.as_str(), "jsonl" | "ndjson");
            let mut file = std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(path).map_err(io_err)?,
            );
            // The header line and the layout, from the first piece (CSV only).
            let mut shape: Option<(CsvShape, Vec<u8>)> = None;
            let (mut done, mut lines) = (0u64, 0usize);
            let mut carry: Vec<u8> = Vec::new();
            loop {
                let mut piece = std::mem::take(&mut carry);
                let want = opts.chunk_bytes.max(1);
                piece.reserve(want);
                let got = (&mut file)
                    .take(want as u64)
                    .read_to_end(&mut piece)
                    .map_err(io_err)?;
                // `take` stops short only at the end of the file.
                let at_end = got < want;
                if piece.is_empty() {
                    break;
                }
                let end = if at_end {
                    piece.len()
                } else if json {
                    match piece.iter().rposition(|&b| b == b'\n') {
                        Some(i) => i + 1,
                        None => {
                            carry = piece;
                            continue;
                        }
                    }
                } else {
                    match last_record_end(&piece) {
                        Some(i) => i,
                        None => {
                            carry = piece;
                            continue;
                        }
                    }
                };
                carry = piece.split_off(end);
                let piece_lines = piece.iter().filter(|&&b| b == b'\n').count();
                let table = if json {
                    let df = polars::prelude::JsonReader::new(std::io::Cursor::new(&piece))
                        .with_json_format(polars::prelude::JsonFormat::JsonLines)
                        .infer_schema_len(std::num::NonZeroUsize::new(10_000))
                        .finish()
                        .map_err(read_err)?;
                    frame_to_table(&df).map_err(read_err)?
                } else {
                    let bytes = match &shape {
                        None => {
                            let sniffed = crate::io::sniff_csv(&piece, &shown)?;
                            let header_end = if sniffed.header {
                                last_record_end(
                                    &piece[..piece
                                        .iter()
                                        .position(|&b| b == b'\n')
                                        .map_or(piece.len(), |i| i + 1)],
                                )
                                .unwrap_or(piece.len())
                            } else {
                                0
                            };
                            shape = Some((sniffed, piece[..header_end].to_vec()));
                            piece
                        }
                        Some((sniffed, header)) => {
                            check_csv_piece(&piece, sniffed, (lines, done), &shown)?;
                            let mut bytes = header.clone();
                            bytes.extend_from_slice(&piece);
                            bytes
                        }
                    };
                    let (sniffed, _) = shape.as_ref().expect("set by the first piece");
                    let df = csv_frame(bytes, sniffed).map_err(read_err)?;
                    frame_to_table(&df).map_err(read_err)?
                };
                done += end as u64;
                lines += piece_lines;
                rows += table.n_rows();
                if table.n_rows() > 0 {
                    each(table, StreamProgress { done, total, rows })?;
                }
                if at_end && carry.is_empty() {
                    break;
                }
            }
        }
        "parquet" | "pq" => {
            let open = || std::fs::File::open(path).map_err(io_err);
            let n = ParquetReader::new(open()?).num_rows().map_err(read_err)?;
            let step = opts.chunk_rows.max(1);
            for offset in (0..n).step_by(step) {
                let df = ParquetReader::new(open()?)
                    .with_slice(Some((offset, step.min(n - offset))))
                    .finish()
                    .map_err(read_err)?;
                let table = frame_to_table(&df).map_err(read_err)?;
                rows += table.n_rows();
                each(
                    table,
                    StreamProgress {
                        done: rows as u64,
                        total: n as u64,
                        rows,
                    },
                )?;
            }
        }
        // Other formats are read whole (the stream then has one piece).
        _ => {
            let table = crate::read_table(path)?;
            rows = table.n_rows();
            each(
                table,
                StreamProgress {
                    done: total,
                    total,
                    rows,
                },
            )?;
        }
    }
    if rows == 0 {
        return Err(DataError::Empty { path: shown }.into());
    }
    Ok(())
}

/// Profiles the table at `path` by streaming over it (see the module documentation), with
/// `cfg.target` as the target, or, when it is empty, the target [`crate::infer_target`] chooses
/// on the first piece (the choice is recorded in the profile's formulation).
pub fn profile_streaming(
    path: &Path,
    cfg: &PrepareConfig,
    source_sha256: &str,
    opts: &StreamOptions,
    mut progress: impl FnMut(StreamProgress),
) -> Result<DataProfile> {
    let shown = path.display().to_string();
    let mut stream: Option<Stream> = None;
    let mut formulation = Vec::new();
    read_table_pieces(path, opts, |piece, at| -> Result<()> {
        let state = match &mut stream {
            Some(s) => s,
            None => {
                let target = if cfg.target.is_empty() {
                    let choice = crate::infer_target(&piece)?;
                    formulation.push(format!(
                        "target '{}' (chosen on the first {} rows): {}",
                        choice.column,
                        piece.n_rows(),
                        choice.reason
                    ));
                    choice.column
                } else {
                    cfg.target.clone()
                };
                let names = piece.names().iter().map(|s| s.to_string()).collect();
                stream.insert(Stream::new(names, &target, opts)?)
            }
        };
        state.add(&piece, &shown)?;
        progress(at);
        Ok(())
    })?;
    let stream = stream.expect("a non-empty file gives at least one piece");
    let sample = stream.sample_table();
    let mut sample_cfg = cfg.clone();
    sample_cfg.target = stream.columns[stream.target].name.clone();
    let mut profile = profile_table(&sample_cfg, &sample, source_sha256)?;
    let rows = stream.rows;
    let sampled = sample.n_rows();
    for (p, c) in profile.columns.iter_mut().zip(&stream.columns) {
        let (distinct, exact) = c.distinct.count();
        p.missing = c.missing;
        p.missing_share = c.missing as f64 / rows as f64;
        p.distinct = distinct;
        p.constant = exact && distinct <= 1;
        if matches!(p.kind, ColumnKind::Numeric | ColumnKind::Boolean)
            && let Some(summary) = c.moments.as_ref().and_then(Moments::summary)
        {
            p.numeric = Some(summary);
        }
        // Identifier-like over every row, not within the sample.
        let unique = if exact {
            distinct == rows
        } else {
            distinct as f64 >= 0.97 * rows as f64
        };
        p.id_like = rows >= crate::prepare::ID_MIN_ROWS
            && c.missing == 0
            && match (&c.moments, p.kind) {
                (Some(m), ColumnKind::Numeric) => unique && m.fill_a_run(),
                (None, ColumnKind::Categorical) => unique,
                _ => false,
            };
        // The sample's outliers, scaled to the file (an estimate; the profile says so).
        p.outliers = (p.outliers as f64 * rows as f64 / sampled as f64).round() as usize;
        if p.id_like || p.constant {
            p.alone_predicts_target = None;
        }
    }
    if let Some(labels) = &stream.labels
        && profile.task.is_classification()
        && profile
            .class_counts
            .iter()
            .all(|(l, _)| labels.contains_key(l))
    {
        let mut counts: Vec<(String, usize)> =
            labels.iter().map(|(l, n)| (l.clone(), *n)).collect();
        counts.retain(|(l, _)| !l.is_empty());
        profile.class_counts = crate::prepare::sorted_labels(counts);
    }
    profile.n_rows = rows;
    profile.sampled_rows = (sampled < rows).then_some(sampled);
    profile.formulation = formulation;
    Ok(profile)
}
