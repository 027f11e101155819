//! `fleet-load`: N concurrent FleetLock clients (tokio, hyper, keep-alive) against
//! `cairn-fleet serve` and one etcd member on 127.0.0.1, beside the same load against a
//! minimal reference: acquire and release each written as one etcd transaction, sent straight
//! to etcd's v3 JSON gateway (no cairn-fleet, no lease, no lost-host bookkeeping).
//!
//! ```text
//! fleet-load [--fleet target/release/cairn-fleet] [--clients 50,200] [--cycles 5]
//!            [--slots 10] [--limit-secs 60]
//! ```
//!
//! Each client does `--cycles` cycles of: pre-reboot until granted (10 ms pause after a 409),
//! then steady-state. Every side stops at `--limit-secs` whatever is left. Per side: requests/s,
//! p50/p99 latency of one request, 409s (no slot; for the reference these are exactly its
//! failed compare-transactions), 5xx answers (cairn-fleet's `contention`, after 12
//! conflicting transactions in a row, or `etcd_unavailable`), other errors, and etcd writes
//! (Δrevision: each successful write transaction moves it by one). cairn-fleet's individual
//! conflicting transactions that a retry then won are NOT counted: it exposes no counter.
//! Prints a table and a last line `RESULT {json}`. Loopback only; it starts and kills its own
//! processes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

type Http = Client<HttpConnector, Full<Bytes>>;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Args {
    fleet: PathBuf,
    clients: Vec<usize>,
    cycles: usize,
    slots: usize,
    limit: Duration,
}

