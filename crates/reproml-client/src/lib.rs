//! A blocking client of the ReproduceML HTTP API (`docs/protocol.md`).
//!
//! Every split stream is verified chunk by chunk and as a whole; a mismatch
//! is an error, never silently used data. Connection failures are retried
//! with exponential backoff; answers from the server (including 4xx and
//! 5xx problems) are not.
//!
//! ```no_run
//! use reproml_client::Client;
//! use reproml_core::{RunIndex, split::SplitName};
//! let client = Client::new("http://127.0.0.1:7878", None);
//! let (id, run) = ("digits-lenet5".parse().unwrap(), RunIndex::new(0));
//! let seed = client.seed(&id, run)?.seed;
//! let train = client.split(&id, run, SplitName::Train, seed)?;
//! println!("{} training examples", train.len());
//! # Ok::<(), reproml_client::ClientError>(())
//! ```

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use reproml_api::{Health, ProblemCode, RunFailure};
use reproml_core::run::RunResult;
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, Seed, VariantLabel};
use reproml_data::wire::{self, DecodedSplit, WireError};
use serde::de::DeserializeOwned;

pub use reproml_api::{Experiment, FailureRecord, RecordedRun, RunSeed};

mod cache;
pub use cache::{CHECK_BLOCK_BYTES, CacheStats, DataCache, content_check};

