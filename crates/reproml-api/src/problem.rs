//! Problems as the API reports them: RFC 9457 problem details
//! (`application/problem+json`) with a stable, machine-readable `code`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal),)*) => {
        /// Every problem code the server answers with; clients match on these,
        /// never on the text of `detail`. Each code has one HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ProblemCode {
            $($(#[$doc])* #[serde(rename = $code)] $variant,)*
            /// A code this client does not know (a newer server).
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl ProblemCode {
            /// Every known code, in the order of `docs/protocol.md`.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];

            /// The code named `text`; [`ProblemCode::Unknown`] for a code this
            /// version does not know.
            pub fn parse(text: &str) -> ProblemCode {
                match text {
                    $($code => ProblemCode::$variant,)*
                    _ => ProblemCode::Unknown,
                }
            }

            /// The code as sent, e.g. `seed_mismatch`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $code,)*
                    ProblemCode::Unknown => "unknown",
                }
            }

            /// The HTTP status that goes with the code.
            pub fn status(self) -> u16 {
                match self {
                    $(ProblemCode::$variant => $status,)*
                    ProblemCode::Unknown => 500,
                }
            }
        }
    };
}

problem_codes! {
    /// The body is not JSON.
    MalformedJson = ("malformed_json", 400),
    /// An identifier breaks the identifier rule.
    BadIdentifier = ("bad_identifier", 400),
    /// A run index is not a whole number.
    BadRunIndex = ("bad_run_index", 400),
    /// The query string cannot be read.
    BadQuery = ("bad_query", 400),
    /// An unknown `format`.
    BadFormat = ("bad_format", 400),
    /// The body cannot be read.
    BadBody = ("bad_body", 400),
    /// The server needs a token and none was sent.
    MissingToken = ("missing_token", 401),
    /// The token sent is not the server's.
    BadToken = ("bad_token", 401),
    /// Deleting is off: the server has no token and was not started with
    /// `--allow-delete`.
    DeleteForbidden = ("delete_forbidden", 403),
    /// No such experiment.
    ExperimentNotFound = ("experiment_not_found", 404),
    /// The experiment has no such variant.
    VariantNotFound = ("variant_not_found", 404),
    /// The experiment has no such run.
    RunNotFound = ("run_not_found", 404),
    /// No such split.
    SplitNotFound = ("split_not_found", 404),
    /// No data set with this digest.
    DatasetNotFound = ("dataset_not_found", 404),
    /// No such path.
    RouteNotFound = ("route_not_found", 404),
    /// The path does not take this method.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// The experiment exists with other attributes.
    ExperimentConflict = ("experiment_conflict", 409),
    /// The run has another result recorded.
    ResultConflict = ("result_conflict", 409),
    /// The seed sent is not the run's.
    SeedMismatch = ("seed_mismatch", 409),
    /// The result comes from another artifact than the variant's runs.
    ArtifactConflict = ("artifact_conflict", 409),
    /// A registered data set's files changed since they were imported.
    DatasetChanged = ("dataset_changed", 409),
    /// The body did not arrive within the body-read limit.
    BodyTimeout = ("body_timeout", 408),
    /// The body is over the limit (said as soon as `Content-Length` says so).
    BodyTooLarge = ("body_too_large", 413),
    /// The body is not sent as JSON.
    UnsupportedMediaType = ("unsupported_media_type", 415),
    /// The JSON has an unknown field or a wrong type.
    InvalidBody = ("invalid_body", 422),
    /// The spec breaks a rule (with `violations`).
    InvalidSpec = ("invalid_spec", 422),
    /// The result breaks a rule (with `violations`).
    InvalidResult = ("invalid_result", 422),
    /// A failure report breaks a rule (with `violations`): an empty or too
    /// long error.
    InvalidFailure = ("invalid_failure", 422),
    /// The challenge's data set cannot be loaded.
    DatasetUnavailable = ("dataset_unavailable", 422),
    /// The challenge has no official split.
    NoOfficialSplit = ("no_official_split", 422),
    /// The data set is too small for the split.
    SplitImpossible = ("split_impossible", 422),
    /// The experiment's runs cannot be compared or drawn yet (no runs, a
    /// side without runs, variants to name).
    NothingToCompare = ("nothing_to_compare", 409),
    /// An `Expect` other than `100-continue`.
    ExpectationFailed = ("expectation_failed", 417),
    /// A fault of the server; it goes on serving.
    Internal = ("internal", 500),
    /// Every connection slot is serving a request, or the database is held
    /// by another process: try again after `Retry-After` seconds.
    ServerBusy = ("server_busy", 503),
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem object as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code.
    pub code: ProblemCode,
    /// What went wrong and what to do.
    pub detail: String,
    /// Fields some problems add (`violations`, `differences`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Problem {
    /// A problem with `code`'s status; `title` is the status's reason phrase.
    pub fn new(code: ProblemCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://reproml.invalid/problems/{code}"),
            title: title.to_owned(),
            status: code.status(),
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_names_and_unknown_ones_are_kept_apart() {
        for &code in ProblemCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ProblemCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.status()));
        }
        let future: ProblemCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(future, ProblemCode::Unknown);
        assert_eq!(
            ProblemCode::parse("seed_mismatch"),
            ProblemCode::SeedMismatch
        );
        assert_eq!(ProblemCode::parse("quota_exceeded"), ProblemCode::Unknown);
    }

    #[test]
    fn extra_fields_are_flattened() {
        let mut p = Problem::new(ProblemCode::InvalidSpec, "Unprocessable Entity", "bad");
        p.extra
            .insert("violations".into(), serde_json::json!(["x"]));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["violations"][0], "x");
        assert_eq!(
            json["type"],
            "https://reproml.invalid/problems/invalid_spec"
        );
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), p);
    }
}
