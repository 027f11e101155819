//! Bad requests by the thousand (random bytes, truncated and mutated JSON, oversized bodies,
//! a missing or wrong protocol header, ids outside the alphabet, unknown groups, wrong
//! methods and paths, bodies and headers that stall): each gets a 4xx (a JSON
//! `{kind, value}` whenever the request was HTTP at all) or is timed out, none gets a slot,
//! the server keeps answering, and etcd's keys are exactly as before, revisions included.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dump, write_config, Etcd, Fleet, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const G: &str = "default";
const CASES: usize = 3000;
const SEED: u64 = 0x5eed_cafe_f1ee_7001;

/// xorshift64*: deterministic, so a failure can be replayed with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// What a case sends and what it may get back.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// After sending, keep the connection open without finishing the request.
    stalls: bool,
    /// The request is HTTP, so the answer must be a JSON `{kind, value}`.
    framed: bool,
    /// The server may close without answering (it stopped reading an oversized request).
    may_drop: bool,
}

fn request(method: &str, path: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn proto() -> Vec<String> {
    vec!["fleet-lock-protocol: true".into()]
}

fn body(id: &str, group: &str) -> Vec<u8> {
    serde_json::json!({"client_params": {"id": id, "group": group}})
        .to_string()
        .into_bytes()
}

/// Neither the id nor the group is acceptable, so one changed byte cannot make it valid.
const BASE: &[u8] = br#"{"client_params":{"id":"bad_id","group":"no_group"}}"#;

fn case(rng: &mut Rng, i: usize) -> Case {
    let plain = |name, bytes| Case {
        name,
        bytes,
        stalls: false,
        framed: true,
        may_drop: false,
    };
    let pre = "/v1/pre-reboot";
    match i % 16 {
        0 => {
            let n = 1 + rng.below(1500);
            let bytes = (0..n).map(|_| rng.next() as u8).collect();
            Case {
                framed: false,
                ..plain("random bytes", bytes)
            }
        }
        1 => {
            let n = 1 + rng.below(600);
            let alphabet = b"POST /v1-pre-reboot HTTP/1.1\r\n:{}\"abc\0\t ";
            let bytes = (0..n).map(|_| *rng.pick(alphabet)).collect();
            Case {
                framed: false,
                ..plain("random request-like text", bytes)
            }
        }
        2 => {
            let cut = rng.below(BASE.len());
            plain(
                "truncated JSON",
                request("POST", pre, &proto(), &BASE[..cut]),
            )
        }
        3 => {
            let mut b = BASE.to_vec();
            let at = rng.below(b.len());
            b[at] = rng.next() as u8;
            plain("mutated JSON", request("POST", pre, &proto(), &b))
        }
        4 => {
            let mut r = format!(
                "POST {pre} HTTP/1.1\r\nHost: fleet\r\nfleet-lock-protocol: true\r\n\
                 Content-Length: 10000000\r\n\r\n"
            )
            .into_bytes();
            r.extend(std::iter::repeat_n(b'{', 8192));
            Case {
                may_drop: true,
                ..plain("oversized body (declared)", r)
            }
        }
        5 => {
            let mut r = format!(
                "POST {pre} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\
                 fleet-lock-protocol: true\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            for _ in 0..6 {
                r.extend_from_slice(b"400\r\n");
                r.extend(std::iter::repeat_n(b' ', 0x400));
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            Case {
                may_drop: true,
                ..plain("oversized body (chunked)", r)
            }
        }
        6 => {
            // A valid body for a configured group: only the missing header stands in the way.
            let id = format!("nohdr{i}");
            plain(
                "no protocol header",
                request("POST", pre, &[], &body(&id, G)),
            )
        }
        7 => {
            let v = rng.pick(&["false", "", "1", "yes", "true true", "\"true\""]);
            let h = vec![format!("fleet-lock-protocol: {v}")];
            let id = format!("badhdr{i}");
            plain(
                "wrong protocol header",
                request("POST", pre, &h, &body(&id, G)),
            )
        }
        8 => {
            let long = "a".repeat(300);
            let bad = [
                "a_b", "a b", "é", "a/b", "", "a\0", "../x", "a%2Fb", "*", "\n", &long,
            ];
            let id = *rng.pick(&bad);
            plain(
                "id outside the alphabet",
                request("POST", pre, &proto(), &body(id, G)),
            )
        }
        9 => {
            let bad = ["de_fault", "default ", "", "/", "default/x", "déf"];
            let g = *rng.pick(&bad);
            let id = format!("badgroup{i}");
            plain(
                "group outside the alphabet",
                request("POST", pre, &proto(), &body(&id, g)),
            )
        }
        10 => {
            let g = *rng.pick(&["Default", "nope", "default.", "x"]);
            let id = format!("unknown{i}");
            plain(
                "unknown group",
                request("POST", pre, &proto(), &body(&id, g)),
            )
        }
        11 => {
            let id = format!("method{i}");
            let (m, p) = *rng.pick(&[
                ("GET", pre),
                ("PUT", pre),
                ("DELETE", "/v1/steady-state"),
                ("POST", "/v1/pre-reboot/"),
                ("POST", "/v2/pre-reboot"),
                ("POST", "/"),
                ("POST", "/V1/PRE-REBOOT"),
                ("POST", "/v1/pre-reboot/../pre-reboot"),
            ]);
            plain(
                "wrong method or path",
                request(m, p, &proto(), &body(&id, G)),
            )
        }
        12 => {
            let deep = "[".repeat(3000);
            let b = rng
                .pick(&[
                    r#"{"client_params":[]}"#,
                    r#"{"client_params":{"id":7,"group":"default"}}"#,
                    r#"{"client_params":{"id":"a","group":null}}"#,
                    r#"{"client_params":{"id":"a","id":"b","group":"default"}}"#,
                    r#"{"client_params":"id=a&group=default"}"#,
                    r#"null"#,
                    r#"{}"#,
                    "id=a&group=default",
                    &deep,
                ])
                .as_bytes()
                .to_vec();
            plain("wrong JSON types", request("POST", pre, &proto(), &b))
        }
        13 if i < 16 * 30 => {
            // The body never arrives: the server must time the request out.
            let mut r = format!(
                "POST {pre} HTTP/1.1\r\nHost: fleet\r\nfleet-lock-protocol: true\r\n\
                 Content-Length: 500\r\n\r\n"
            )
            .into_bytes();
            r.extend_from_slice(&body("stall", G)[..20]);
            Case {
                stalls: true,
                ..plain("stalled body", r)
            }
        }
        14 => {
            let b = b"{\"client_params\":{\"id\":\"\xff\xfe\",\"group\":\"default\"}}".to_vec();
            plain("invalid UTF-8", request("POST", pre, &proto(), &b))
        }
        _ => {
            let mut r = format!("POST {pre} HTTP/1.1\r\nHost: fleet\r\nX-Pad: ").into_bytes();
            r.extend(std::iter::repeat_n(b'x', 70_000));
            r.extend_from_slice(b"\r\n\r\n");
            Case {
                framed: false,
                may_drop: true,
                ..plain("oversized header", r)
            }
        }
    }
}

/// Sends `case`; returns (status, body) or None when the server closed without answering.
async fn send(addr: &str, case: &Case) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connecting to the server");
    // The server may stop reading early (an oversized request): that is its right.
    let _ = s.write_all(&case.bytes).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut raw)).await;
    assert!(
        read.is_ok(),
        "{}: the server neither answered nor closed within 6 s",
        case.name
    );
    let text = String::from_utf8_lossy(&raw);
    let end = text.find("\r\n\r\n")?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw[end + 4..].to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bad_requests_change_nothing() {
    let etcd = Etcd::start(1);
    let eps = etcd.endpoints().join(",");
    let config = etcd.dir().join("fleet.toml");
    write_config(
        &config,
        &etcd.endpoints(),
        G,
        2,
        "10m",
        "request_timeout = \"1s\"\nmax_body = 4096",
    );
    let mut server = Server::start(&config, "server");
    let addr = Arc::new(server.addr.clone());
    let fleet = Fleet::new();
    assert_eq!(fleet.pre(&addr, G, "holder").await.status, 200);
    let before = dump(&eps);
    assert_eq!(before.len(), 2, "{before:?}");

    let start = Instant::now();
    let mut rng = Rng(SEED);
    let cases: Vec<Case> = (0..CASES).map(|i| case(&mut rng, i)).collect();
    let limit = Arc::new(tokio::sync::Semaphore::new(48));
    let mut tasks = Vec::new();
    for c in cases {
        let (addr, limit) = (addr.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _p = limit.acquire_owned().await.unwrap();
            let t = Instant::now();
            let got = send(&addr, &c).await;
            (c, got, t.elapsed())
        }));
    }
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        let (c, got, took) = t.await.unwrap();
        let key = match &got {
            None => {
                assert!(
                    c.may_drop || !c.framed,
                    "{}: closed without an answer",
                    c.name
                );
                "closed".to_string()
            }
            Some((status, body)) => {
                assert!(
                    (400..500).contains(status),
                    "{}: HTTP {status} {}",
                    c.name,
                    String::from_utf8_lossy(body)
                );
                if c.framed {
                    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
                        panic!("{}: HTTP {status} body is not JSON ({e})", c.name)
                    });
                    assert!(
                        v["kind"].is_string() && v["value"].is_string(),
                        "{}: {v}",
                        c.name
                    );
                }
                if c.stalls {
                    assert_eq!(*status, 408, "{}", c.name);
                    assert!(took < Duration::from_secs(4), "{}: took {took:?}", c.name);
                }
                status.to_string()
            }
        };
        *by_status.entry(format!("{key} ({})", c.name)).or_default() += 1;
    }
    eprintln!("{CASES} bad requests in {:?}:", start.elapsed());
    for (k, n) in &by_status {
        eprintln!("  {n:5} {k}");
    }
    assert!(start.elapsed() < Duration::from_secs(90));

    // Slow loris: headers one byte at a time. The server closes them after request_timeout
    // and meanwhile still answers others.
    let mut loris = Vec::new();
    for _ in 0..40 {
        let addr = addr.clone();
        loris.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut s = TcpStream::connect(addr.as_str()).await.unwrap();
            let head =
                b"POST /v1/pre-reboot HTTP/1.1\r\nHost: fleet\r\nfleet-lock-protocol: true\r\n";
            for b in head.iter().cycle().take(40) {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                let mut buf = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) | Err(_) => {}
                }
            }
            t.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    assert_eq!(fleet.steady(&addr, G, "nobody").await.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for l in loris {
        let took = l.await.unwrap();
        assert!(
            took < Duration::from_secs(4),
            "a stalled connection lived {took:?}"
        );
    }

    // Nothing changed in etcd, and the server is alive and still grants.
    assert!(server.alive(), "{}", server.log());
    assert_eq!(dump(&eps), before, "bad requests changed etcd");
    assert_eq!(fleet.pre(&addr, G, "after").await.status, 200);
    assert_eq!(fleet.steady(&addr, G, "after").await.status, 200);
    assert_eq!(fleet.pre(&addr, G, "holder").await.status, 200);
}
