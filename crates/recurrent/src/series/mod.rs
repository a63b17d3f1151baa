//! Numeric sequences: reading a series from CSV, training an RNN, LSTM or
//! GRU regression model on its windows, and forecasting and evaluating with
//! it.

mod csv;
mod error;

pub use self::csv::{parse_csv, read_csv, Table};
pub use error::SeriesError;
