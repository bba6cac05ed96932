//! The ReproduceML server: the static centre that keeps experiments, their
//! seeds, data sets and run results, serves deterministic checksummed
//! splits, and speaks the HTTP API of `docs/protocol.md` (OpenAPI at
//! `/openapi.json`).
//!
//! Safe by default: it listens on loopback unless given a token and a TLS
//! certificate, bounds
//! request bodies, connections and handling time, and answers every bad
//! request with a problem object while it goes on serving everyone else.

mod connections;
mod db;
mod error;
mod extract;
mod log;
mod routes;
mod state;
mod tls;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use log::REQUEST_ID;
pub use state::AppState;
pub use tls::TlsFiles;
#[cfg(feature = "test-support")]
pub use tls::testing as tls_testing;

/// Every route the server answers, as `(method, path)`: the OpenAPI
/// document is tested to list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/v1/experiments"),
    ("POST", "/v1/experiments"),
    ("GET", "/v1/experiments/{id}"),
    ("DELETE", "/v1/experiments/{id}"),
    ("DELETE", "/v1/experiments/{id}/variants/{variant}"),
    ("GET", "/v1/experiments/{id}/runs"),
    ("GET", "/v1/experiments/{id}/runs/{run}/seed"),
    ("GET", "/v1/experiments/{id}/runs/{run}/data/{split}"),
    ("POST", "/v1/experiments/{id}/variants/{variant}/runs/{run}"),
    (
        "POST",
        "/v1/experiments/{id}/variants/{variant}/runs/{run}/failures",
    ),
    ("GET", "/v1/experiments/{id}/failures"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{digest}/content"),
    ("GET", "/v1/progress"),
    ("GET", "/v1/experiments/{id}/comparison"),
    ("GET", "/v1/experiments/{id}/figures/{name}"),
    ("GET", "/v1/experiments/{id}/report.html"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("GET", "/assets/{name}"),
];

/// The OpenAPI 3.1 description of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Bounds on what clients can make the server do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (a run result with its epochs): 4 MiB.
    pub max_body_bytes: usize,
    /// Most connections open at once. When all are open, the one idle the
    /// longest (no request in progress) is closed for a new one; when all
    /// are busy, a new one gets `503 server_busy`.
    pub max_connections: usize,
    /// Longest wait for a complete request head, including the idle time
    /// between two requests on a kept-alive connection; then it is closed.
    pub header_timeout: Duration,
    /// Longest wait for a request body to arrive (`408 body_timeout`).
    pub body_timeout: Duration,
    /// Longest time a request may take to be handled (a split stream's
    /// body, once started, is not limited).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The SQLite database file.
    pub db: PathBuf,
    /// Master seed for a new database (drawn at random when absent).
    pub master_seed: Option<u64>,
    /// Bearer token required on every request but `/v1/health`.
    pub token: Option<String>,
    /// Request and connection bounds.
    pub limits: Limits,
    /// Lets a server without a token delete experiments and variants (a
    /// server with a token lets whoever holds the token delete).
    pub allow_delete: bool,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Why a server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening beyond loopback without a token.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could write results. \
         Use 127.0.0.1 (the default), or give --token-file with a secret that clients send as a \
         bearer token, and --tls-cert and --tls-key (docs/cluster.md)"
    )]
    NonLoopbackWithoutToken(SocketAddr),
    /// Listening beyond loopback without TLS: the token would cross the
    /// network in the clear.
    #[error(
        "refusing to listen on {0} over plain HTTP: the token and every result would cross the \
         network unencrypted. Give --tls-cert and --tls-key (docs/cluster.md shows how to make a \
         private CA and a certificate), or listen on 127.0.0.1"
    )]
    NonLoopbackWithoutTls(SocketAddr),
    /// The certificate or key cannot be used.
    #[error("cannot use {path} for TLS: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] reproml_store::StoreError),
    /// A thread the server needs cannot be started.
    #[error("cannot start the server's database writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The address cannot be bound.
    // The cause is the error's source, printed by the caller's chain (not
    // repeated here): "cannot listen on …: Address already in use".
    #[error(
        "cannot listen on {addr} (is another server there? choose another address with --listen 127.0.0.1:PORT)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Refuses a non-loopback address unless a token is set and TLS is on.
pub fn check_listen_address(
    addr: SocketAddr,
    token: Option<&str>,
    tls: bool,
) -> Result<(), ServerError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else if token.is_none() {
        Err(ServerError::NonLoopbackWithoutToken(addr))
    } else if !tls {
        Err(ServerError::NonLoopbackWithoutTls(addr))
    } else {
        Ok(())
    }
}

