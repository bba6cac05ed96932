//! The accept loop: HTTP/1.1 connections served by hyper with a
//! header-read timeout, under a connection limit that idle and slow sockets
//! cannot exhaust.
//!
//! `axum::serve` has neither: it sets no timer, so a socket that never
//! finishes its request head is held forever, and a limit on open sockets
//! then lets a few hundred of them lock every client out. Here a socket
//! that has no request in progress (never sent a full head, or idles
//! between keep-alive requests) is *evictable*: when the table is full,
//! the longest-idle one is closed to make room, and every socket is closed
//! anyway once it spends `header_timeout` without completing a request
//! head. A request being handled, or a response being streamed, is never
//! cut; only when every slot is busy does a new socket get a `503` with
//! `Retry-After`, which both clients honour.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the accept loop needs to know of [`crate::Limits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// One open connection, as the table sees it.
struct Entry {
    /// Requests in progress (handled or still streaming their response).
    busy: Arc<AtomicUsize>,
    /// Of those, the ones still waiting for their request body.
    awaiting_body: Arc<AtomicUsize>,
    /// When it last started or finished a request (or was accepted).
    last_active: Arc<Mutex<Instant>>,
    abort: AbortHandle,
}

#[derive(Default)]
struct Table {
    open: HashMap<u64, Entry>,
}

impl Table {
    /// Closes the connection idle the longest; false when every one is busy.
    fn evict_one(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            // Idle, or only waiting for a body: a slow sender is evictable
            // like a slow head, or a few hundred of them would hold every
            // slot for the whole body timeout.
            .filter(|(_, e)| {
                let busy = e.busy.load(Ordering::Acquire);
                busy == 0 || busy == e.awaiting_body.load(Ordering::Acquire)
            })
            .min_by_key(|(_, e)| *e.last_active.lock().unwrap_or_else(|p| p.into_inner()))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.open.remove(&id)) {
            Some(entry) => {
                entry.abort.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets the requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    let next_id = AtomicU64::new(0);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors: close an idle connection to make
                // room rather than wait for one to end on its own.
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    let evicted = table.lock().unwrap_or_else(|p| p.into_inner()).evict_one();
                    if !evicted {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
                // Other transient accept errors: back off.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let room = {
            let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
            t.open.len() < limits.max_connections || t.evict_one()
        };
        if !room {
            // Over TLS a polite 503 would cost a handshake per refused
            // socket, which is what a flood wants: the socket is closed,
            // and clients retry a connection that failed.
            if tls.is_none() {
                tasks.spawn(refuse_busy(stream));
            }
            continue;
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let awaiting_body = Arc::new(AtomicUsize::new(0));
        let last_active = Arc::new(Mutex::new(Instant::now()));
        let (router, stop, tls) = (router.clone(), stop_rx.clone(), tls.clone());
        let activity = Activity {
            busy: busy.clone(),
            awaiting_body: awaiting_body.clone(),
            last_active: last_active.clone(),
        };
        let leave = Leave {
            table: table.clone(),
            id,
        };
        // The handshake runs in the connection's own task, idle in the
        // table (evictable) and bounded like a request head.
        let connection = async move {
            match tls {
                Some(tls) => {
                    if let Some(stream) = handshake(&tls, stream, limits.header_timeout).await {
                        serve_connection(stream, router, limits, activity, stop, leave).await;
                    }
                }
                None => serve_connection(stream, router, limits, activity, stop, leave).await,
            }
        };
        // Under the table's lock, so that the connection cannot end and
        // leave the table before it was entered.
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        let abort = tasks.spawn(connection);
        t.open.insert(
            id,
            Entry {
                busy,
                awaiting_body,
                last_active,
                abort,
            },
        );
    }
    // Stop accepting; connections finish what they are doing, then close.
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A connection's share of the table: how busy it is and since when idle.
#[derive(Clone)]
struct Activity {
    busy: Arc<AtomicUsize>,
    awaiting_body: Arc<AtomicUsize>,
    last_active: Arc<Mutex<Instant>>,
}

/// Handed to each request (an extension): the body extractor marks the
/// connection as only waiting for a body while it reads one.
#[derive(Clone)]
pub(crate) struct BodyWait(Arc<AtomicUsize>);

impl BodyWait {
    /// Marks the wait until the guard is dropped.
    pub(crate) fn enter(&self) -> BodyWaitGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        BodyWaitGuard(self.0.clone())
    }
}

/// See [`BodyWait::enter`].
pub(crate) struct BodyWaitGuard(Arc<AtomicUsize>);

impl Drop for BodyWaitGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Marks a request in progress until the guard is dropped.
    fn enter(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.touch();
        BusyGuard(self.clone())
    }
}

struct BusyGuard(Activity);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes a connection from the table when its task ends, however it ends.
struct Leave {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .remove(&self.id);
    }
}

/// The TLS handshake within `timeout`; `None` (the socket closed) when it
/// fails or takes longer: a client that does not speak TLS, or a
/// certificate it refuses.
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    router: Router,
    limits: ConnectionLimits,
    activity: Activity,
    mut stop: tokio::sync::watch::Receiver<bool>,
    leave: Leave,
) {
    let _leave = leave;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let guard = activity.enter();
        request
            .extensions_mut()
            .insert(BodyWait(activity.awaiting_body.clone()));
        let router = router.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            // Busy until the body is sent: a split stream is never cut.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(GuardedBody {
                    inner: body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Covers both a slow request head and the idle time between two
        // keep-alive requests (hyper starts it when it waits for a head).
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Every slot holds a request in progress: say so rather than queue.
async fn refuse_busy<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    // Read what the client already sent, so that closing does not reset the
    // connection before the client has read the answer.
    let mut head = [0u8; 8192];
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::io::AsyncReadExt::read(&mut stream, &mut head),
    )
    .await;
    let problem = reproml_api::Problem::new(
        reproml_api::ProblemCode::ServerBusy,
        "Service Unavailable",
        "every connection slot is serving a request; try again in a second",
    );
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// A response body that keeps its connection marked busy until it is
/// sent or dropped.
struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
