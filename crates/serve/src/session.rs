//! One request's streams on an engine, seen from async code, and the limit
//! on requests served at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use recurrent::{Cancel, StreamEvent, StreamRequest};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout_at;

use crate::error::ApiError;
use crate::{App, LanguageModel};

/// At most `max_concurrent` requests run; up to `max_queue` more wait.
pub struct Limiter {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_queue: usize,
    waiting: AtomicUsize,
}

/// Undoes a count when dropped, however the wait ended.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limiter {
    /// A limiter for `max_concurrent` running and `max_queue` waiting requests.
    pub fn new(max_concurrent: usize, max_queue: usize) -> Limiter {
        let max_concurrent = max_concurrent.max(1);
        Limiter {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// A slot to run in: at once, after waiting in the queue, or
    /// [`ApiError::Busy`] when the queue is full too.
    pub async fn acquire(
        &self,
        deadline: Instant,
        app: &App,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::Busy {
                limit: self.max_concurrent,
            });
        }
        let _waiting = Waiting(&self.waiting);
        match timeout_at(deadline.into(), self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ApiError::ShuttingDown),
            Err(_) => Err(timeout(app)),
        }
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests holding a slot.
    pub fn running(&self) -> usize {
        self.max_concurrent - self.slots.available_permits()
    }
}

/// Runs `work` on a blocking thread in one of `app`'s slots (compute that
/// is not an engine stream: translation, inspection), within the request's
/// time limit counted from `arrived`.
pub async fn run_blocking<T: Send + 'static>(
    app: &App,
    arrived: Instant,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let deadline = arrived + app.options.request_timeout;
    let _slot = app.limiter.acquire(deadline, app).await?;
    let task = tokio::task::spawn_blocking(work);
    timeout_at(deadline.into(), task)
        .await
        .map_err(|_| timeout(app))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The timeout error of `app`'s limit.
pub fn timeout(app: &App) -> ApiError {
    ApiError::Timeout {
        seconds: app.options.request_timeout.as_secs_f64(),
    }
}

/// A request's streams (its choices) running on an engine. Dropping it
/// cancels them, so a client that goes away stops its generation.
pub struct Running {
    events: mpsc::UnboundedReceiver<(usize, StreamEvent)>,
    cancels: Vec<Cancel>,
    _slot: OwnedSemaphorePermit,
    arrived: Instant,
    deadline: Instant,
    /// When each choice last produced a token (`None` before its first).
    last_token: Vec<Option<Instant>>,
}

impl Running {
    /// Submits `requests` (choice `i` is `requests[i]`).
    pub fn start(
        model: &LanguageModel,
        requests: Vec<StreamRequest>,
        slot: OwnedSemaphorePermit,
        arrived: Instant,
        deadline: Instant,
    ) -> Result<Running, ApiError> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut running = Running {
            events,
            cancels: Vec::new(),
            _slot: slot,
            arrived,
            deadline,
            last_token: vec![None; requests.len()],
        };
        for (i, request) in requests.into_iter().enumerate() {
            let tx = tx.clone();
            let sink = Box::new(move |event| tx.send((i, event)).is_ok());
            let cancel = model.engine.submit(request, sink).map_err(|e| match e {
                recurrent::StreamError::Closed => ApiError::ShuttingDown,
                e => ApiError::Invalid {
                    param: None,
                    message: e.to_string(),
                },
            })?;
            running.cancels.push(cancel);
        }
        Ok(running)
    }

    /// When the request must be done.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next event of any choice, recording token latencies in `app`'s
    /// metrics; `None` when every choice has finished.
    pub async fn next(&mut self, app: &App) -> Result<Option<(usize, StreamEvent)>, ApiError> {
        match timeout_at(self.deadline.into(), self.events.recv()).await {
            Err(_) => Err(timeout(app)),
            Ok(None) => Ok(None),
            Ok(Some((i, event))) => Ok(Some(self.record(app, i, event))),
        }
    }

    /// The next event if one is already here.
    pub fn try_next(&mut self, app: &App) -> Option<(usize, StreamEvent)> {
        let (i, event) = self.events.try_recv().ok()?;
        Some(self.record(app, i, event))
    }

    /// Records a token's latency.
    fn record(&mut self, app: &App, i: usize, event: StreamEvent) -> (usize, StreamEvent) {
        if let StreamEvent::Token { .. } = event {
            let now = Instant::now();
            match self.last_token[i] {
                None => app.metrics.first_token(now - self.arrived),
                Some(t) => app.metrics.next_token(now - t),
            }
            self.last_token[i] = Some(now);
        }
        (i, event)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &self.cancels {
            c.cancel();
        }
    }
}
