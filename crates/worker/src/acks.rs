//! Completions batched: runs that end while a `complete` call is in flight are sent
//! together in the next one (one script call for all of them, as a database's group
//! commit), so a busy worker completes tens of tasks per round trip and an idle one
//! completes each at once.

use switchyard_scheduler::{CompleteOutcome, Completion, Scheduler};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// Most completions per call (the scheduler splits larger batches anyway).
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<CompleteOutcome, Completion>>;

/// The sending side; the batching task ends when every sender is gone.
pub(crate) struct Acks {
    tx: mpsc::UnboundedSender<(Completion, Reply)>,
}

impl Acks {
    /// Start the batching task (inside a Tokio runtime).
    pub(crate) fn start(sched: Scheduler) -> Acks {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(flush_loop(sched, rx));
        Acks { tx }
    }

    /// Complete `done` in the next batch. A batch whose call fails hands each of its
    /// completions back (`Err`), for its run to record on its own terms (retried through
    /// an outage while its lease lasts).
    pub(crate) async fn complete(&self, done: Completion) -> Result<CompleteOutcome, Completion> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((done, _))) = self.tx.send((done, reply)) {
            return Err(done);
        }
        // A dropped reply means the batching task is gone: the completion went with it,
        // so the caller cannot retry it; the lease expiring requeues the task.
        answer.await.unwrap_or(Ok(CompleteOutcome::Stale))
    }
}

async fn flush_loop(sched: Scheduler, mut rx: mpsc::UnboundedReceiver<(Completion, Reply)>) {
    let mut batch: Vec<(Completion, Reply)> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (done, replies): (Vec<Completion>, Vec<Reply>) = batch.drain(..).unzip();
        match sched.complete_all(&done).await {
            Ok(outcomes) => {
                for (reply, o) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(o));
                }
            }
            Err(e) => {
                debug!(error = %e, count = done.len(), "a batch of completions failed; each run records its own");
                for (reply, d) in replies.into_iter().zip(done) {
                    let _ = reply.send(Err(d));
                }
            }
        }
    }
}
