//! Reading a numeric series from a CSV file: a header naming the columns,
//! then one row per time step, oldest first.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::SeriesError;

/// Columns of a CSV file as numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The columns read, in the order asked for.
    pub columns: Vec<String>,
    /// The values, `[rows, columns]` row-major.
    pub values: Vec<f32>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    /// Column `name`'s index, if it is one.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Column `index`'s values, oldest first.
    pub fn column(&self, index: usize) -> Vec<f32> {
        let f = self.columns.len();
        self.values.iter().skip(index).step_by(f).copied().collect()
    }
}

/// Reads `columns` (every column when empty) of the CSV file at `path`.
pub fn read_csv(path: &Path, columns: &[String]) -> Result<Table, SeriesError> {
    let file = std::fs::File::open(path).map_err(|e| SeriesError::Csv {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    parse_csv(path, file, columns)
}

/// Reads `columns` (every column when empty) of CSV text from `reader`;
/// `path` names it in errors. Cells may have surrounding spaces; an empty or
/// non-numeric cell is an error naming its line and column.
pub fn parse_csv(path: &Path, reader: impl Read, columns: &[String]) -> Result<Table, SeriesError> {
    let csv_error = |source: csv::Error| SeriesError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header: Vec<String> = rdr
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(str::to_string)
        .collect();
    let wanted: Vec<String> = if columns.is_empty() {
        header.clone()
    } else {
        columns.to_vec()
    };
    let indices = wanted
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| SeriesError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                    available: header.clone(),
                })
        })
        .collect::<Result<Vec<usize>, SeriesError>>()?;
    let mut values = Vec::new();
    for record in rdr.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        for (&i, name) in indices.iter().zip(&wanted) {
            let cell = record.get(i).unwrap_or("");
            let value = cell
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| SeriesError::NotNumeric {
                    path: path.to_path_buf(),
                    line,
                    column: name.clone(),
                    value: cell.to_string(),
                })?;
            values.push(value);
        }
    }
    if values.is_empty() {
        return Err(SeriesError::Empty {
            path: PathBuf::from(path),
        });
    }
    Ok(Table {
        columns: wanted,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, columns: &[&str]) -> Result<Table, SeriesError> {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        parse_csv(Path::new("data.csv"), text.as_bytes(), &columns)
    }

    #[test]
    fn columns_are_read_in_the_order_asked_for() {
        let t = parse("date,a,b\n2020,1,2.5\n2021, 3 ,-4e1\n", &["b", "a"]).unwrap();
        assert_eq!(t.columns, ["b", "a"]);
        assert_eq!(t.values, [2.5, 1.0, -40.0, 3.0]);
        assert_eq!((t.rows(), t.column(1)), (2, vec![1.0, 3.0]));
        let all = parse("a,b\n1,2\n", &[]).unwrap();
        assert_eq!(all.columns, ["a", "b"]);
    }

    #[test]
    fn errors_name_the_file_line_column_and_value() {
        let err = parse("a,b\n1,2\n", &["c"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.csv has no column 'c' (its columns: a, b)"
        );
        let err = parse("a,b\n1,2\n3,x\n", &["a", "b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.csv line 3, column 'b': 'x' is not a number"
        );
        let err = parse("a,b\n1,\n", &["b"]).unwrap_err();
        assert!(err.to_string().contains("'' is not a number"), "{err}");
        let err = parse("a,b\n", &["a"]).unwrap_err();
        assert!(err.to_string().contains("no data rows"), "{err}");
        let err = parse("a,b\n1,2\n3\n", &["a"]).unwrap_err();
        assert!(err.to_string().starts_with("cannot read data.csv"), "{err}");
        let err = parse("a\nNaN\n", &["a"]).unwrap_err();
        assert!(err.to_string().contains("'NaN' is not a number"), "{err}");
    }
}
