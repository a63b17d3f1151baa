//! Checkpoint folders for recurrent: safetensors weights, JSON config and vocabulary, atomic writes, resume state