/// Largest split stream accepted: CIFAR-10 is 184 MB.
pub const MAX_SPLIT_BYTES: u64 = 2 << 30;
/// Largest JSON answer accepted.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, even after retries.
    #[error(
        "cannot reach the ReproduceML server at {url}: {message} (is `reproml server` running?)"
    )]
    Unreachable {
        /// The URL called.
        url: String,
        /// The last transport error.
        message: String,
    },
    /// The TLS connection failed: most often a certificate this client
    /// does not trust.
    #[error(
        "the TLS connection to {url} failed: {message}. If the server's certificate comes from a \
         private CA, give that CA's certificate with --ca-cert FILE (or REPROML_CA_CERT)"
    )]
    Tls {
        /// The URL called.
        url: String,
        /// What rustls said.
        message: String,
    },
    /// The CA certificates given to trust cannot be read.
    #[error(
        "cannot use the CA certificates: {0} (a PEM file with -----BEGIN CERTIFICATE----- is expected)"
    )]
    BadCaCertificates(String),
    /// The server answered with a problem.
    #[error("{status} {name}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's stable code ([`ProblemCode::Unknown`] for one this
        /// client does not know).
        code: ProblemCode,
        /// The code as the server sent it.
        name: String,
        /// The server's explanation.
        detail: String,
    },
    /// A split stream failed verification.
    #[error("split stream from {url} rejected: {source}")]
    Corrupt {
        /// The URL called.
        url: String,
        /// What failed.
        #[source]
        source: WireError,
    },
    /// An answer was not what the protocol says.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// The problem code, when the server answered with one.
    pub fn code(&self) -> Option<ProblemCode> {
        match self {
            Self::Problem { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A verified split (header, indices, labels, contiguous pixels).
pub type SplitData = DecodedSplit;

/// A client of one server.
///
/// It and its clones keep the memory of up to four splits dropped, for the
/// next splits they fetch ([`wire::RecordBuffers`]): a full split streams
/// about twice as fast into memory already in use as into new memory.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    retries: u32,
    cache: Option<Arc<DataCache>>,
    /// The memory of splits already dropped, for the next ones: shared by
    /// clones, as a runner's jobs share one client.
    buffers: Arc<wire::RecordBuffers>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:7878`),
    /// sending `token` as a bearer token when given.
    /// An `https://` server's certificate is checked against the system's
    /// roots ([`Client::with_ca_certificates`] for a private CA).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent: agent(ureq::tls::RootCerts::PlatformVerifier),
            retries: 5,
            cache: None,
            buffers: wire::RecordBuffers::new(),
        }
    }

    /// Takes splits from `cache`: each data set is fetched once per machine
    /// and each split as its indices only (`docs/protocol.md`, section 8).
    pub fn with_data_cache(mut self, cache: Arc<DataCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Trusts only the CA certificates in `pem` (one or more PEM blocks):
    /// a cluster's private CA, or a server's self-signed certificate.
    pub fn with_ca_certificates(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let certificates = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(ClientError::BadCaCertificates(e.to_string()))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() {
            return Err(ClientError::BadCaCertificates(
                "it holds no certificate".into(),
            ));
        }
        self.agent = agent(ureq::tls::RootCerts::new_with_certs(&certificates));
        Ok(self)
    }

    /// Sets how many times a connection failure or a `503 Service
    /// Unavailable` is retried (default 5, waiting 100 ms, 200 ms, 400 ms,
    /// … between tries, or what the server's `Retry-After` asks).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), ClientError> {
        self.call_accepting(method, path, body, "application/json")
    }

    fn call_accepting(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        accept: &str,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            let result = match (method, body) {
                ("POST", Some(body)) => {
                    let mut req = self
                        .agent
                        .post(&url)
                        .header("Accept", accept)
                        .header("Content-Type", "application/json");
                    if let Some(t) = &self.token {
                        req = req.header("Authorization", &format!("Bearer {t}"));
                    }
                    req.send(body)
                }
                ("DELETE", _) => {
                    let mut req = self.agent.delete(&url).header("Accept", accept);
                    if let Some(t) = &self.token {
                        req = req.header("Authorization", &format!("Bearer {t}"));
                    }
                    req.call()
                }
                _ => {
                    let mut req = self.agent.get(&url).header("Accept", accept);
                    if let Some(t) = &self.token {
                        req = req.header("Authorization", &format!("Bearer {t}"));
                    }
                    req.call()
                }
            };
            match result {
                // A busy or overloaded server asks to be tried again: every
                // call retried is idempotent (a result or experiment posted
                // twice is recognised; failure reports are sent without
                // retries), so retrying is safe.
                Ok(response) if response.status().as_u16() == 503 && attempt < self.retries => {
                    std::thread::sleep(retry_after(&response).unwrap_or(backoff(attempt)));
                    attempt += 1;
                }
                Ok(response) => return Ok((url, response)),
                Err(e) if tls_failure(&e).is_some() => {
                    return Err(ClientError::Tls {
                        url,
                        message: tls_failure(&e).unwrap_or_default(),
                    });
                }
                Err(e) if attempt < self.retries && is_transient(&e) => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, T), ClientError> {
        let (url, mut response) = self.call(method, path, body)?;
        let status = response.status().as_u16();
        let bytes = read_limited(&url, response.body_mut().as_reader(), MAX_JSON_BYTES)?;
        if status >= 400 {
            return Err(problem(&url, status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(|v| (status, v))
            .map_err(|e| ClientError::Protocol {
                url,
                message: e.to_string(),
            })
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Health, ClientError> {
        Ok(self.json("GET", "/v1/health", None)?.1)
    }

    /// `POST /v1/experiments`: creates the experiment, or returns the
    /// existing one with the same attributes (`created` tells which).
    pub fn create_experiment(
        &self,
        spec: &ExperimentSpec,
    ) -> Result<(Experiment, bool), ClientError> {
        let body = serde_json::to_vec(spec).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        let (status, e) = self.json("POST", "/v1/experiments", Some(&body))?;
        Ok((e, status == 201))
    }

    /// `GET /v1/experiments/{id}`.
    pub fn experiment(&self, id: &ExperimentId) -> Result<Experiment, ClientError> {
        Ok(self.json("GET", &format!("/v1/experiments/{id}"), None)?.1)
    }

    /// `DELETE /v1/experiments/{id}`: the experiment, its seeds and its
    /// runs; returns how many runs were deleted.
    pub fn delete_experiment(&self, id: &ExperimentId) -> Result<u64, ClientError> {
        let (_, deleted): (u16, Deleted) =
            self.json("DELETE", &format!("/v1/experiments/{id}"), None)?;
        Ok(deleted.deleted_runs)
    }

    /// `DELETE /v1/experiments/{id}/variants/{variant}`: the variant's runs,
    /// so that its name can be used again; returns how many were deleted.
    pub fn delete_variant(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
    ) -> Result<u64, ClientError> {
        let (_, deleted): (u16, Deleted) = self.json(
            "DELETE",
            &format!("/v1/experiments/{id}/variants/{variant}"),
            None,
        )?;
        Ok(deleted.deleted_runs)
    }

    /// `GET /v1/experiments`.
    pub fn experiments(&self) -> Result<Vec<Experiment>, ClientError> {
        Ok(self.json("GET", "/v1/experiments", None)?.1)
    }

    /// `GET /v1/experiments/{id}/runs/{run}/seed`.
    pub fn seed(&self, id: &ExperimentId, run: RunIndex) -> Result<RunSeed, ClientError> {
        Ok(self
            .json(
                "GET",
                &format!("/v1/experiments/{id}/runs/{run}/seed"),
                None,
            )?
            .1)
    }

    /// `GET /v1/experiments/{id}/runs/{run}/data/{split}?seed=S`, verified.
    pub fn split(
        &self,
        id: &ExperimentId,
        run: RunIndex,
        split_name: SplitName,
        seed: Seed,
    ) -> Result<SplitData, ClientError> {
        let path = format!("/v1/experiments/{id}/runs/{run}/data/{split_name}?seed={seed}");
        let accept = match &self.cache {
            Some(_) => wire::Version::Indices.media_type(),
            None => wire::ACCEPT_FULL,
        };
        let (url, mut response) = self.call_accepting("GET", &path, None, accept)?;
        let status = response.status().as_u16();
        if status >= 400 {
            let bytes = read_limited(&url, response.body_mut().as_reader(), MAX_JSON_BYTES)?;
            return Err(problem(&url, status, &bytes));
        }
        let corrupt = |source| ClientError::Corrupt {
            url: url.clone(),
            source,
        };
        let mut reader = response.body_mut().as_reader().take(MAX_SPLIT_BYTES);
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic).map_err(|e| {
            corrupt(WireError::Malformed(format!(
                "stream ends inside the magic ({e})"
            )))
        })?;
        let mut reader = magic.as_slice().chain(reader);
        let split = match &self.cache {
            Some(cache) if &magic == wire::Version::Indices.magic() => {
                // Verified whole (a few hundred kB) before its header picks
                // the data set.
                let stream = wire::VerifiedStream::read(&mut reader).map_err(corrupt)?;
                nothing_after(&mut reader).map_err(corrupt)?;
                let digest = stream.header().dataset_digest.clone();
                match cache.dataset(self, &digest) {
                    Ok(dataset) => stream.over(&dataset).map_err(corrupt)?,
                    // The cache cannot supply it (unwritable, the content
                    // damaged in transit, an error): the pixels come with
                    // the split instead, as without a cache.
                    Err(_) => {
                        let mut plain = self.clone();
                        plain.cache = None;
                        return plain.split(id, run, split_name, seed);
                    }
                }
            }
            // Without a cache, or from a server that does not know the
            // indices-only form: verified while it arrives, chunk by chunk.
            _ => {
                let split = wire::decode_reusing(&mut reader, &self.buffers).map_err(corrupt)?;
                nothing_after(&mut reader).map_err(corrupt)?;
                split
            }
        };
        // A version-1 stream leaves its header unprotected: not accepted
        // from a server that was asked for a later one.
        if split.version == wire::Version::V1 {
            return Err(ClientError::Corrupt {
                url,
                source: WireError::Mismatch(
                    "a version-1 stream (its header not under the checksum), but a later version was asked for"
                        .into(),
                ),
            });
        }
        // Every checksum held; the header must also be the split asked for.
        wire::check_request(&split.header, id, run, split_name, seed)
            .map_err(|source| ClientError::Corrupt { url, source })?;
        Ok(split)
    }

    /// `POST /v1/experiments/{id}/variants/{variant}/runs/{run}`; `true`
    /// when newly recorded, `false` when the same result was already there.
    pub fn post_result(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
        result: &RunResult,
    ) -> Result<bool, ClientError> {
        let body = serde_json::to_vec(result).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        // The answer is the stored run; only whether it was new matters
        // here, so it is checked to be JSON but not decoded field by field.
        let (status, serde::de::IgnoredAny) = self.json(
            "POST",
            &format!("/v1/experiments/{id}/variants/{variant}/runs/{run}"),
            Some(&body),
        )?;
        Ok(status == 201)
    }

    /// `POST …/variants/{variant}/runs/{run}/failures`: reports a failed
    /// attempt at a run (the error is cut to what the server keeps), so
    /// that the dashboard shows it; the server's count and latest error.
    pub fn post_failure(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
        seed: Seed,
        error: &str,
    ) -> Result<FailureRecord, ClientError> {
        let body = serde_json::to_vec(&RunFailure::new(seed, error)).map_err(|e| {
            ClientError::Protocol {
                url: self.base.clone(),
                message: e.to_string(),
            }
        })?;
        // Each report counts: not retried, so a lost answer cannot count
        // it twice (and a server that is down does not hold the run's own
        // error back for seconds).
        Ok(self
            .clone()
            .with_retries(0)
            .json(
                "POST",
                &format!("/v1/experiments/{id}/variants/{variant}/runs/{run}/failures"),
                Some(&body),
            )?
            .1)
    }

    /// `GET /v1/datasets`: the built-in and registered data sets, as the
    /// server lists them.
    pub fn datasets(&self) -> Result<serde_json::Value, ClientError> {
        Ok(self.json("GET", "/v1/datasets", None)?.1)
    }

    /// `GET /v1/experiments/{id}/failures`.
    pub fn failures(&self, id: &ExperimentId) -> Result<Vec<FailureRecord>, ClientError> {
        Ok(self
            .json("GET", &format!("/v1/experiments/{id}/failures"), None)?
            .1)
    }

    /// `GET /v1/experiments/{id}/runs[?variant=V]`.
    pub fn runs(
        &self,
        id: &ExperimentId,
        variant: Option<&VariantLabel>,
    ) -> Result<Vec<RecordedRun>, ClientError> {
        let query = variant.map(|v| format!("?variant={v}")).unwrap_or_default();
        Ok(self
            .json("GET", &format!("/v1/experiments/{id}/runs{query}"), None)?
            .1)
    }

    /// `GET /v1/experiments/{id}/runs?format=csv`.
    pub fn runs_csv(&self, id: &ExperimentId) -> Result<String, ClientError> {
        let (url, mut response) = self.call(
            "GET",
            &format!("/v1/experiments/{id}/runs?format=csv"),
            None,
        )?;
        let status = response.status().as_u16();
        let bytes = read_limited(&url, response.body_mut().as_reader(), MAX_JSON_BYTES)?;
        if status >= 400 {
            return Err(problem(&url, status, &bytes));
        }
        String::from_utf8(bytes).map_err(|e| ClientError::Protocol {
            url,
            message: e.to_string(),
        })
    }
}

/// 100 ms, 200 ms, 400 ms, … (at most 6.4 s) before try `attempt + 1`.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(6))
}

/// A 503's `Retry-After` in seconds, capped at a minute.
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let secs: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// The agent every call goes through: statuses as answers, not errors;
/// TLS with rustls (ring) checking certificates against `roots`.
fn agent(roots: ureq::tls::RootCerts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(600)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(roots)
                .build(),
        )
        .build()
        .new_agent()
}

/// What went wrong, when `e` is a TLS failure (a certificate refused, a
/// server that does not speak TLS): never retried, since trying again
/// cannot help.
fn tls_failure(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Tls(message) => Some((*message).to_owned()),
        ureq::Error::Rustls(inner) => Some(inner.to_string()),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        _ => None,
    }
}

fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_)
    )
}

