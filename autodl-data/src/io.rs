//! Reading tables with polars into plain columns, and writing Parquet.

use std::path::Path;

use autodl_artifacts::io::temporary_sibling;
use autodl_artifacts::table::{ColumnValues, Matrix, RawColumn, RawTable};
use polars::prelude::{
    Column, CsvParseOptions, CsvReadOptions, DataFrame, DataType, IpcReader, IpcWriter, JsonFormat,
    JsonReader, NullValues, ParquetReader, ParquetWriter, PlSmallStr, SerReader, SerWriter,
};

use crate::{DataError, Result};

/// Strings read as missing in CSV files, besides the empty field.
const NULL_SPELLINGS: [&str; 6] = ["", "NA", "N/A", "NaN", "null", "NULL"];

/// Reads a table: CSV (`.csv`, `.tsv`, `.txt`), Parquet (`.parquet`, `.pq`), Arrow IPC
/// (`.arrow`, `.ipc`, `.feather`) or JSON lines (`.jsonl`, `.ndjson`).
///
/// CSV files are checked before parsing ([`sniff_csv`]): the delimiter (`,` `;` tab `|`) and
/// whether the first line is a header are detected, bytes that are not UTF-8 and rows with
/// the wrong number of fields are errors that give line numbers.
///
/// Numbers and booleans become [`ColumnValues::Numeric`] (NaN counts as missing), everything
/// else [`ColumnValues::Text`]. A missing file, an unknown extension, a malformed file and a file
/// without data rows are errors that say so.
pub fn read_table(path: &Path) -> Result<RawTable> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(DataError::NotFound { path: shown });
    }
    let extension = extension_of(path);
    let read_err = |e: polars::error::PolarsError| DataError::Read {
        path: shown.clone(),
        message: first_line(&e.to_string()),
    };
    let open = || {
        std::fs::File::open(path).map_err(|e| DataError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })
    };
    let df = match extension.as_str() {
        "csv" | "tsv" | "txt" => {
            let bytes = std::fs::read(path).map_err(|e| DataError::Read {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            let sniffed = sniff_csv(&bytes, &shown)?;
            csv_frame(bytes, &sniffed).map_err(read_err)?
        }
        "parquet" | "pq" => ParquetReader::new(open()?).finish().map_err(read_err)?,
        "arrow" | "ipc" | "feather" => IpcReader::new(open()?).finish().map_err(read_err)?,
        "jsonl" | "ndjson" => {
            if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(DataError::Empty { path: shown });
            }
            JsonReader::new(open()?)
                .with_json_format(JsonFormat::JsonLines)
                .infer_schema_len(Some(std::num::NonZeroUsize::new(10_000).expect("non-zero")))
                .finish()
                .map_err(read_err)?
        }
        _ => {
            return Err(DataError::UnsupportedFormat {
                path: shown,
                extension: if extension.is_empty() {
                    "(none)".into()
                } else {
                    extension
                },
            });
        }
    };
    if df.height() == 0 || df.width() == 0 {
        return Err(DataError::Empty { path: shown });
    }
    frame_to_table(&df).map_err(read_err)
}

/// Parses CSV bytes of the layout `shape` (the header line, if any, first).
pub(crate) fn csv_frame(
    bytes: Vec<u8>,
    shape: &CsvShape,
) -> polars::error::PolarsResult<DataFrame> {
    let nulls = NullValues::AllColumns(
        NULL_SPELLINGS
            .iter()
            .map(|s| PlSmallStr::from(*s))
            .collect(),
    );
    CsvReadOptions::default()
        .with_has_header(shape.header)
        .with_infer_schema_length(Some(10_000))
        .with_parse_options(
            CsvParseOptions::default()
                .with_separator(shape.delimiter)
                .with_null_values(Some(nulls))
                .with_missing_is_null(true),
        )
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
}

/// Converts a polars frame into plain columns, the columns on all available cores.
pub(crate) fn frame_to_table(df: &DataFrame) -> polars::error::PolarsResult<RawTable> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(df.width())
        .max(1);
    let mut converted: Vec<(usize, polars::error::PolarsResult<RawColumn>)> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        df.columns()
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, c)| (i, to_raw_column(c)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a reading thread panicked"))
                .collect()
        });
    converted.sort_by_key(|(i, _)| *i);
    let columns = converted
        .into_iter()
        .map(|(_, c)| c)
        .collect::<polars::error::PolarsResult<Vec<_>>>()?;
    Ok(RawTable { columns })
}

/// What [`sniff_csv`] found out about a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvShape {
    /// The field delimiter.
    pub delimiter: u8,
    /// Whether the first line names the columns.
    pub header: bool,
    /// Fields per row.
    pub fields: usize,
}

