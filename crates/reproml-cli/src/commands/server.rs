//! `reproml server`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use reproml_server::{Limits, ServerConfig};

/// Arguments of `reproml server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on. Anything but loopback needs --token-file and
    /// --tls-cert/--tls-key.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// The SQLite database (created if missing).
    #[arg(long, default_value = "reproml.db")]
    db: PathBuf,
    /// Master seed of a new database (every experiment's seeds derive from
    /// it); drawn at random and stored when left out. Must match the stored
    /// one for an existing database.
    #[arg(long)]
    master_seed: Option<u64>,
    /// File holding the bearer token clients must send (at least 16
    /// characters); required to listen beyond loopback.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Let clients delete experiments and variants although the server has
    /// no token (with a token, whoever holds it may delete).
    #[arg(long)]
    allow_delete: bool,
    /// Serve HTTPS with this certificate (PEM; the server's first, then any
    /// intermediate ones). Clients check it against the system's roots, or
    /// the private CA they are given with --ca-cert.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServerArgs) -> Result<()> {
    let token = args
        .token_file
        .as_deref()
        .map(crate::files::read_token)
        .transpose()?;
    let config = ServerConfig {
        db: args.db.clone(),
        master_seed: args.master_seed,
        token,
        limits: Limits::default(),
        allow_delete: args.allow_delete,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| reproml_server::TlsFiles { cert, key }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served: Result<()> = runtime.block_on(async move {
        let bound = reproml_server::bind(&config, args.listen).await?;
        let db = std::fs::canonicalize(&args.db).unwrap_or(args.db.clone());
        note(format_args!(
            "reproml server {} listening on {}://{} (database {}, master seed {}){}",
            env!("CARGO_PKG_VERSION"),
            bound.scheme(),
            bound.local_addr(),
            db.display(),
            bound.state().master_seed(),
            if config.token.is_some() {
                ", token required"
            } else {
                ""
            }
        ));
        bound
            .serve(shutdown_signal())
            .await
            .context("the server stopped with an error")?;
        note(format_args!("reproml server stopped"));
        Ok(())
    });
    // Requests end within the handling limit, but a blocking task (a
    // comparison, a figure) runs to its end on its own thread, and dropping
    // the runtime would wait for it: every write is committed by now, so
    // the process does not wait longer than this.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    note(format_args!("shutting down: finishing requests in flight"));
}

/// Writes a line to stderr, ignoring failure: a server whose terminal went
/// away must go on serving (`eprintln!` would panic).
fn note(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
