//! Reaching a server: a remote one (`--server URL`, or `REPROML_SERVER`)
//! or one started in this process on a database file (`--db FILE` or
//! `--embedded`, which wins over the environment variable).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use reproml_client::{Client, Experiment};
use reproml_core::ExperimentId;
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// URL of a running `reproml server`, e.g. http://127.0.0.1:7878
    /// [default: $REPROML_SERVER, unless --embedded or --db].
    #[arg(long, conflicts_with_all = ["embedded", "db"])]
    pub server: Option<String>,
    /// File holding the server's bearer token, if it requires one
    /// [default: $REPROML_TOKEN_FILE].
    #[arg(long, conflicts_with_all = ["embedded", "db"])]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) to trust for an https:// server (PEM), instead of
    /// the system's roots: a cluster's private CA [default:
    /// $REPROML_CA_CERT].
    #[arg(long, value_name = "PEM", conflicts_with_all = ["embedded", "db"])]
    pub ca_cert: Option<PathBuf>,
    /// Start a server inside this process on a database file (--db, default
    /// reproml.db), instead of using a running one (--server).
    #[arg(long)]
    pub embedded: bool,
    /// Database of a server inside this process (implies --embedded)
    /// [default: reproml.db].
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Master seed of a new embedded database (random when left out).
    #[arg(long, conflicts_with = "server")]
    pub master_seed: Option<u64>,
}

/// The database an embedded server uses when --db is not given.
const DEFAULT_DB: &str = "reproml.db";

/// A client, and the embedded server it talks to (kept alive with it).
pub struct Connection {
    /// The client.
    pub client: Client,
    _embedded: Option<EmbeddedServer>,
}

impl ServerArgs {
    /// An embedded server on `db`.
    pub fn embedded(db: PathBuf, master_seed: Option<u64>) -> Self {
        Self {
            server: None,
            token_file: None,
            ca_cert: None,
            embedded: true,
            db: Some(db),
            master_seed,
        }
    }

    /// Where a command that reads runs (`compare`, `report`, `plan`)
    /// finds them: `server` (or `REPROML_SERVER`), else a database in this
    /// process, `db` or reproml.db.
    pub fn reading(
        server: Option<String>,
        token_file: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        embedded: bool,
        db: Option<PathBuf>,
    ) -> Self {
        Self {
            embedded: embedded || (server.is_none() && server_from_env().is_none()),
            server,
            token_file,
            ca_cert,
            db,
            master_seed: None,
        }
    }

    /// Connects like [`ServerArgs::connect`], but an embedded server's
    /// database must exist already: commands that only read never leave
    /// an empty database behind a typo.
    pub fn connect_existing(&self) -> Result<Connection> {
        if self.url()?.is_none() {
            crate::files::existing_database(&self.db())?;
        }
        self.connect()
    }

    /// Connects like [`ServerArgs::connect_existing`], to delete: an
    /// embedded server then allows it (the user named the database file).
    pub fn connect_to_delete(&self) -> Result<Connection> {
        if self.url()?.is_none() {
            crate::files::existing_database(&self.db())?;
        }
        self.start(true)
    }

    /// Connects, starting the embedded server when asked.
    pub fn connect(&self) -> Result<Connection> {
        self.start(false)
    }

    /// The server's URL: --server, else `REPROML_SERVER`; `None` for
    /// --embedded, which wins over the environment variable (so the
    /// variable is not read by clap, whose conflict check would refuse
    /// --embedded while it is set). Neither is a usage error (status 2),
    /// with a message that offers both.
    fn url(&self) -> Result<Option<String>> {
        if self.embedded || self.db.is_some() {
            if self.token_file.is_some() || self.ca_cert.is_some() {
                return Err(usage(
                    "--token-file and --ca-cert are for a server given by --server or \
                     REPROML_SERVER, not for a database in this process",
                ));
            }
            return Ok(None);
        }
        if let Some(url) = self.server.clone().or_else(server_from_env) {
            return Ok(Some(url));
        }
        Err(usage(
            "no server given: name a running one with --server URL (or the REPROML_SERVER \
             environment variable), or use --embedded to work on a database file \
             (reproml.db, or --db FILE) in this process",
        ))
    }

