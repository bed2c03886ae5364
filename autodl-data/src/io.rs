//! Reading tables with polars into plain columns, and writing Parquet.

use std::path::Path;

use autodl_artifacts::io::temporary_sibling;
use autodl_artifacts::table::{ColumnValues, Matrix, RawColumn, RawTable};
use polars::prelude::{
    Column, CsvParseOptions, CsvReadOptions, DataFrame, DataType, NullValues, ParquetReader,
    ParquetWriter, PlSmallStr, SerReader,
};

use crate::{DataError, Result};

/// Strings read as missing in CSV files, besides the empty field.
const NULL_SPELLINGS: [&str; 6] = ["", "NA", "N/A", "NaN", "null", "NULL"];

/// Reads a CSV (`.csv`, `.tsv`, `.txt`) or Parquet (`.parquet`, `.pq`) file.
///
/// Numbers and booleans become [`ColumnValues::Numeric`] (NaN counts as missing), everything
/// else [`ColumnValues::Text`]. A missing file, an unknown extension, a malformed file and a file
/// without data rows are errors that say so.
pub fn read_table(path: &Path) -> Result<RawTable> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(DataError::NotFound { path: shown });
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let read_err = |e: polars::error::PolarsError| DataError::Read {
        path: shown.clone(),
        message: first_line(&e.to_string()),
    };
    let df = match extension.as_str() {
        "csv" | "tsv" | "txt" => {
            if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(DataError::Empty { path: shown });
            }
            let separator = if extension == "tsv" { b'\t' } else { b',' };
            let nulls = NullValues::AllColumns(
                NULL_SPELLINGS
                    .iter()
                    .map(|s| PlSmallStr::from(*s))
                    .collect(),
            );
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(10_000))
                .with_parse_options(
                    CsvParseOptions::default()
                        .with_separator(separator)
                        .with_null_values(Some(nulls))
                        .with_missing_is_null(true),
                )
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .map_err(read_err)?
                .finish()
                .map_err(read_err)?
        }
        "parquet" | "pq" => {
            let file = std::fs::File::open(path).map_err(|e| DataError::Read {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            ParquetReader::new(file).finish().map_err(read_err)?
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
    let columns = df
        .columns()
        .iter()
        .map(|c| to_raw_column(c).map_err(read_err))
        .collect::<Result<Vec<_>>>()?;
    Ok(RawTable { columns })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn to_raw_column(column: &Column) -> polars::error::PolarsResult<RawColumn> {
    let name = column.name().to_string();
    let dtype = column.dtype();
    let values = if dtype.is_primitive_numeric() || matches!(dtype, DataType::Boolean) {
        let cast = column.cast(&DataType::Float64)?;
        ColumnValues::Numeric(
            cast.f64()?
                .iter()
                .map(|v| v.filter(|x| !x.is_nan()))
                .collect(),
        )
    } else if matches!(dtype, DataType::String) {
        ColumnValues::Text(
            column
                .str()?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect(),
        )
    } else {
        let cast = column.cast(&DataType::String)?;
        ColumnValues::Text(cast.str()?.iter().map(|v| v.map(str::to_string)).collect())
    };
    Ok(RawColumn { name, values })
}

fn to_polars_column(column: &RawColumn) -> Column {
    let name = PlSmallStr::from(column.name.as_str());
    match &column.values {
        ColumnValues::Numeric(v) => Column::new(name, v),
        ColumnValues::Text(v) => Column::new(name, v),
    }
}

fn write_parquet(mut df: DataFrame, path: &Path) -> Result<()> {
    let err = |message: String| DataError::Write {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let tmp = temporary_sibling(path);
    let file = std::fs::File::create(&tmp).map_err(|e| err(e.to_string()))?;
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// Writes a raw table as Parquet, atomically.
pub fn write_table(table: &RawTable, path: &Path) -> Result<()> {
    let columns = table.columns.iter().map(to_polars_column).collect();
    let df = DataFrame::new(table.n_rows(), columns).map_err(|e| DataError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_parquet(df, path)
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
    write_parquet(df, path)
}
