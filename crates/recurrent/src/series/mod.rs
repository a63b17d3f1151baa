//! Numeric sequences: reading a series from CSV, training an RNN, LSTM or
//! GRU regression model on its windows ([`Training`]), and forecasting and
//! evaluating with it ([`SeriesCheckpoint`]: recursive and direct forecasts,
//! MSE, MAE and MASE against a seasonal-naive baseline).
//!
//! The model itself takes `[T, B, F]` arrays, for sequence-to-vector and
//! sequence-to-sequence regression of any data: [`SeriesModel`] (re-exported
//! from `recurrent-model`) with [`SeriesBatch`] and a [`RegressionLoss`].
//!
//! Sequence-to-sequence regression on arrays: a GRU learns to output the
//! running mean of its input, trained with Adam.
//!
//! ```
//! use recurrent::kernels::Rng;
//! use recurrent::series::{RegressionLoss, SeriesBatch, SeriesConfig, SeriesModel, SeriesOutput, SeriesWorkspace};
//! use recurrent::train::optim::Optimizer;
//! use recurrent::{CellKind, OptimizerConfig, OptimizerKind};
//!
//! let (t, b) = (10, 8); // x: [T, B, F] with F = 1, time-major
//! let mut rng = Rng::new(1);
//! let x: Vec<f32> = (0..t * b).map(|_| rng.uniform(-1.0, 1.0)).collect();
//! let mut target = vec![0.0; t * b]; // [T, B, O] with O = 1: the running mean
//! for j in 0..b {
//!     let mut sum = 0.0;
//!     for i in 0..t {
//!         sum += x[i * b + j];
//!         target[i * b + j] = sum / (i + 1) as f32;
//!     }
//! }
//! let config = SeriesConfig {
//!     cell: CellKind::Gru, inputs: 1, hidden: 16, layers: 1, outputs: 1,
//!     output: SeriesOutput::Every,
//! };
//! let mut model = SeriesModel::new(config, &mut rng)?;
//! let mut optimizer = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), model.num_params());
//! let mut ws = SeriesWorkspace::default();
//! let batch = SeriesBatch { x: &x, steps: t, batch: b, target: &target, weights: None };
//! let first = model.loss(&mut ws, &batch, RegressionLoss::Mse)?;
//! for _ in 0..100 {
//!     let mut grads = vec![0.0; model.num_params()];
//!     model.loss_and_grad(&mut ws, &batch, RegressionLoss::Mse, &mut grads)?;
//!     optimizer.step(&mut model.params, &grads, 1e-2);
//! }
//! let last = model.loss(&mut ws, &batch, RegressionLoss::Mse)?;
//! assert!(last < 0.2 * first, "{first} -> {last}");
//! let y = model.predict(&mut ws, &x, t, b)?; // [T, B, 1]
//! assert_eq!(y.len(), t * b);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod csv;
mod error;
mod training;

pub use self::csv::{parse_csv, read_csv, Table};
pub use checkpoint::{
    EvaluateOptions, Forecast, ForecastMethod, Scores, SeriesCheckpoint, SeriesEvaluation,
    MAX_FORECAST_STEPS,
};
pub use error::SeriesError;
pub use recurrent_checkpoint::series::{SeriesInfo, SplitRows};
pub use recurrent_model::series::{
    SeriesBatch, SeriesConfig, SeriesModel, SeriesOutput, SeriesWorkspace,
};
pub use recurrent_nn::regression::RegressionLoss;
pub use recurrent_train::series::SeriesTrainer;
pub use training::{ResumeOptions, TrainOptions, Training};