    /// The token file: --token-file, else `REPROML_TOKEN_FILE`.
    pub fn token_file(&self) -> Option<PathBuf> {
        self.token_file.clone().or_else(|| {
            std::env::var_os("REPROML_TOKEN_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// The CA certificate file: --ca-cert, else `REPROML_CA_CERT`.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.ca_cert.clone().or_else(|| {
            std::env::var_os("REPROML_CA_CERT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// The embedded server's database.
    fn db(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| DEFAULT_DB.into())
    }

    fn start(&self, allow_delete: bool) -> Result<Connection> {
        if let Some(url) = &self.url()? {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(usage(&format!(
                    "the server must be an http:// or https:// URL (got {url:?})"
                )));
            }
            let token = self
                .token_file()
                .as_deref()
                .map(crate::files::read_token)
                .transpose()?;
            let plain = url.starts_with("http://");
            if plain && self.ca_cert().is_some() {
                return Err(usage(&format!(
                    "a CA certificate is given (--ca-cert or REPROML_CA_CERT) for {url}, which is \
                     not https://: use the server's https:// URL"
                )));
            }
            if plain && token.is_some() && !loopback(url) {
                return Err(usage(&format!(
                    "refusing to send the token over plain HTTP to {url}: anyone on the way could \
                     read it. Use the server's https:// URL (docs/cluster.md)"
                )));
            }
            let mut client = Client::new(url, token);
            // Data sets once per machine, then each split as its indices
            // (REPROML_CACHE=off, REPROML_CACHE_DIR, REPROML_CACHE_LIMIT).
            // Not for an embedded server: its data is in this process.
            if let Some(cache) = reproml_client::DataCache::from_env().map_err(|e| usage(&e))? {
                client = client.with_data_cache(std::sync::Arc::new(cache));
            }
            if let Some(ca) = self.ca_cert() {
                let pem = std::fs::read(&ca)
                    .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?;
                client = client
                    .with_ca_certificates(&pem)
                    .with_context(|| format!("cannot trust {}", ca.display()))?;
            }
            client
                .health()
                .with_context(|| format!("no ReproduceML server answers at {url}"))?;
            return Ok(Connection {
                client,
                _embedded: None,
            });
        }
        let db = self.db();
        let server = EmbeddedServer::start(ServerConfig {
            db: db.clone(),
            master_seed: self.master_seed,
            token: None,
            limits: Limits::default(),
            allow_delete,
            tls: None,
        })
        .with_context(|| format!("cannot start the embedded server on {}", db.display()))?;
        Ok(Connection {
            client: Client::new(&server.url(), None),
            _embedded: Some(server),
        })
    }
}

/// Whether `url`'s host is this machine (127.0.0.0/8, ::1, localhost).
fn loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A command line that cannot work: exit status 2, as clap's own errors.
pub fn usage(message: &str) -> anyhow::Error {
    crate::output::Exit {
        code: crate::output::EXIT_USAGE,
        message: format!("error: {message}"),
    }
    .into()
}

/// `REPROML_SERVER`, when set and not empty.
pub fn server_from_env() -> Option<String> {
    std::env::var("REPROML_SERVER")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Which experiment, and the spec to create it from.
#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment.
    #[arg(long)]
    pub experiment: ExperimentId,
    /// Create the experiment from this spec if it does not exist (an
    /// existing one must have the same attributes).
    #[arg(long)]
    pub spec: Option<PathBuf>,
}

impl ExperimentArgs {
    /// The experiment from the server, created from the spec when given.
    pub fn resolve(&self, client: &Client) -> Result<Experiment> {
        let spec = self
            .spec
            .as_deref()
            .map(crate::files::load_spec)
            .transpose()?;
        let origin = self
            .spec
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(reproml_runner::run::experiment(
            client,
            &self.experiment,
            spec.as_ref().map(|s| (s, origin.as_str())),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::loopback;

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:7878",
            "http://localhost:1/x",
            "http://[::1]:80",
            "http://127.1.2.3",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:7878",
            "http://login01:7878",
            "http://[fe80::1]:1",
            "http://127.0.0.1.evil.org",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }
}
