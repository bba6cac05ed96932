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
        let mut outcomes: Vec<(oneshot::Sender<Outcome>, Outcome)> = Vec::new();
        let mut jobs = group.into_iter();
        let mut lost = false;
        for job in jobs.by_ref() {
            // A panicking write (a bug) is undone and answered; the writer
            // goes on, or no write would ever be acknowledged again.
            let write = job.write;
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.isolated(write)))
                    .unwrap_or_else(|cause| {
                        store.abandon_isolated();
                        Err(ApiError::internal(format_args!(
                            "a write panicked: {}",
                            panic_text(&*cause)
                        )))
                    });
            outcomes.push((job.reply, outcome));
            if !store.in_transaction() {
                lost = true;
                break;
            }
        }
        if lost {
            // SQLite rolled the whole group back (disk full, I/O error):
            // nothing of it was written. Retrying is safe, every write is
            // idempotent; the writes not yet run are answered the same way.
            tracing::error!("the database rolled back a group of writes; answering 503");
            for (reply, _) in outcomes {
                let _ = reply.send(Err(ApiError::busy()));
            }
            for job in jobs {
                let _ = job.reply.send(Err(ApiError::busy()));
            }
            continue;
        }
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

fn panic_text(cause: &(dyn Any + Send)) -> &str {
    cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("reproml-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("d.db"), Some(1)).unwrap();
        (Db::new(store).unwrap(), dir)
    }

    #[tokio::test]
    async fn a_panicking_write_is_answered_and_the_writer_goes_on() {
        let (db, dir) = db("panic");
        let err = db
            .write(|_store| -> Result<(), ApiError> { panic!("a bug") })
            .await
            .unwrap_err();
        assert_eq!(err.code, reproml_api::ProblemCode::Internal);
        let spec = reproml_core::ExperimentSpec::new(
            "after".parse().unwrap(),
            "mlp".parse().unwrap(),
            "digits".parse().unwrap(),
            1,
        );
        let (e, _) = db
            .write(move |store| Ok(store.create_experiment(&spec)?))
            .await
            .unwrap();
        let id = e.spec.id.clone();
        let read = db
            .read(move |store| Ok(store.experiment(&id)?))
            .await
            .unwrap();
        assert_eq!(read.map(|r| r.spec.id), Some(e.spec.id));
        let _ = std::fs::remove_dir_all(dir);
    }
}
