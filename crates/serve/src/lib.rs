//! `recurrent serve`, as a library: an HTTP server that speaks OpenAI's
//! completions API over recurrent language models, stepping every active
//! request as one batch (continuous batching, [`recurrent::StreamEngine`]).
//!
//! - [`api`]: the request and response types (serde);
//! - [`error`]: every error a client can get and its status code;
//! - `routes`: the endpoints (`/v1/models`, `/v1/score`, `/v1/translate`,
//!   `/health`, `/metrics`) behind the API key check;
//! - `playground`: the web page at `/` and `/v1/inspect`, which it draws;
//! - `generation`: `/v1/completions` and `/v1/chat/completions`;
//! - `sse`: their streams as Server-Sent Events;
//! - `session`: one request's streams on an engine, and the concurrency limit;
//! - [`metrics`]: Prometheus counters and latency histograms.
//!
//! The compute runs on each model's engine thread (with the kernels'
//! threads); tokio, on a few threads, only moves bytes.
//!
//! ```no_run
//! use recurrent_serve::{ModelSource, ServeOptions, Server};
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let server = Server::bind(ServeOptions::default()).await?;
//!     println!("listening on http://{}", server.local_addr());
//!     server.load(vec!["runs/novel".parse::<ModelSource>()?]).await?;
//!     server.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod error;
mod generation;
pub mod metrics;
mod playground;
mod routes;
mod session;
mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::serve::ListenerExt;
use recurrent::{
    start_streams, AnyCheckpoint, LanguageCheckpoint, Seq2SeqCheckpoint, StreamEngine,
    StreamOptions, Tokenizer, WeightFormat,
};
use tokio::net::TcpListener;

use crate::metrics::{Gauges, Metrics};
use crate::session::Limiter;

/// How the server runs and what it allows.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Bearer token every request but `/health` must send.
    pub api_key: Option<String>,
    /// Requests served at once; more wait in the queue.
    pub max_concurrent: usize,
    /// Requests waiting for a slot; more are answered 429.
    pub max_queue: usize,
    /// Most tokens one completion may ask for.
    pub max_tokens: usize,
    /// Most completions one request may ask for (`n` times prompts).
    pub max_choices: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, waiting included.
    pub request_timeout: Duration,
    /// Kernel threads per model (default: all cores).
    pub threads: Option<usize>,
    /// Most streams stepped together per model.
    pub max_batch: usize,
    /// Weight storage of the language models.
    pub weights: WeightFormat,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            max_concurrent: 64,
            max_queue: 256,
            max_tokens: 4096,
            max_choices: 16,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(300),
            threads: None,
            max_batch: 64,
            weights: WeightFormat::F32,
        }
    }
}

/// A checkpoint to serve and the name requests use for it: `PATH` (named
/// after its folder) or `NAME=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSource {
    /// The name in requests' `model` field.
    pub name: String,
    /// The checkpoint or run folder.
    pub path: PathBuf,
}

impl ModelSource {
    /// `path` under its folder's name (a run folder's `best/` or `last/` under the run's).
    pub fn from_path(path: impl Into<PathBuf>) -> ModelSource {
        let path = path.into();
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let mut name = folder_name(&absolute);
        if matches!(name.as_str(), "best" | "last") {
            name = absolute.parent().map(folder_name).unwrap_or(name);
        }
        ModelSource { name, path }
    }
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

impl FromStr for ModelSource {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<ModelSource, ServeError> {
        match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains(['/', '\\']) => {
                if path.is_empty() {
                    return Err(ServeError::EmptyPath { name: name.into() });
                }
                Ok(ModelSource {
                    name: name.into(),
                    path: path.into(),
                })
            }
            _ => Ok(ModelSource::from_path(s)),
        }
    }
}

/// Why the server could not start or load its models.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// A checkpoint could not be loaded.
    #[error("cannot load model '{name}' from {}: {source}", path.display())]
    Load {
        /// Its name.
        name: String,
        /// Its folder.
        path: PathBuf,
        /// Why.
        source: Box<recurrent::Error>,
    },
    /// Two checkpoints were given the same name.
    #[error("two models are named '{name}' (name them with NAME=PATH)")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// `NAME=` with no path.
    #[error("model '{name}' has an empty path")]
    EmptyPath {
        /// The name.
        name: String,
    },
    /// No checkpoint was given.
    #[error("no model to serve")]
    NoModels,
    /// The loading task failed.
    #[error("loading was interrupted: {0}")]
    Interrupted(String),
}

/// A language model on its engine.
pub(crate) struct LanguageModel {
    pub engine: StreamEngine,
    /// The loaded model, for `/v1/inspect` (the engine steps its own packed copy).
    pub checkpoint: LanguageCheckpoint,
}

impl LanguageModel {
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.checkpoint.tokenizer
    }
}

/// What a served name stands for.
pub(crate) enum Kind {
    Language(Box<LanguageModel>),
    Seq2Seq(Box<Seq2SeqCheckpoint>),
}

/// A model under its name.
pub(crate) struct Served {
    pub name: String,
    pub created: u64,
    pub kind: Kind,
}

impl Served {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Language(_) => "language",
            Kind::Seq2Seq(_) => "seq2seq",
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub options: ServeOptions,
    pub models: OnceLock<Vec<Arc<Served>>>,
    pub limiter: Limiter,
    pub metrics: Metrics,
    pub shutting_down: AtomicBool,
    next_id: AtomicU64,
}

