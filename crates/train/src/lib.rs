//! Training for recurrent: batches with carried state, optimizers, schedules, clipping and the trainer loop

pub mod asgd;
pub mod batch;
pub mod clip;
pub mod optim;
pub mod schedule;
pub mod seq2seq;
pub mod trainer;
