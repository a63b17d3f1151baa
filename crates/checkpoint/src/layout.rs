//! File and folder names inside checkpoint and run folders, in one place so the
//! trainer, the generator and the error messages all agree.

/// Model architecture and tokenizer kind, pretty-printed JSON.
pub const CONFIG_FILE: &str = "config.json";
/// Model weights, safetensors with F32 tensors.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Vocabulary: a JSON array of token strings in id order.
pub const VOCAB_FILE: &str = "vocab.json";
/// Optimizer state (e.g. Adam moments), present only in resumable checkpoints.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Trainer progress (step, epoch, RNG, ...), present only in resumable checkpoints.
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
/// The subword tokenizer, in the Hugging Face `tokenizers` JSON format (BPE models only).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Seq2seq models with separate vocabularies: the target side's vocabulary
/// (`vocab.json` then holds the source side's).
pub const TARGET_VOCAB_FILE: &str = "target_vocab.json";
/// Seq2seq models with a separate BPE target tokenizer.
pub const TARGET_TOKENIZER_FILE: &str = "target_tokenizer.json";
/// One JSON object per line of training/validation metrics, in the run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Run subfolder holding the checkpoint with the best validation loss.
pub const BEST_DIR: &str = "best";
/// Run subfolder holding the most recent checkpoint.
pub const LAST_DIR: &str = "last";
/// The run folder's lock file, holding the process id of the run training into it.
pub const LOCK_FILE: &str = "run.lock";

/// Files every checkpoint folder must contain.
pub const REQUIRED_FILES: [&str; 3] = [CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE];
