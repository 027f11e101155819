//! A client for etcd v3's JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/lease/…`),
//! the part of etcd's API cairn-fleet needs, over plain HTTP/1.1 with `hyper`.
//!
//! etcd 3.4 serves the gateway under both `/v3/` and `/v3beta/`; 3.5 dropped `/v3beta/`, so
//! only `/v3/` is used. Keys and values travel base64-encoded, 64-bit numbers as JSON strings.
//!
//! Each call goes to one member at a time, starting with the last one that answered; a member
//! that refuses the connection, times out or answers with a 5xx is skipped for the next one.
//! All reads are linearizable (etcd's default), so a member without quorum cannot answer
//! them: with a majority of the members down every call fails ([`Error::Unavailable`]), and
//! the coordinator grants nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// The largest gateway response read (a group's keys fit many times over).
const MAX_RESPONSE: usize = 16 << 20;

/// Why an etcd call failed.
#[derive(Debug)]
pub enum Error {
    /// No member answered in time (down, unreachable, or without quorum).
    Unavailable(String),
    /// A member answered with an error that another member would repeat.
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unavailable(why) => write!(f, "etcd is unavailable: {why}"),
            Error::Refused(why) => write!(f, "etcd refused the request: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A result of an etcd call.
pub type Result<T> = std::result::Result<T, Error>;

/// A client for a set of etcd members.
#[derive(Debug, Clone)]
pub struct Etcd {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    endpoints: Vec<String>,
    timeout: Duration,
    preferred: std::sync::Arc<AtomicUsize>,
}

/// One key as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(deserialize_with = "base64_bytes")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(default, deserialize_with = "base64_bytes")]
    pub value: Vec<u8>,
    /// The revision that created the key.
    #[serde(default, deserialize_with = "int64")]
    pub create_revision: i64,
    /// The revision that last changed the key.
    #[serde(default, deserialize_with = "int64")]
    pub mod_revision: i64,
    /// The lease the key is attached to, 0 for none.
    #[serde(default, deserialize_with = "int64")]
    pub lease: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "int64")]
    revision: i64,
}

#[derive(Debug, Deserialize)]
struct RangeResponse {
    header: Header,
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
struct TxnResponse {
    header: Header,
    #[serde(default)]
    succeeded: bool,
}

#[derive(Debug, Deserialize)]
struct LeaseGrantResponse {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    id: i64,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LeaseTtlResponse {
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    ttl: i64,
}

#[derive(Debug, Deserialize)]
struct GatewayError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    code: i64,
}

/// The keys under a prefix at one revision.
#[derive(Debug, Clone)]
pub struct Range {
    /// The store's revision when the range was read.
    pub revision: i64,
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Puts `value` at `key`, attached to `lease` (0 for none).
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The lease, 0 for none.
        lease: i64,
    },
    /// Deletes `key`, or every key with prefix `key` when `prefix` is set.
    Delete {
        /// The key or prefix.
        key: Vec<u8>,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
}

impl Op {
    fn to_json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => json!({"request_put": {
                "key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string()
            }}),
            Op::Delete { key, prefix: false } => {
                json!({"request_delete_range": {"key": B64.encode(key)}})
            }
            Op::Delete { key, prefix: true } => json!({"request_delete_range": {
                "key": B64.encode(key), "range_end": B64.encode(prefix_end(key))
            }}),
        }
    }
}

/// The end of the range of keys that start with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: "\0" means "to the end of the key space".
    vec![0]
}

