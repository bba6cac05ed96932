//! The server's access to the store: reads on pooled read-only connections
//! that never wait for a writer, and writes through one writer thread that
//! commits whatever writes are waiting together, in one transaction and
//! one fsync (group commit). Every write is answered only after the commit
//! that holds it, so an acknowledged write is still durable.

use std::any::Any;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use reproml_store::Store;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Most writes committed together: bounds the time a group holds the
/// write lock, and so the latency of the writes queued behind it.
const MAX_GROUP: usize = 256;
/// Idle read-only connections kept for reuse.
const POOLED_READERS: usize = 8;

type Outcome = Result<Box<dyn Any + Send>, ApiError>;
type Write = Box<dyn FnOnce(&mut Store) -> Outcome + Send>;

struct Job {
    write: Write,
    reply: oneshot::Sender<Outcome>,
}

/// Reads and writes of one database.
pub(crate) struct Db {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Store>>>,
}

impl Db {
    /// Starts the writer thread on `store`, the process's one writing
    /// connection.
    pub(crate) fn new(store: Store) -> std::io::Result<Self> {
        let path = store.path().to_owned();
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("reproml-writer".into())
            .spawn(move || write_groups(store, queue))?;
        Ok(Self {
            path,
            jobs,
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Runs `read` on a read-only connection, on a blocking thread.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let span = tracing::Span::current();
        let (path, readers) = (self.path.clone(), self.readers.clone());
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let pooled = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let reader = match pooled {
                    Some(reader) => reader,
                    None => Store::open_reader(&path)?,
                };
                let value = read(&reader);
                let mut pool = readers.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() < POOLED_READERS {
                    pool.push(reader);
                }
                value
            })
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Runs `write` on the writer thread, inside the next group; answers
    /// once the group is committed (or with the write's own refusal, which
    /// leaves the rest of the group alone).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let span = tracing::Span::current();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write: Box::new(move |store| {
                span.in_scope(|| write(store).map(|v| Box::new(v) as Box<dyn Any + Send>))
            }),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal("the writer thread has stopped"))?;
        let value = answer
            .await
            .map_err(|_| ApiError::internal("the writer thread dropped a write"))??;
        value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| ApiError::internal("a write answered with a value of another type"))
    }
}

/// The writer thread: takes the first waiting write, then every other one
/// already waiting (up to [`MAX_GROUP`]), runs each in its own savepoint
/// inside one transaction, commits once, then answers them all.
fn write_groups(mut store: Store, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let group: Vec<Job> = std::iter::once(first)
            .chain(queue.try_iter().take(MAX_GROUP - 1))
            .collect();
        if let Err(e) = store.begin_group() {
            let busy = e.is_busy();
            for job in group {
                let error = if busy {
                    ApiError::busy()
                } else {
                    ApiError::internal(&e)
                };
                let _ = job.reply.send(Err(error));
            }
            continue;
        }
        let outcomes: Vec<(oneshot::Sender<Outcome>, Outcome)> = group
            .into_iter()
            .map(|job| (job.reply, store.isolated(job.write)))
            .collect();
        match store.commit_group() {
            Ok(()) => {
                for (reply, outcome) in outcomes {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Nothing of the group was written: none of it is acknowledged.
                let busy = e.is_busy();
                for (reply, _) in outcomes {
                    let error = if busy {
                        ApiError::busy()
                    } else {
                        ApiError::internal(&e)
                    };
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}
