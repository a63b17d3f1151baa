//! `recurrent series`: RNN, LSTM or GRU regression on numeric sequences read
//! from CSV: `train`, `forecast` the next rows, `eval` against a
//! seasonal-naive baseline.

pub mod eval;
pub mod forecast;
pub mod train;

use anyhow::Result;
use clap::{Args, Subcommand};
use recurrent::series::SeriesError;

/// Arguments of `recurrent series`.
#[derive(Args, Debug)]
pub struct SeriesArgs {
    #[command(subcommand)]
    command: SeriesCommand,
}

#[derive(Subcommand, Debug)]
enum SeriesCommand {
    /// Train a regression model on windows of columns of a CSV file.
    Train(Box<train::TrainArgs>),
    /// Forecast the rows after the end of a CSV file, printed as CSV.
    Forecast(forecast::ForecastArgs),
    /// Score forecasts of the held-out tail: MSE, MAE and MASE against seasonal naive.
    Eval(eval::EvalArgs),
}

pub fn run(args: SeriesArgs) -> Result<()> {
    match args.command {
        SeriesCommand::Train(a) => train::run(*a),
        SeriesCommand::Forecast(a) => forecast::run(a),
        SeriesCommand::Eval(a) => eval::run(a),
    }
}

/// A series error in the command line's words: options by their flags.
pub fn series_error(e: SeriesError) -> anyhow::Error {
    match e {
        SeriesError::Library(e) => super::cli_error(e),
        SeriesError::BeyondHorizon { steps, horizon } => anyhow::anyhow!(
            "--steps {steps} is longer than the horizon of {horizon} the model was trained for; \
             use --method recursive, or train with --horizon {steps}"
        ),
        e => anyhow::Error::new(e),
    }
}