fn args() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        fleet: root.join("target/release/cairn-fleet"),
        clients: vec![50, 200],
        cycles: 5,
        slots: 10,
        limit: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--fleet" => a.fleet = PathBuf::from(v),
            "--clients" => {
                a.clients = v
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--clients")?
            }
            "--cycles" => a.cycles = v.parse().context("--cycles")?,
            "--slots" => a.slots = v.parse().context("--slots")?,
            "--limit-secs" => a.limit = Duration::from_secs(v.parse().context("--limit-secs")?),
            _ => bail!("unknown argument {k}"),
        }
    }
    if a.slots == 0 || a.cycles == 0 || a.clients.contains(&0) {
        bail!("--slots, --cycles and --clients must be positive");
    }
    Ok(a)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn post(http: &Http, url: &str, fleet: bool, body: String) -> Result<(u16, Vec<u8>)> {
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    if fleet {
        req = req.header("fleet-lock-protocol", "true");
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let resp = tokio::time::timeout(Duration::from_secs(20), http.request(req))
        .await
        .context("request timed out")??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

/// The store's revision: every write transaction moves it by one.
async fn etcd_revision(http: &Http, etcd: &str) -> Result<i64> {
    let (_, body) = post(
        http,
        &format!("{etcd}/v3/kv/range"),
        false,
        serde_json::json!({"key": b64("/"), "limit": 1}).to_string(),
    )
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["header"]["revision"]
        .as_str()
        .context("no revision")?
        .parse()?)
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Fleet,
    Reference,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    denied: u64,
    cycles: u64,
    errors: u64,
    server_errors: u64,
}

/// One client: `cycles` acquire/release cycles, until `deadline`.
async fn host(
    http: Http,
    side: Side,
    base: String,
    i: usize,
    slots: usize,
    cycles: usize,
    deadline: Instant,
) -> Tally {
    let id = format!("h{i}");
    let mut t = Tally::default();
    let fleet_body = serde_json::json!({"client_params": {"id": id, "group": "bench"}}).to_string();
    'cycles: for _ in 0..cycles {
        // Acquire.
        let mut attempt = 0;
        let slot = loop {
            if Instant::now() > deadline {
                break 'cycles;
            }
            let slot = (i + attempt) % slots;
            let (url, body) = match side {
                Side::Fleet => (format!("{base}/v1/pre-reboot"), fleet_body.clone()),
                Side::Reference => {
                    let key = b64(&format!("/ref/slot/{slot}"));
                    (
                        format!("{base}/v3/kv/txn"),
                        serde_json::json!({
                            "compare": [{"result": "EQUAL", "target": "CREATE", "key": key,
                                         "create_revision": "0"}],
                            "success": [{"request_put": {"key": key, "value": b64(&id)}}],
                        })
                        .to_string(),
                    )
                }
            };
            let start = Instant::now();
            let r = post(&http, &url, side == Side::Fleet, body).await;
            t.latencies.push(start.elapsed());
            let granted = match (side, r) {
                (Side::Fleet, Ok((200, _))) => true,
                (Side::Fleet, Ok((409, _))) => false,
                (Side::Reference, Ok((200, b))) => serde_json::from_slice::<serde_json::Value>(&b)
                    .map(|v| v["succeeded"].as_bool() == Some(true))
                    .unwrap_or(false),
                (_, Ok((s, _))) if s >= 500 => {
                    t.server_errors += 1;
                    false
                }
                _ => {
                    t.errors += 1;
                    false
                }
            };
            if granted {
                break slot;
            }
            t.denied += 1;
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Release.
        let (url, body) = match side {
            Side::Fleet => (format!("{base}/v1/steady-state"), fleet_body.clone()),
            Side::Reference => {
                let key = b64(&format!("/ref/slot/{slot}"));
                (
                    format!("{base}/v3/kv/txn"),
                    serde_json::json!({
                        "compare": [{"result": "EQUAL", "target": "VALUE", "key": key,
                                     "value": b64(&id)}],
                        "success": [{"request_delete_range": {"key": key}}],
                    })
                    .to_string(),
                )
            }
        };
        let start = Instant::now();
        match post(&http, &url, side == Side::Fleet, body).await {
            Ok((200, _)) => t.cycles += 1,
            _ => t.errors += 1,
        }
        t.latencies.push(start.elapsed());
    }
    t
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn run_side(
    side: Side,
    base: &str,
    etcd: &str,
    n: usize,
    a: &Args,
) -> Result<serde_json::Value> {
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(n)
        .build_http();
    let rev0 = etcd_revision(&http, etcd).await?;
    let start = Instant::now();
    let deadline = start + a.limit;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(host(
                http.clone(),
                side,
                base.to_string(),
                i,
                a.slots,
                a.cycles,
                deadline,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies.extend(t.latencies);
        all.denied += t.denied;
        all.cycles += t.cycles;
        all.errors += t.errors;
        all.server_errors += t.server_errors;
    }
    let secs = start.elapsed().as_secs_f64();
    let rev1 = etcd_revision(&http, etcd).await?;
    all.latencies.sort();
    let requests = all.latencies.len();
    Ok(serde_json::json!({
        "side": if side == Side::Fleet { "cairn-fleet" } else { "etcd txn" },
        "clients": n,
        "requests": requests,
        "seconds": secs,
        "rps": requests as f64 / secs,
        "p50_ms": pct(&all.latencies, 0.50),
        "p99_ms": pct(&all.latencies, 0.99),
        "denied_409": all.denied,
        "cycles_done": all.cycles,
        "cycles_wanted": n * a.cycles,
        "errors": all.errors,
        "etcd_writes": rev1 - rev0,
        "errors_5xx": all.server_errors,
        "hit_limit": secs >= a.limit.as_secs_f64(),
    }))
}

/// One etcd member and cairn-fleet on it, in `dir`.
fn start(dir: &std::path::Path, a: &Args, n: usize) -> Result<(Proc, Proc, String, String)> {
    let (cp, pp) = (free_port()?, free_port()?);
    let client = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let log = File::create(dir.join("etcd.log"))?;
    let etcd = Proc(
        Command::new("etcd")
            .args(["--name", "b0", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("b0={peer}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd")?,
    );
    let cfg = dir.join("fleet.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nmax_connections = {}\n[etcd]\nendpoints = [\"{client}\"]\n\
             prefix = \"/bench/\"\ntimeout = \"5s\"\n\n[groups.bench]\nslots = {}\n\
             reboot_timeout = \"300s\"\n",
            n + 64,
            a.slots
        ),
    )?;
    // etcd takes a moment to answer; cairn-fleet serves at once and asks it per request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", cp)).is_err() {
        if Instant::now() > deadline {
            bail!("etcd did not listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut child = Command::new(&a.fleet)
        .args(["serve", "--json", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(dir.join("fleet.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", a.fleet.display()))?;
    let mut line = String::new();
    let out = child.stdout.take().context("no stdout")?;
    BufReader::new(out).read_line(&mut line)?;
    let fleet = Proc(child);
    let v: serde_json::Value = serde_json::from_str(&line).context("cairn-fleet's first line")?;
    let addr = v["listen"].as_str().context("no listen")?.to_string();
    Ok((etcd, fleet, client, format!("http://{addr}")))
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let mut results = Vec::new();
    println!(
        "{:>7} {:>12} {:>9} {:>8} {:>8} {:>8} {:>7} {:>5} {:>9} {:>11}",
        "clients",
        "side",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "409s",
        "5xx",
        "other err",
        "etcd writes"
    );
    for &n in &a.clients {
        let dir = tempfile::tempdir()?;
        let (_etcd, _fleet, etcd, fleet) = start(dir.path(), &a, n)?;
        // Wait until etcd answers through the gateway.
        let warm: Http = Client::builder(TokioExecutor::new()).build_http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while etcd_revision(&warm, &etcd).await.is_err() {
            if Instant::now() > deadline {
                bail!("etcd did not answer");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The reference first, then cairn-fleet, on the same member (separate prefixes).
        for (side, base) in [(Side::Reference, &etcd), (Side::Fleet, &fleet)] {
            let r = run_side(side, base, &etcd, n, &a).await?;
            println!(
                "{:>7} {:>12} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>7} {:>5} {:>9} {:>11}",
                n,
                r["side"].as_str().unwrap_or_default(),
                r["requests"],
                r["rps"].as_f64().unwrap_or_default(),
                r["p50_ms"].as_f64().unwrap_or_default(),
                r["p99_ms"].as_f64().unwrap_or_default(),
                r["denied_409"],
                r["errors_5xx"],
                r["errors"],
                r["etcd_writes"]
            );
            results.push(r);
        }
    }
    println!(
        "RESULT {}",
        serde_json::json!({"slots": a.slots, "cycles": a.cycles, "runs": results})
    );
    Ok(())
}