/// A stream must end with its trailer (`docs/protocol.md` §8).
fn nothing_after(reader: &mut impl Read) -> Result<(), WireError> {
    let mut rest = [0u8; 1];
    match reader.read(&mut rest).unwrap_or(0) {
        0 => Ok(()),
        _ => Err(WireError::Malformed("bytes after the trailer".into())),
    }
}

fn read_limited(url: &str, reader: impl Read, limit: u64) -> Result<Vec<u8>, ClientError> {
    read_limited_sized(url, reader, limit, 0)
}

/// [`read_limited`] into a buffer of `capacity` bytes from the start (an
/// announced length, bounded by `limit`), so that a large answer is not
/// grown by doubling.
fn read_limited_sized(
    url: &str,
    reader: impl Read,
    limit: u64,
    capacity: u64,
) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::with_capacity(capacity.min(limit) as usize);
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ClientError::Unreachable {
            url: url.to_owned(),
            message: format!("the answer was cut off: {e}"),
        })?;
    if bytes.len() as u64 > limit {
        return Err(ClientError::Protocol {
            url: url.to_owned(),
            message: format!("the answer is larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

/// What a delete answers with (the rest is for people).
#[derive(serde::Deserialize)]
struct Deleted {
    deleted_runs: u64,
}

/// What the client needs of a problem object; other fields are optional,
/// so that any RFC 9457 body with a `code` is understood.
#[derive(serde::Deserialize)]
struct ProblemBody {
    code: String,
    detail: String,
}

fn problem(url: &str, status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ProblemBody>(body) {
        Ok(p) => ClientError::Problem {
            status,
            code: ProblemCode::parse(&p.code),
            name: p.code,
            detail: p.detail,
        },
        Err(_) => ClientError::Protocol {
            url: url.to_owned(),
            message: format!("status {status} with a body that is not a problem object"),
        },
    }
}
