//! A byte-flipping proxy between the runner and a real server: whatever
//! byte of a split stream it changes (magic, header length, header, chunk
//! length, records, chunk checksum, end of chunks, split checksum), the run
//! fails as corrupt, nothing is recorded and nothing panics.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use reproml_client::Client;
use reproml_core::fault::Fault;
use reproml_core::split::SubsetLimits;
use reproml_core::{ExperimentSpec, RunIndex, VariantLabel};
use reproml_runner::{Event, VariantPlan, train_variant};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};

/// Which byte of which split's stream to change, and how.
#[derive(Clone, Copy, Debug)]
struct Flip {
    split: &'static str,
    offset: usize,
    xor: u8,
}

/// Forwards one request per connection to `upstream` and changes one byte
/// of the body of the answers to split requests, as told by `flip`.
fn start_proxy(upstream: SocketAddr, flip: Arc<Mutex<Option<Flip>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let flip = flip.clone();
            std::thread::spawn(move || {
                let _ = relay(conn, upstream, &flip);
            });
        }
    });
    addr
}

fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    flip: &Mutex<Option<Flip>>,
) -> std::io::Result<()> {
    let (head, body) = read_request(&mut client)?;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    // One request per connection keeps the byte offsets simple.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let wanted = *flip.lock().unwrap();
    if let Some(f) = wanted
        && request_line.contains(&format!("/data/{}?", f.split))
    {
        let body_start = find(&answer, b"\r\n\r\n").unwrap() + 4;
        answer[body_start + f.offset] ^= f.xor;
    }
    client.write_all(&answer)
}

/// The request head (as text) and body (by its `Content-Length`).
fn read_request(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = find(&bytes, b"\r\n\r\n") {
            break at;
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&buf[..n]);
    }
    Ok((head, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Offsets in each part of a version-2 or 3 stream with `stream`'s layout
/// (one chunk, as the small splits here have): the first, middle and last
/// bytes of each part, and every byte of the header, whose values (class
/// count, normalisation, digest) a reader cannot judge on its own.
fn offsets_by_part(stream: &[u8]) -> Vec<(&'static str, usize)> {
    let sum = if &stream[..8] == b"RPMLSPL3" { 16 } else { 32 };
    let header_len = u32::from_le_bytes(stream[8..12].try_into().unwrap()) as usize;
    let chunk = 12 + header_len;
    let count = u32::from_le_bytes(stream[chunk..chunk + 4].try_into().unwrap()) as usize;
    let records = chunk + 4;
    let record_bytes = stream.len() - records - sum - 4 - sum;
    assert!(
        count > 0 && record_bytes.is_multiple_of(count),
        "one chunk expected"
    );
    let checksum = records + record_bytes;
    let end = checksum + sum;
    let trailer = end + 4;
    assert_eq!(trailer + sum, stream.len());
    let parts = [
        ("magic", 0, 8),
        ("header length", 8, 12),
        ("header", 12, chunk),
        ("chunk length", chunk, records),
        ("records", records, checksum),
        ("chunk checksum", checksum, end),
        ("end of chunks", end, trailer),
        ("split checksum", trailer, stream.len()),
    ];
    let mut offsets: Vec<_> = parts
        .into_iter()
        .flat_map(|(name, from, to)| [from, (from + to) / 2, to - 1].map(|at| (name, at)))
        .collect();
    offsets.extend((12..chunk).map(|at| ("header", at)));
    offsets
}

#[test]
fn every_flipped_byte_is_rejected_and_nothing_is_recorded() {
    let dir = std::env::temp_dir().join(format!("reproml-proxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("p.db"),
        master_seed: Some(9),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    let direct = Client::new(&server.url(), None);
    let mut spec = ExperimentSpec::new(
        "proxied".parse().unwrap(),
        "mlp".parse().unwrap(),
        "digits".parse().unwrap(),
        1,
    );
    spec.runs = 1;
    spec.subset = SubsetLimits {
        train: Some(40),
        test: Some(20),
        validation: None,
    };
    let experiment = direct.create_experiment(&spec).unwrap().0;

    let flip = Arc::new(Mutex::new(None));
    let upstream: SocketAddr = server.url()["http://".len()..].parse().unwrap();
    let proxy = start_proxy(upstream, flip.clone());
    let proxied = Client::new(&format!("http://{proxy}"), None).with_retries(0);
    let variant: VariantLabel = "v".parse().unwrap();
    let run = RunIndex::new(0);
    let plan = VariantPlan {
        experiment: &experiment,
        variant: &variant,
        runs: reproml_core::selection::RunSelection::from_indices([run.get()]),
        jobs: 1,
        threads: 1,
        fault: &Fault::None,
    };

    let seed = direct.seed(&spec.id, run).unwrap().seed;
    let mut tried = 0;
    let mut header_bytes = 0;
    for split in ["train", "test"] {
        // The stream as the server sends it to the client, to find the
        // parts' offsets.
        let clean = {
            let mut conn = TcpStream::connect(upstream).unwrap();
            let request = format!(
                "GET /v1/experiments/proxied/runs/0/data/{split}?seed={seed} HTTP/1.1\r\nHost: x\r\nAccept: {}\r\nConnection: close\r\n\r\n",
                reproml_data::wire::ACCEPT_FULL
            );
            conn.write_all(request.as_bytes()).unwrap();
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).unwrap();
            answer.split_off(find(&answer, b"\r\n\r\n").unwrap() + 4)
        };
        assert_eq!(&clean[..8], b"RPMLSPL3");
        header_bytes += u32::from_le_bytes(clean[8..12].try_into().unwrap()) as usize;
        for (part, offset) in offsets_by_part(&clean) {
            for xor in [0x01, 0x80, 0xff] {
                *flip.lock().unwrap() = Some(Flip { split, offset, xor });
                let errors = Mutex::new(Vec::new());
                let outcome = train_variant(&proxied, &plan, &|e: Event| {
                    if let Event::RunFailed { error, .. } = e {
                        errors.lock().unwrap().push(error);
                    }
                })
                .unwrap();
                let what = format!("{split} stream, {part} byte {offset} ^ {xor:#04x}");
                assert_eq!(outcome.failed, [run], "{what}: not rejected");
                let errors = errors.into_inner().unwrap();
                assert!(
                    errors.len() == 1 && errors[0].contains("rejected"),
                    "{what}: {errors:?}"
                );
                tried += 1;
            }
        }
    }
    assert_eq!(tried, (2 * 8 * 3 + header_bytes) * 3);
    assert!(direct.runs(&spec.id, None).unwrap().is_empty());
    // Every failed attempt was reported to the server, for the dashboard.
    let failures = direct.failures(&spec.id).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].reports as usize, tried);
    assert!(failures[0].last_error.contains("rejected") && !failures[0].recorded);

    // Without a flip the same path records the run: the proxy itself is
    // faithful, so the rejections above were the flips'.
    *flip.lock().unwrap() = None;
    let outcome = train_variant(&proxied, &plan, &reproml_runner::quiet()).unwrap();
    assert_eq!(outcome.recorded, [run]);
    assert_eq!(direct.runs(&spec.id, None).unwrap().len(), 1);
    assert!(direct.failures(&spec.id).unwrap()[0].recorded);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
