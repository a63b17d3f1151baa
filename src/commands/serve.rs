//! `recurrent serve`: serve checkpoints over an OpenAI-compatible HTTP API,
//! batching concurrent requests into one step.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use recurrent_serve::{ModelSource, ServeError, ServeOptions};

/// Arguments of `recurrent serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoints or run folders to serve, each as PATH (named after its
    /// folder) or NAME=PATH.
    #[arg(required = true)]
    checkpoints: Vec<ModelSource>,
    /// Address to listen on (another than 127.0.0.1 exposes the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Threads for each model's kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Require `Authorization: Bearer KEY` on every request but /health.
    #[arg(long)]
    api_key: Option<String>,
    /// Requests served at once; more wait in a queue.
    #[arg(long, default_value_t = 64)]
    max_concurrent: usize,
    /// Requests waiting for a slot; more are refused with 429.
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
    /// Most tokens one completion may ask for.
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Most streams stepped together per model.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Longest a request may take, in seconds (queueing included).
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// How to hold the weights: bf16 is faster for a few streams.
    #[arg(long, value_enum, default_value_t)]
    weights: super::Weights,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.max_concurrent == 0 || args.max_batch == 0 {
        bail!("--max-concurrent and --max-batch must be at least 1");
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        );
    }
    let options = ServeOptions {
        addr: SocketAddr::new(args.host, args.port),
        api_key: args.api_key,
        max_concurrent: args.max_concurrent,
        max_queue: args.max_queue,
        max_tokens: args.max_tokens,
        max_body_bytes: args.max_body,
        request_timeout: Duration::from_secs_f64(args.timeout),
        threads: args.threads,
        max_batch: args.max_batch,
        weights: args.weights.into(),
        ..ServeOptions::default()
    };
    let names: Vec<String> = args.checkpoints.iter().map(|s| s.name.clone()).collect();
    let served = recurrent_serve::serve_until_signal(options, args.checkpoints, |addr| {
        eprintln!("loading {} ...", names.join(", "));
        println!("serving on http://{addr}/v1 (Ctrl-C to stop)");
    });
    match served {
        Ok(()) => {
            eprintln!("stopped");
            Ok(())
        }
        Err(ServeError::Load { name, path, source }) => Err(anyhow::anyhow!(
            "cannot load model '{name}' from {}: {}",
            path.display(),
            super::cli_error(*source)
        )),
        Err(e) => Err(e.into()),
    }
}
