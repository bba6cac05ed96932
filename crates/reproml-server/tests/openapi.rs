//! The OpenAPI document against the wire types of `reproml-api`, field by
//! field: every field a type sends is documented, every documented field
//! exists, every required field is always sent, and the problem codes are
//! the same list.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use reproml_api::{
    Experiment, Health, ImageShape, Normalization, Problem, ProblemCode, RecordedRun, RunSeed,
    SplitHeader, SplitOrder,
};
use reproml_core::run::sample_result;
use reproml_core::split::{SplitName, SubsetLimits};
use reproml_core::{ExperimentSpec, RunIndex, Seed, SeedPolicy, SplitSeed};
use serde_json::{Value, json};

fn doc() -> Value {
    serde_json::from_str(reproml_server::OPENAPI).unwrap()
}

/// The schema at `#/components/schemas/NAME`.
fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("the OpenAPI document has no schema {name}"))
}

/// Follows `$ref`s and merges `allOf`: (properties with their schemas, required).
fn flatten(doc: &Value, schema: &Value) -> (Vec<(String, Value)>, BTreeSet<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return flatten(doc, component(doc, name));
    }
    let mut props = Vec::new();
    let mut required = BTreeSet::new();
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            let (p, r) = flatten(doc, part);
            props.extend(p);
            required.extend(r);
        }
    }
    if let Some(map) = schema.get("properties").and_then(Value::as_object) {
        props.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(list) = schema.get("required").and_then(Value::as_array) {
        required.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    (props, required)
}

/// Checks a value's JSON type and, where the schema lists them, that it is
/// one of the allowed values.
fn check_value(schema: &Value, value: &Value, path: &str) {
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("{path}: unknown schema type {other}"),
        };
        assert!(ok, "{path}: documented as {kind}, sent as {value}");
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        assert!(
            allowed.contains(value),
            "{path}: {value} is not one of {allowed:?}"
        );
    }
}

/// Checks `value` against `schema` at `path`, recursing into objects.
/// With `exact`, every documented property must be present too (samples
/// are built with every optional field set).
fn check(doc: &Value, schema: &Value, value: &Value, path: &str, exact: bool) {
    let Some(object) = value.as_object() else {
        return;
    };
    let (props, required) = flatten(doc, schema);
    if props.is_empty() {
        return;
    }
    let documented: BTreeSet<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    let sent: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let undocumented: Vec<_> = sent.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "{path}: sent but not documented: {undocumented:?}"
    );
    let missing: Vec<_> = required
        .iter()
        .filter(|k| !sent.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{path}: required but not sent: {missing:?}"
    );
    if exact {
        let absent: Vec<_> = documented.difference(&sent).collect();
        assert!(
            absent.is_empty(),
            "{path}: documented but never sent: {absent:?}"
        );
    }
    for (key, sub) in &props {
        if let Some(v) = object.get(key) {
            check_value(sub, v, &format!("{path}.{key}"));
            check(doc, sub, v, &format!("{path}.{key}"), exact);
            if let (Some(items), Some(list)) = (sub.get("items"), v.as_array()) {
                for (i, item) in list.iter().enumerate() {
                    check_value(items, item, &format!("{path}.{key}[{i}]"));
                    check(doc, items, item, &format!("{path}.{key}[{i}]"), exact);
                }
            }
        }
    }
}

/// A spec with every optional field set, so that every key is sent.
fn full_spec() -> ExperimentSpec {
    let mut spec = ExperimentSpec::new(
        "e".parse().unwrap(),
        "lenet5".parse().unwrap(),
        "digits".parse().unwrap(),
        2,
    );
    spec.description = "every field".into();
    spec.subset = SubsetLimits {
        train: Some(10),
        test: Some(5),
        validation: Some(5),
    };
    spec
}