/// Rows with the wrong field count reported at most, per error.
const RAGGED_SHOWN: usize = 5;

/// Checks a CSV file's bytes before parsing and detects its layout.
///
/// - Bytes that are not UTF-8 are an error giving the line and the byte offset.
/// - The delimiter is the one of `,` `;` tab `|` that splits the first lines (outside
///   quotes) into the same number of fields, more than one; a single column is read with `,`.
/// - The first line is a header unless it holds a number in a column (then the file is read
///   without one and its columns are named `column_1`, `column_2`, …).
/// - An empty file, or one with only a header, is [`DataError::Empty`]; rows whose field
///   count differs from the first row's are [`DataError::Ragged`] with their line numbers.
pub fn sniff_csv(bytes: &[u8], shown: &str) -> Result<CsvShape> {
    check_utf8(bytes, (1, 0), shown)?;
    let records = split_records(bytes, None);
    let nonblank: Vec<&(usize, Vec<&[u8]>)> = records
        .iter()
        .filter(|(_, fields)| !(fields.len() == 1 && fields[0].iter().all(u8::is_ascii_whitespace)))
        .collect();
    if nonblank.is_empty() {
        return Err(DataError::Empty {
            path: shown.to_string(),
        });
    }
    // The delimiter: the candidate whose first lines agree on a field count above one.
    let head: Vec<&[u8]> = bytes.split(|&b| b == b'\n').take(20).collect();
    let head_len: usize = head
        .iter()
        .map(|l| l.len() + 1)
        .sum::<usize>()
        .min(bytes.len());
    let mut delimiter = b',';
    let mut best = 1;
    for candidate in [b',', b';', b'\t', b'|'] {
        let counts: Vec<usize> = split_records(&bytes[..head_len], Some(candidate))
            .iter()
            .filter(|(_, f)| !(f.len() == 1 && f[0].is_empty()))
            .map(|(_, f)| f.len())
            .collect();
        let consistent =
            counts.len() >= 2 && counts[..counts.len() - 1].windows(2).all(|w| w[0] == w[1]);
        if counts.first().is_some_and(|&c| c > best) && (consistent || counts.len() == 1) {
            best = counts[0];
            delimiter = candidate;
        }
    }
    let records = split_records(bytes, Some(delimiter));
    let records: Vec<&(usize, Vec<&[u8]>)> = records
        .iter()
        .filter(|(_, f)| !(f.len() == 1 && f[0].iter().all(u8::is_ascii_whitespace)))
        .collect();
    let fields = records[0].1.len();
    check_fields(&records, fields, 0, shown)?;
    let is_number = |f: &[u8]| {
        let s = String::from_utf8_lossy(f);
        let s = s.trim().trim_matches('"');
        !s.is_empty() && s.parse::<f64>().is_ok()
    };
    let header = !records[0].1.iter().any(|f| is_number(f));
    if header && records.len() == 1 {
        return Err(DataError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(CsvShape {
        delimiter,
        header,
        fields,
    })
}

/// Fails with the line (counted from `first.0`) and byte offset (from `first.1`) of the first
/// bytes that are not UTF-8.
pub(crate) fn check_utf8(bytes: &[u8], first: (usize, u64), shown: &str) -> Result<()> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        let line = first.0 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        return Err(DataError::Read {
            path: shown.to_string(),
            message: format!(
                "line {line} (byte {}) is not valid UTF-8; save the file as UTF-8 and try again",
                first.1 + at as u64
            ),
        });
    }
    Ok(())
}

/// Fails with [`DataError::Ragged`] when records do not have `fields` fields; their line
/// numbers are shifted by `lines_before`.
fn check_fields(
    records: &[&(usize, Vec<&[u8]>)],
    fields: usize,
    lines_before: usize,
    shown: &str,
) -> Result<()> {
    let ragged: Vec<String> = records
        .iter()
        .filter(|(_, f)| f.len() != fields)
        .map(|(line, f)| format!("line {} has {} fields", line + lines_before, f.len()))
        .collect();
    if ragged.is_empty() {
        return Ok(());
    }
    Err(DataError::Ragged {
        path: shown.to_string(),
        expected: fields,
        rows: ragged.len(),
        examples: ragged.into_iter().take(RAGGED_SHOWN).collect(),
    })
}

/// Checks a later piece of a CSV file (whole records, starting after `lines_before` lines and
/// `bytes_before` bytes) against the layout the first piece gave: UTF-8, and the field count.
pub(crate) fn check_csv_piece(
    bytes: &[u8],
    shape: &CsvShape,
    (lines_before, bytes_before): (usize, u64),
    shown: &str,
) -> Result<()> {
    check_utf8(bytes, (lines_before + 1, bytes_before), shown)?;
    let records = split_records(bytes, Some(shape.delimiter));
    let records: Vec<&(usize, Vec<&[u8]>)> = records
        .iter()
        .filter(|(_, f)| !(f.len() == 1 && f[0].iter().all(u8::is_ascii_whitespace)))
        .collect();
    check_fields(&records, shape.fields, lines_before, shown)
}

