//! Split streams made by the independent Python implementation of
//! `docs/protocol.md` section 8 (`reproml-core/tests/vectors`): this
//! reader accepts every version, reads the same header and records, and
//! refuses any one-byte change (every byte of versions 2 and 3, the records
//! and checksums of version 1).
#![allow(clippy::unwrap_used)] // fixture access: a malformed fixture should panic loudly

use reproml_data::wire::{Version, decode};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    split_streams: Vec<StreamVector>,
}

#[derive(Deserialize)]
struct StreamVector {
    version: u8,
    header: serde_json::Value,
    records: Vec<(u32, u8, Vec<u8>)>,
    stream: String,
}

fn vectors() -> Vec<StreamVector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../reproml-core/tests/vectors/protocol-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Vectors>(&text)
        .unwrap()
        .split_streams
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn streams_of_every_version_decode_to_their_header_and_records() {
    let all = vectors();
    assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
    for v in &all {
        let split = decode(&unhex(&v.stream)).unwrap();
        let version = [Version::V1, Version::V2, Version::V3][usize::from(v.version) - 1];
        assert_eq!(split.version, version);
        assert_eq!(serde_json::to_value(&split.header).unwrap(), v.header);
        let records: Vec<_> = (0..split.len())
            .map(|k| (split.index(k), split.label(k), split.image(k).to_vec()))
            .collect();
        assert_eq!(records, v.records);
    }
}

#[test]
fn any_changed_byte_of_a_version_2_or_3_stream_is_refused() {
    for v in vectors().into_iter().filter(|v| v.version >= 2) {
        let good = unhex(&v.stream);
        for at in 0..good.len() {
            for flip in [0x01, 0x02, 0x10, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                assert!(
                    decode(&bad).is_err(),
                    "version {}: byte {at} ^ {flip:#04x} accepted",
                    v.version
                );
            }
        }
    }
}
