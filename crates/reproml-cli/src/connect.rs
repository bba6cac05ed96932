//! Reaching a server: a remote one (`--server URL`) or one started in this
//! process on a database file (`--embedded`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use reproml_client::Client;
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// URL of a running `reproml server`, e.g. http://127.0.0.1:7878.
    #[arg(
        long,
        conflicts_with = "embedded",
        required_unless_present = "embedded"
    )]
    pub server: Option<String>,
    /// File holding the server's bearer token, if it requires one.
    #[arg(long, requires = "server")]
    pub token_file: Option<PathBuf>,
    /// Start a server inside this process (on 127.0.0.1, a free port).
    #[arg(long)]
    pub embedded: bool,
    /// Database of the embedded server.
    #[arg(long, default_value = "reproml.db", requires = "embedded")]
    pub db: PathBuf,
    /// Master seed of a new embedded database (random when left out).
    #[arg(long, requires = "embedded")]
    pub master_seed: Option<u64>,
}

/// A client, and the embedded server it talks to (kept alive with it).
pub struct Connection {
    /// The client.
    pub client: Client,
    _embedded: Option<EmbeddedServer>,
}

impl ServerArgs {
    /// Connects, starting the embedded server when asked.
    pub fn connect(&self) -> Result<Connection> {
        if let Some(url) = &self.server {
            if !url.starts_with("http://") {
                bail!("--server must be an http:// URL (got {url:?}); https is not supported yet");
            }
            let token = self
                .token_file
                .as_deref()
                .map(super::server::read_token)
                .transpose()?;
            let client = Client::new(url, token);
            client
                .health()
                .with_context(|| format!("no ReproduceML server answers at {url}"))?;
            return Ok(Connection {
                client,
                _embedded: None,
            });
        }
        let server = EmbeddedServer::start(ServerConfig {
            db: self.db.clone(),
            master_seed: self.master_seed,
            token: None,
            limits: Limits::default(),
        })
        .with_context(|| format!("cannot start the embedded server on {}", self.db.display()))?;
        Ok(Connection {
            client: Client::new(&server.url(), None),
            _embedded: Some(server),
        })
    }
}