#[test]
fn every_wire_type_matches_its_schema_field_by_field() {
    let doc = doc();
    let mut result = sample_result(Seed::new(7), 0.5, 2);
    result
        .artifact
        .details
        .insert("fault".into(), "none".into());
    let samples: Vec<(&str, Value)> = vec![
        (
            "Experiment",
            serde_json::to_value(Experiment {
                spec: full_spec(),
                seeds: vec![Seed::new(1), Seed::new(2)],
                created_at: "2026-11-27T00:00:00Z".into(),
            })
            .unwrap(),
        ),
        (
            "RunSeed",
            serde_json::to_value(RunSeed {
                experiment: "e".parse().unwrap(),
                run: RunIndex::new(1),
                seed: Seed::new(2),
                seed_policy: SeedPolicy::PerRun,
                split_seed: SplitSeed::from_first(Seed::new(1)),
            })
            .unwrap(),
        ),
        ("RunResult", serde_json::to_value(&result).unwrap()),
        (
            "VariantProgress",
            serde_json::to_value(reproml_api::VariantProgress {
                experiment: "e".parse().unwrap(),
                variant: "buggy".parse().unwrap(),
                recorded: 3,
                first_recorded_at: Some("2026-11-27T00:00:00Z".into()),
                last_recorded_at: Some("2026-11-27T00:01:00Z".into()),
                artifact: Some(result.artifact.clone()),
                failing: 1,
                failure_reports: 2,
                last_error: Some("out of memory".into()),
                last_failed_at: Some("2026-11-27T00:02:00Z".into()),
            })
            .unwrap(),
        ),
        (
            "RunFailure",
            serde_json::to_value(reproml_api::RunFailure::new(Seed::new(2), "out of memory"))
                .unwrap(),
        ),
        (
            "FailureRecord",
            serde_json::to_value(reproml_api::FailureRecord {
                experiment: "e".parse().unwrap(),
                variant: "buggy".parse().unwrap(),
                run: RunIndex::new(1),
                reports: 2,
                last_error: "out of memory".into(),
                last_failed_at: "2026-11-27T00:02:00Z".into(),
                recorded: false,
            })
            .unwrap(),
        ),
        (
            "Run",
            serde_json::to_value(RecordedRun {
                experiment: "e".parse().unwrap(),
                variant: "buggy".parse().unwrap(),
                run: RunIndex::new(0),
                recorded_at: "2026-11-27T00:00:00Z".into(),
                result,
            })
            .unwrap(),
        ),
        (
            "Health",
            serde_json::to_value(Health {
                status: "ok".into(),
                version: "0".into(),
                api: reproml_api::API_VERSION.into(),
            })
            .unwrap(),
        ),
        (
            "SplitHeader",
            serde_json::to_value(SplitHeader {
                experiment: "e".parse().unwrap(),
                run: RunIndex::new(0),
                split: SplitName::Train,
                seed: Seed::new(1),
                examples: 3,
                shape: ImageShape {
                    channels: 1,
                    height: 8,
                    width: 8,
                },
                classes: 10,
                normalization: Normalization {
                    max_value: 16,
                    mean: vec![0.3],
                    std: vec![0.4],
                },
                dataset_digest: "0".repeat(64),
                order: SplitOrder::Epoch0,
            })
            .unwrap(),
        ),
        ("Problem", {
            let mut p = Problem::new(ProblemCode::ExperimentConflict, "Conflict", "differs");
            p.extra
                .insert("differences".into(), json!(["epochs: 1 → 2"]));
            p.extra.insert("violations".into(), json!(["x"]));
            let artifact = json!({"kind": "builtin", "name": "a", "details": {"fault": "none"}});
            p.extra.insert("recorded_artifact".into(), artifact.clone());
            p.extra.insert("given_artifact".into(), artifact);
            serde_json::to_value(p).unwrap()
        }),
    ];
    for (name, value) in &samples {
        check(&doc, component(&doc, name), value, name, true);
    }
}

#[test]
fn the_problem_codes_are_the_documented_ones() {
    let doc = doc();
    let listed: BTreeSet<&str> = component(&doc, "Problem")
        .pointer("/properties/code/enum")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let known: BTreeSet<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, known);
    let protocol = include_str!("../../../docs/protocol.md");
    for code in &known {
        assert!(
            protocol.contains(&format!("`{code}`")),
            "docs/protocol.md does not list {code}"
        );
    }
}

#[test]
fn the_schema_names_exactly_the_models_the_server_accepts() {
    let doc = doc();
    let pattern = component(&doc, "ExperimentSpec")
        .pointer("/properties/model/pattern")
        .and_then(Value::as_str)
        .unwrap();
    let alternatives: BTreeSet<&str> = pattern
        .trim_start_matches("^(")
        .trim_end_matches(")$")
        .split('|')
        .filter(|a| !a.starts_with("custom:"))
        .collect();
    let accepted: BTreeSet<&str> = reproml_core::spec::BUILTIN_MODELS.iter().copied().collect();
    assert_eq!(alternatives, accepted);
}