/// The end of the last whole record in `bytes` (just past its line break, outside quotes),
/// given that `bytes` starts at a record's start; `None` if no record ends in it.
pub(crate) fn last_record_end(bytes: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut end = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == b'\n' && !quoted {
            end = Some(i + 1);
        }
    }
    end
}

/// Splits CSV bytes into records of fields, honouring double quotes (a quoted field may hold
/// delimiters, doubled quotes and line breaks); each record with the line it starts on
/// (1-based). Without a delimiter, records are split into lines only.
fn split_records(bytes: &[u8], delimiter: Option<u8>) -> Vec<(usize, Vec<&[u8]>)> {
    let mut records = Vec::new();
    let (mut line, mut start_line) = (1, 1);
    let (mut field_start, mut quoted) = (0, false);
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            quoted = !quoted;
        } else if b == b'\n' {
            line += 1;
            if !quoted {
                let end = if i > field_start && bytes[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                fields.push(&bytes[field_start..end]);
                records.push((start_line, std::mem::take(&mut fields)));
                field_start = i + 1;
                start_line = line;
            }
        } else if Some(b) == delimiter && !quoted {
            fields.push(&bytes[field_start..i]);
            field_start = i + 1;
        }
        i += 1;
    }
    if field_start < bytes.len() || !fields.is_empty() {
        fields.push(&bytes[field_start..]);
        records.push((start_line, fields));
    }
    records
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn to_raw_column(column: &Column) -> polars::error::PolarsResult<RawColumn> {
    let name = column.name().to_string();
    let dtype = column.dtype();
    let values = if dtype.is_primitive_numeric() || matches!(dtype, DataType::Boolean) {
        let cast = column.cast(&DataType::Float64)?;
        // Chunk by chunk from the value buffers and validity bits (polars' per-value
        // iterators are slow at the opt-level the build gives it).
        let mut values = Vec::with_capacity(cast.len());
        for array in cast.f64()?.downcast_iter() {
            let raw = array.values().as_slice();
            match array.validity() {
                None => values.extend(raw.iter().map(|&x| (!x.is_nan()).then_some(x))),
                Some(bits) => {
                    let (bytes, offset, _) = bits.as_slice();
                    values.extend(raw.iter().enumerate().map(|(i, &x)| {
                        let j = offset + i;
                        let valid = bytes[j / 8] >> (j % 8) & 1 == 1;
                        (valid && !x.is_nan()).then_some(x)
                    }));
                }
            }
        }
        ColumnValues::Numeric(values)
    } else if matches!(dtype, DataType::String) {
        dict_from_views(column.str()?)
    } else {
        let cast = column.cast(&DataType::String)?;
        ColumnValues::dict_from(cast.str()?.iter())
    };
    Ok(RawColumn { name, values })
}

/// A hasher for the 16-byte views of short strings: one multiply-xorshift per half.
#[derive(Default)]
struct ViewHasher(u64);

impl std::hash::Hasher for ViewHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, x: u128) {
        let mix = |h: u64| {
            let z = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z ^ (z >> 29)
        };
        self.0 = mix(mix(x as u64) ^ (x >> 64) as u64);
    }
}

/// [`ColumnValues::dict_from`] over polars' string views, the same levels in the same order:
/// a string of at most 12 bytes lives inside its 16-byte view (zero-padded), so the view
/// itself is the key and the bytes are not hashed.
fn dict_from_views(ca: &polars::prelude::StringChunked) -> ColumnValues {
    use std::collections::HashMap;
    let mut short: HashMap<u128, u32, std::hash::BuildHasherDefault<ViewHasher>> =
        HashMap::default();
    let mut long: HashMap<&str, u32, autodl_artifacts::table::FastHash> = HashMap::default();
    let mut levels: Vec<String> = Vec::new();
    let mut codes = Vec::with_capacity(ca.len());
    for array in ca.downcast_iter() {
        let validity = polars_arrow::array::Array::validity(array);
        for (i, view) in array.views().iter().enumerate() {
            if validity.is_some_and(|bits| !bits.get_bit(i)) {
                codes.push(autodl_artifacts::table::MISSING_CODE);
                continue;
            }
            let new_level = || {
                levels.push(array.value(i).to_string());
                (levels.len() - 1) as u32
            };
            let code = if view.length <= 12 {
                *short.entry(view.as_u128()).or_insert_with(new_level)
            } else {
                *long.entry(array.value(i)).or_insert_with(new_level)
            };
            codes.push(code);
        }
    }
    ColumnValues::Dict {
        levels: std::sync::Arc::new(levels),
        codes,
    }
}