/// The application: routes, limits and authentication around `state`.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let api = Router::new()
        .route("/v1/health", get(routes::health))
        .route(
            "/v1/experiments",
            get(routes::list_experiments).post(routes::create_experiment),
        )
        .route(
            "/v1/experiments/{id}",
            get(routes::get_experiment).delete(routes::delete_experiment),
        )
        .route(
            "/v1/experiments/{id}/variants/{variant}",
            axum::routing::delete(routes::delete_variant),
        )
        .route("/v1/experiments/{id}/runs", get(routes::list_runs))
        .route(
            "/v1/experiments/{id}/runs/{run}/seed",
            get(routes::get_seed),
        )
        .route(
            "/v1/experiments/{id}/runs/{run}/data/{split}",
            get(routes::get_split),
        )
        .route(
            "/v1/experiments/{id}/variants/{variant}/runs/{run}",
            post(routes::post_result),
        )
        .route(
            "/v1/experiments/{id}/variants/{variant}/runs/{run}/failures",
            post(routes::post_failure),
        )
        .route("/v1/experiments/{id}/failures", get(routes::list_failures))
        .route("/v1/datasets", get(routes::list_datasets))
        .route(
            "/v1/datasets/{digest}/content",
            get(routes::get_dataset_content),
        )
        .route("/v1/progress", get(views::progress))
        .route("/v1/experiments/{id}/comparison", get(views::comparison))
        .route("/v1/experiments/{id}/figures/{name}", get(views::figure))
        .route("/v1/experiments/{id}/report.html", get(views::report_page))
        .route("/openapi.json", get(routes::openapi))
        .route("/", get(views::index))
        .route("/assets/{name}", get(views::asset))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed);
    api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        views::conditional_get,
    ))
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        routes::authenticate,
    ))
    .layer(DefaultBodyLimit::max(limits.max_body_bytes))
    .layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        limits.request_timeout,
    ))
    .layer(axum::middleware::from_fn_with_state(
        extract::BodyRules {
            max_bytes: limits.max_body_bytes,
            timeout: limits.body_timeout,
        },
        extract::body_rules,
    ))
    // A panic in a handler (a bug) answers `500 internal` and is logged;
    // its text never reaches the client, and the server goes on.
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        error::panic_response,
    ))
    // Outermost, so that answers from the layers above (a 503 after the
    // handling limit) are logged and carry their request id too.
    .layer(axum::middleware::from_fn(log::log_request))
    .with_state(state)
}

/// Opens the store and binds `addr`; call [`RunningServer::serve`] to answer.
pub async fn bind(config: &ServerConfig, addr: SocketAddr) -> Result<BoundServer, ServerError> {
    check_listen_address(addr, config.token.as_deref(), config.tls.is_some())?;
    // The certificate before the address and the database: a typo in a
    // path leaves nothing behind.
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    // The address first: a server that cannot listen must not leave a new,
    // empty database behind.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let state = AppState::open(config)?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    // Each connection is a file descriptor: with the usual soft limit of
    // 1,024, accept would fail before the connection limit is reached and
    // idle sockets could not be evicted. Raise it to the hard limit, and
    // keep the connection limit below it.
    let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = usize::try_from(open_files.saturating_sub(128)).unwrap_or(usize::MAX);
    Ok(BoundServer {
        listener,
        limits: connections::ConnectionLimits {
            max_connections: config.limits.max_connections.min(room).max(1),
            header_timeout: config.limits.header_timeout,
        },
        router: router(state.clone(), &config.limits),
        state,
        addr: local,
        tls,
    })
}

/// A server that is listening.
pub struct BoundServer {
    listener: tokio::net::TcpListener,
    limits: connections::ConnectionLimits,
    router: Router,
    state: AppState,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl BoundServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` when it serves TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The shared state (for the master seed).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Answers requests until `shutdown` completes, then finishes the
    /// requests in flight.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        connections::serve(self.listener, self.router, self.limits, self.tls, shutdown).await
    }
}

/// A server running on its own thread and runtime, on `127.0.0.1` with a
/// free port: what `reproml run --embedded` and `reproml demo` use.
pub struct EmbeddedServer {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl EmbeddedServer {
    /// Starts a server on `db`.
    pub fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("reproml-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let bound = match bind(&config, SocketAddr::from(([127, 0, 0, 1], 0))).await {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok((bound.local_addr(), bound.scheme())));
                    bound
                        .serve(async move {
                            let _ = stop_rx.await;
                        })
                        .await
                })
            })
            .map_err(|source| ServerError::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                source,
            })?;
        let (addr, scheme) = ready_rx.recv().map_err(|_| ServerError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source: std::io::Error::other("the server thread ended before it was ready"),
        })??;
        Ok(Self {
            addr,
            scheme,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Its base URL, e.g. `http://127.0.0.1:40123` (`https` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
