//! The inference thread and the queue in front of it: requests that arrive
//! together are run through the model as one batch.
//!
//! # Batching rule
//! The thread blocks until a request is queued, then keeps taking queued requests
//! into the same batch until either
//! - the batch holds `max_batch` rows (a request that would take it past
//!   `max_batch` waits for the next batch, unless the batch is empty: a request
//!   larger than `max_batch` forms a batch of its own and is run `max_batch` rows
//!   per forward pass), or
//! - `batch_wait` has passed since the thread took the batch's first request and
//!   no further request is queued.
//!
//! With `batch_wait = 0` (the default) the thread never waits: it takes what
//! queued up while the previous batch ran, so a lone request is answered at once and
//! batches grow only under load. A positive `batch_wait` adds at most that much
//! latency to a request (plus the time of the batch it joins) in exchange for
//! larger batches at moderate load. `max_batch = 1` turns batching off.
//!
//! The queue is bounded (`max_queue` requests); a request that finds it full is
//! answered 503 at once rather than waiting without bound.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nn_tensor::Tensor;
use tokio::sync::oneshot;

use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::model::ModelService;

/// What the model answered for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutput {
    /// Outputs, `rows × outputs` values row after row.
    pub outputs: Vec<f32>,
    /// Each row's largest-output class.
    pub classes: Vec<usize>,
}

/// One request waiting for the model.
pub(crate) struct Job {
    pub rows: usize,
    pub values: Vec<f32>,
    pub reply: oneshot::Sender<Result<BatchOutput, ApiError>>,
}

enum Msg {
    Job(Job),
    /// Finish what was taken, then end the thread.
    Stop,
}

/// The batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    pub max_batch: usize,
    pub batch_wait: Duration,
    pub max_queue: usize,
}

/// The sending side, shared by the handlers.
#[derive(Debug, Clone)]
pub(crate) struct BatcherHandle {
    tx: SyncSender<Msg>,
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Job(j) => write!(f, "Job({} rows)", j.rows),
            Msg::Stop => write!(f, "Stop"),
        }
    }
}

impl BatcherHandle {
    /// Queues a job without waiting.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] when the queue is full or the thread has stopped.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(Msg::Job(job)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => {
                        ApiError::Unavailable("server busy: the request queue is full, retry later".into())
                    }
                    TrySendError::Disconnected(_) => ApiError::Unavailable("the server is shutting down".into()),
                })
            }
        }
    }

    /// Requests queued and not yet taken by the inference thread.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Asks the thread to stop after the jobs queued before this call (blocks while
    /// the queue is full).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// Starts the inference thread.
///
/// # Errors
/// [`ServeError::Io`] when the thread cannot be spawned.
pub(crate) fn start(
    service: Arc<ModelService>,
    metrics: Arc<Metrics>,
    settings: BatchSettings,
) -> Result<(BatcherHandle, JoinHandle<()>), ServeError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.max_queue);
    let queued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&queued);
    let thread = std::thread::Builder::new()
        .name("nn-serve-inference".into())
        .spawn(move || run(&service, &metrics, &rx, &counter, settings))
        .map_err(|e| ServeError::io("starting the inference thread", e))?;
    Ok((BatcherHandle { tx, queued }, thread))
}

fn run(service: &ModelService, metrics: &Metrics, rx: &Receiver<Msg>, queued: &AtomicUsize, s: BatchSettings) {
    let take = |m: Msg| -> Option<Job> {
        match m {
            Msg::Job(j) => {
                queued.fetch_sub(1, Ordering::SeqCst);
                Some(j)
            }
            Msg::Stop => None,
        }
    };
    let mut carried: Option<Job> = None;
    let mut stopping = false;
    loop {
        let first = match carried.take() {
            Some(j) => j,
            None if stopping => return,
            None => match rx.recv().ok().and_then(take) {
                Some(j) => j,
                None => return,
            },
        };
        let deadline = Instant::now() + s.batch_wait;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < s.max_batch && !stopping {
            let now = Instant::now();
            let next = if now >= deadline {
                rx.try_recv().ok()
            } else {
                // Timed out, or every sender is gone: the batch is complete.
                rx.recv_timeout(deadline - now).ok()
            };
            let Some(msg) = next else { break };
            match take(msg) {
                None => stopping = true,
                Some(j) if rows + j.rows > s.max_batch => {
                    carried = Some(j);
                    break;
                }
                Some(j) => {
                    rows += j.rows;
                    jobs.push(j);
                }
            }
        }
        run_batch(service, metrics, jobs, s.max_batch);
    }
}

/// Runs one batch and answers each job. A client that went away is skipped.
fn run_batch(service: &ModelService, metrics: &Metrics, jobs: Vec<Job>, max_batch: usize) {
    let started = Instant::now();
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    if rows == 0 {
        return;
    }
    let mut shape = vec![rows];
    shape.extend_from_slice(service.model().input_shape());
    let mut values = Vec::with_capacity(rows * service.info().features);
    for j in &jobs {
        values.extend_from_slice(&j.values);
    }
    // The handlers validated every row, so a failure here is a bug: the jobs are
    // answered 500 and the thread goes on serving (a panic is caught for the same
    // reason).
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let x = Tensor::try_from_vec(&shape, values).map_err(|e| e.to_string())?;
        service.forward(&x, max_batch)
    }));
    let (outputs, classes) = match result {
        Ok(Ok((outputs, classes))) => (outputs.to_vec(), classes),
        Ok(Err(message)) => return fail_all(jobs, &message),
        Err(_) => return fail_all(jobs, "the model panicked on this batch"),
    };
    // Recorded before the answers go out, so a client that reads /metrics after its
    // answer sees its batch counted.
    metrics.record_batch(rows, jobs.len(), started.elapsed());
    let k = service.info().outputs;
    let mut at = 0;
    for j in jobs {
        let out = BatchOutput {
            outputs: outputs[at * k..(at + j.rows) * k].to_vec(),
            classes: classes[at..at + j.rows].to_vec(),
        };
        at += j.rows;
        let _ = j.reply.send(Ok(out));
    }
}

fn fail_all(jobs: Vec<Job>, message: &str) {
    for j in jobs {
        let _ = j.reply.send(Err(ApiError::Internal(format!("inference failed: {message}"))));
    }
}