impl App {
    /// A fresh response id with `prefix`.
    pub fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:x}{n:06x}", unix_secs())
    }

    /// A number that differs between calls, to vary unseeded requests.
    pub fn next_seed(&self) -> u64 {
        self.next_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The gauges for `/metrics`.
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            queued: self.limiter.waiting(),
            running: self.limiter.running(),
            ..Gauges::default()
        };
        for m in self.models.get().into_iter().flatten() {
            if let Kind::Language(lm) = &m.kind {
                let s = lm.engine.stats();
                g.tokens += s.tokens.load(Ordering::Relaxed);
                g.queued += s.waiting.load(Ordering::Relaxed);
                g.active += s.active.load(Ordering::Relaxed);
            }
        }
        g
    }

    /// Cancels every stream and refuses new requests.
    fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for m in self.models.get().into_iter().flatten() {
            if let Kind::Language(lm) = &m.kind {
                lm.engine.shutdown();
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A bound server: answers `/health` with 503 until [`Server::load`] is done.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Binds `options.addr`.
    pub async fn bind(options: ServeOptions) -> Result<Server, ServeError> {
        let addr = options.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let app = Arc::new(App {
            limiter: Limiter::new(options.max_concurrent, options.max_queue),
            options,
            models: OnceLock::new(),
            metrics: Metrics::default(),
            shutting_down: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        });
        Ok(Server { listener, app })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Loads and packs the checkpoints (on a blocking thread), then serves them.
    pub async fn load(&self, sources: Vec<ModelSource>) -> Result<(), ServeError> {
        self.loader().load(sources).await
    }

    /// The endpoints as an axum `Router`: to mount them inside another axum
    /// application, or to call them in-process (the fuzz target does).
    /// Models load through [`Server::loader`], as with [`Server::run`].
    pub fn router(&self) -> axum::Router {
        routes::router(self.app.clone())
    }

    /// What loads the models once [`Server::run`] has taken the server.
    pub fn loader(&self) -> Loader {
        Loader(self.app.clone())
    }

    /// Serves until `shutdown` completes, then cancels the streams still
    /// running and returns once every connection has closed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = self.app.clone();
        let router = routes::router(self.app);
        // Streams send one small chunk per token: without TCP_NODELAY, Nagle's
        // algorithm holds a chunk back until the client's delayed ACK (~40 ms).
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Joining the engine threads blocks; not on a runtime thread.
                let _ = tokio::task::spawn_blocking(move || app.shut_down()).await;
            })
            .await?;
        Ok(())
    }
}

/// Loads every source, refusing duplicate names.
fn load_models(
    options: &ServeOptions,
    sources: Vec<ModelSource>,
) -> Result<Vec<Arc<Served>>, ServeError> {
    if sources.is_empty() {
        return Err(ServeError::NoModels);
    }
    let mut models: Vec<Arc<Served>> = Vec::new();
    for source in sources {
        if models.iter().any(|m| m.name == source.name) {
            return Err(ServeError::DuplicateName { name: source.name });
        }
        let fail = |e: recurrent::Error| ServeError::Load {
            name: source.name.clone(),
            path: source.path.clone(),
            source: Box::new(e),
        };
        let kind = match AnyCheckpoint::load(&source.path).map_err(fail)? {
            AnyCheckpoint::Language(checkpoint) => {
                let stream_options = StreamOptions {
                    weights: options.weights,
                    threads: options.threads,
                    max_batch: options.max_batch,
                };
                let engine = start_streams(&checkpoint, stream_options).map_err(fail)?;
                Kind::Language(Box::new(LanguageModel {
                    engine,
                    checkpoint: *checkpoint,
                }))
            }
            AnyCheckpoint::Seq2Seq(checkpoint) => Kind::Seq2Seq(checkpoint),
        };
        models.push(Arc::new(Served {
            name: source.name,
            created: unix_secs(),
            kind,
        }));
    }
    Ok(models)
}

/// Binds, calls `announce` with the address, loads `sources`, and serves
/// until SIGTERM or Ctrl-C, on a small tokio runtime of its own.
pub fn serve_until_signal(
    options: ServeOptions,
    sources: Vec<ModelSource>,
    announce: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind(options).await?;
        announce(server.local_addr());
        let (app, loader) = (server.app.clone(), server.loader());
        let serving = tokio::spawn(server.run(shutdown_signal()));
        let loaded = loader.load(sources).await;
        if let Err(e) = loaded {
            app.shut_down();
            serving.abort();
            return Err(e);
        }
        serving
            .await
            .map_err(|e| ServeError::Interrupted(e.to_string()))?
    })
}

/// Loads a server's models, before or while it runs.
#[derive(Clone)]
pub struct Loader(Arc<App>);

impl Loader {
    /// Loads and packs the checkpoints (on a blocking thread); `/health`
    /// answers 200 from then on. Loading happens once: later calls keep the
    /// first models.
    pub async fn load(&self, sources: Vec<ModelSource>) -> Result<(), ServeError> {
        let app = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let models = load_models(&app.options, sources)?;
            let _ = app.models.set(models);
            Ok(())
        })
        .await
        .map_err(|e| ServeError::Interrupted(e.to_string()))?
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