impl Etcd {
    /// A client for `endpoints` (`http://HOST:PORT`), each call limited to `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Etcd {
            http,
            endpoints,
            timeout,
            preferred: std::sync::Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The members this client talks to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    async fn call<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        let body = Bytes::from(body.to_string());
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (first + i) % n;
            let base = &self.endpoints[idx];
            match self.call_one(base, path, body.clone()).await {
                Ok(v) => {
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(Attempt::Fatal(why)) => {
                    return Err(Error::Refused(format!("{base}{path}: {why}")));
                }
                Err(Attempt::Retry(why)) => {
                    log::debug!("etcd {base}{path}: {why}; trying the next member");
                    failures.push(format!("{base}: {why}"));
                }
            }
        }
        Err(Error::Unavailable(format!(
            "no member answered {path} ({}); check that a majority of the etcd members in \
             [etcd] endpoints are running",
            failures.join("; ")
        )))
    }

    async fn call_one<T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: Bytes,
    ) -> std::result::Result<T, Attempt> {
        let req = hyper::Request::post(format!("{base}{path}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Attempt::Fatal(format!("building the request: {e}")))?;
        let work = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| Attempt::Retry(format!("{e}")))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| Attempt::Retry(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, Attempt>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| Attempt::Retry(format!("no answer within {:?}", self.timeout)))??;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let (msg, code) = match serde_json::from_slice::<GatewayError>(&bytes) {
                Ok(e) if !e.error.is_empty() => (e.error, e.code),
                _ => (text.trim().to_string(), 0),
            };
            let why = format!("HTTP {status}: {msg}");
            // gRPC codes: 4 deadline exceeded, 8 resource exhausted, 13 internal (e.g. a
            // member still starting), 14 unavailable (no leader). Another member may do.
            return Err(
                if status.is_server_error() || matches!(code, 4 | 8 | 13 | 14) {
                    Attempt::Retry(why)
                } else {
                    Attempt::Fatal(why)
                },
            );
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Attempt::Fatal(format!(
                "unexpected answer ({e}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })
    }

    /// Every key that starts with `prefix`, read linearizably.
    pub async fn range_prefix(&self, prefix: &[u8]) -> Result<Range> {
        let r: RangeResponse = self
            .call(
                "/v3/kv/range",
                &json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok(Range {
            revision: r.header.revision,
            kvs: r.kvs,
        })
    }

    /// Runs `ops` if no key under `prefix` changed after `revision`; returns whether it did.
    ///
    /// The comparison is etcd's range compare, `mod_revision < revision + 1` over
    /// `[prefix, prefix_end)`: true when every key in the range is at most `revision` old,
    /// and when the range is empty. A key created, changed or re-created since makes it
    /// false; a key deleted since does not.
    pub async fn txn_unchanged_since(
        &self,
        prefix: &[u8],
        revision: i64,
        ops: &[Op],
    ) -> Result<bool> {
        let body = json!({
            "compare": [{
                "target": "MOD",
                "result": "LESS",
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix)),
                "mod_revision": (revision + 1).to_string(),
            }],
            "success": ops.iter().map(Op::to_json).collect::<Vec<_>>(),
            "failure": [],
        });
        let r: TxnResponse = self.call("/v3/kv/txn", &body).await?;
        log::debug!(
            "etcd txn at revision {}: {}",
            r.header.revision,
            if r.succeeded {
                "applied"
            } else {
                "compare failed"
            }
        );
        Ok(r.succeeded)
    }

    /// Puts `value` at `key` (no lease, no condition).
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let _: Value = self
            .call(
                "/v3/kv/put",
                &json!({"key": B64.encode(key), "value": B64.encode(value)}),
            )
            .await?;
        Ok(())
    }

    /// Deletes every key that starts with `prefix`.
    pub async fn delete_prefix(&self, prefix: &[u8]) -> Result<()> {
        let _: Value = self
            .call(
                "/v3/kv/deleterange",
                &json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok(())
    }

    /// Grants a lease of `ttl` (whole seconds, rounded up); returns its id.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<i64> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let r: LeaseGrantResponse = self
            .call(
                "/v3/lease/grant",
                &json!({"TTL": secs.to_string(), "ID": "0"}),
            )
            .await?;
        match r.error {
            Some(e) if !e.is_empty() => Err(Error::Refused(format!("lease grant: {e}"))),
            _ if r.id == 0 => Err(Error::Refused("lease grant returned no lease id".into())),
            _ => Ok(r.id),
        }
    }

    /// Revokes a lease and deletes its keys. A lease that no longer exists is no error.
    pub async fn lease_revoke(&self, id: i64) -> Result<()> {
        match self
            .call::<Value>("/v3/lease/revoke", &json!({"ID": id.to_string()}))
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Refused(why)) if why.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Seconds left on a lease, `None` when it has expired or does not exist.
    pub async fn lease_ttl(&self, id: i64) -> Result<Option<i64>> {
        let r: LeaseTtlResponse = self
            .call("/v3/lease/timetolive", &json!({"ID": id.to_string()}))
            .await?;
        Ok((r.ttl >= 0).then_some(r.ttl))
    }
}

enum Attempt {
    Retry(String),
    Fatal(String),
}

fn int64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        S(String),
        N(i64),
    }
    match Num::deserialize(d)? {
        Num::N(n) => Ok(n),
        Num::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn gateway_answers_parse() {
        let r: RangeResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","revision":"7"},"kvs":[{"key":"L2cvYQ==",
            "create_revision":"2","mod_revision":"5","version":"1","value":"eA==","lease":"99"}],
            "count":"1"}"#,
        )
        .unwrap();
        assert_eq!(r.header.revision, 7);
        assert_eq!(r.kvs[0].key, b"/g/a");
        assert_eq!((r.kvs[0].mod_revision, r.kvs[0].lease), (5, 99));
        let r: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"1"}}"#).unwrap();
        assert!(r.kvs.is_empty());
        let t: TxnResponse = serde_json::from_str(r#"{"header":{"revision":"3"}}"#).unwrap();
        assert!(!t.succeeded);
    }
}
