//! The server over real sockets: idle and slow connections cannot lock
//! clients out, and bodies that are too large, expected wrongly or never
//! sent are answered early.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reproml_server::{EmbeddedServer, Limits, ServerConfig};

const TOKEN: &str = "a-token-of-some-length";

fn server(name: &str, limits: Limits) -> (EmbeddedServer, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("reproml-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("c.db"),
        master_seed: Some(1),
        token: Some(TOKEN.into()),
        limits,
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    (server, dir)
}

fn addr(server: &EmbeddedServer) -> String {
    server.url()["http://".len()..].to_owned()
}

/// Sends `request` on a new connection and returns the status line of the
/// answer (empty when the server closed without answering).
fn status_of(addr: &str, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

fn health(addr: &str) -> (String, Duration) {
    let started = Instant::now();
    let status = status_of(
        addr,
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    (status, started.elapsed())
}

#[test]
fn idle_and_slowloris_sockets_do_not_lock_clients_out() {
    let (server, dir) = server("flood", Limits::default());
    let addr = addr(&server);
    // 1,000 sockets that never send a byte (no token needed for that)...
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // ...and 300 that send a request head one byte at a time, never ending it.
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /v1/experiments HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    for round in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(b"a");
        }
        let (status, took) = health(&addr);
        assert_eq!(status, "HTTP/1.1 200 OK", "round {round}");
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Authenticated API calls get through too.
    let request = format!(
        "GET /v1/experiments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(status_of(&addr, &request), "HTTP/1.1 200 OK");
    idle.clear();
    slow.clear();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bodies_that_never_arrive_do_not_lock_clients_out_either() {
    let (server, dir) = server("slowbody", Limits::default());
    let addr = addr(&server);
    // More sockets than the connection limit (1,024), each with a whole
    // request head announcing a body it never sends.
    let head = format!(
        "POST /v1/experiments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n"
    );
    let mut held: Vec<TcpStream> = (0..1100)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..3 {
        let (status, took) = health(&addr);
        assert_eq!(status, "HTTP/1.1 200 OK", "round {round}");
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
    }
    held.clear();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_head_never_finished_is_closed_after_the_header_timeout() {
    let (server, dir) = server(
        "head",
        Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
    );
    let mut conn = TcpStream::connect(addr(&server)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = conn.read(&mut buf);
    assert!(
        matches!(read, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408"),
        "{read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed by the timeout, not the test's"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bodies_too_large_expected_wrongly_or_never_sent_are_answered_early() {
    let (server, dir) = server(
        "body",
        Limits {
            body_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
    );
    let addr = addr(&server);
    let head = |extra: &str| {
        format!(
            "POST /v1/experiments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
    };
    // 6 MiB announced and never sent: 413 at once, not after a minute.
    let started = Instant::now();
    let status = status_of(&addr, &head("Content-Length: 6291456\r\n"));
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The same behind `Expect: 100-continue`: no `100 Continue` first.
    let status = status_of(
        &addr,
        &head("Content-Length: 6291456\r\nExpect: 100-continue\r\n"),
    );
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let status = status_of(
        &addr,
        &head("Content-Length: 2\r\nExpect: something-else\r\n"),
    );
    assert_eq!(status, "HTTP/1.1 417 Expectation Failed");
    // A small body announced, a part sent, the rest never: 408.
    let status = status_of(&addr, &(head("Content-Length: 100\r\n") + "{\"id\":"));
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    // And the server still serves.
    assert_eq!(health(&addr).0, "HTTP/1.1 200 OK");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