fn to_polars_column(column: &RawColumn) -> Column {
    let name = PlSmallStr::from(column.name.as_str());
    match &column.values {
        ColumnValues::Numeric(v) => Column::new(name, v),
        ColumnValues::Text(v) => Column::new(name, v),
        ColumnValues::Dict { .. } => {
            let v: Vec<Option<&str>> = (0..column.values.len())
                .map(|i| match column.values.label_ref(i) {
                    Some(std::borrow::Cow::Borrowed(s)) => Some(s),
                    _ => None,
                })
                .collect();
            Column::new(name, v)
        }
    }
}

/// Writes `df` as Arrow IPC (`.arrow`, `.ipc`, `.feather`) or else Parquet, atomically.
fn write_frame(mut df: DataFrame, path: &Path) -> Result<()> {
    let ipc = matches!(extension_of(path).as_str(), "arrow" | "ipc" | "feather");
    let err = |message: String| DataError::Write {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let tmp = temporary_sibling(path);
    let file = std::fs::File::create(&tmp).map_err(|e| err(e.to_string()))?;
    if ipc {
        <IpcWriter<_> as SerWriter<_>>::new(file).finish(&mut df)
    } else {
        ParquetWriter::new(file).finish(&mut df).map(drop)
    }
    .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// Writes a raw table, atomically: Arrow IPC for `.arrow`, `.ipc` and `.feather` paths,
/// Parquet for any other.
pub fn write_table(table: &RawTable, path: &Path) -> Result<()> {
    let columns = table.columns.iter().map(to_polars_column).collect();
    let df = DataFrame::new(table.n_rows(), columns).map_err(|e| DataError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_frame(df, path)
}

/// Writes a transformed split as Parquet: one `f32` column per feature, then `target_column`.
pub fn write_matrix(
    x: &Matrix,
    y: &[f32],
    feature_names: &[String],
    target_column: &str,
    path: &Path,
) -> Result<()> {
    let mut columns: Vec<Column> = (0..x.n_cols)
        .map(|j| {
            let values: Vec<f32> = (0..x.n_rows).map(|i| x.data[i * x.n_cols + j]).collect();
            Column::new(PlSmallStr::from(feature_names[j].as_str()), values)
        })
        .collect();
    columns.push(Column::new(PlSmallStr::from(target_column), y.to_vec()));
    let df = DataFrame::new(x.n_rows, columns).map_err(|e| DataError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_frame(df, path)
}

/// Whether `path` has the extension of a table [`read_table`] reads.
pub(crate) fn is_table_file(path: &Path) -> bool {
    let extension = extension_of(path);
    TABLE_EXTENSIONS.contains(&extension.as_str())
}

/// Every extension [`read_table`] reads.
const TABLE_EXTENSIONS: [&str; 10] = [
    "csv", "tsv", "txt", "parquet", "pq", "arrow", "ipc", "feather", "jsonl", "ndjson",
];

/// Whether the table at `path` has a column `name`, reading as little as it can: the first
/// line of a text file; the whole file otherwise.
pub(crate) fn has_column(path: &Path, name: &str) -> bool {
    let extension = extension_of(path);
    if matches!(
        extension.as_str(),
        "csv" | "tsv" | "txt" | "jsonl" | "ndjson"
    ) {
        use std::io::BufRead;
        let Ok(file) = std::fs::File::open(path) else {
            return false;
        };
        let mut line = String::new();
        if std::io::BufReader::new(file).read_line(&mut line).is_err() {
            return false;
        }
        return line
            .split([',', ';', '\t', '|', '"', ':', '{', '}'])
            .any(|field| field.trim() == name);
    }
    read_table(path).is_ok_and(|t| t.column(name).is_some())
}

/// A path's extension, lower-cased ("" if none).
pub(crate) fn extension_of(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_views_give_the_same_dictionary_as_the_strings() {
        let values = [
            Some("a"),
            None,
            Some("twelve bytes"),
            Some("thirteen byte"),
            Some("a"),
            Some(""),
            Some("a much longer category label"),
            None,
            Some("thirteen byte"),
            Some("twelve bytes"),
            Some("a much longer category label"),
        ];
        let chunk = |v: &[Option<&str>]| Column::new("s".into(), v).str().unwrap().clone();
        let mut ca = chunk(&values[..6]);
        // A second chunk, as files read in row groups give.
        ca.append(&chunk(&values[6..])).unwrap();
        assert_eq!(ca.chunks().len(), 2);
        assert_eq!(
            dict_from_views(&ca),
            ColumnValues::dict_from(values.iter().copied())
        );
    }
}
