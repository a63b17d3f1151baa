//! Training for recurrent: batches with carried state, optimizers, schedules, clipping and the trainer loop
