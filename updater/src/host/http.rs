//! HTTP(S) for what libostree does not fetch: FleetLock's `POST`s, and the update policy and
//! delta bundles beside the repository. On [`ureq`] (a blocking client: the agent is synchronous). TLS is rustls with the *ring* provider; the
//! server's certificate is verified against the host's CA store (`rustls-native-certs`:
//! Debian's `/etc/ssl/certs`, or whatever `SSL_CERT_FILE`/`SSL_CERT_DIR` name) plus, when
//! configured, the certificates of one PEM file (`[update.fleet_lock] ca_file`).
//! No proxy from the environment is used, no redirect is followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Upper bound on a response body we read.
const MAX_RESPONSE: u64 = 1 << 20;

/// An HTTP(S) client with its trust roots.
#[derive(Clone)]
pub struct Transport {
    agent: ureq::Agent,
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client with `timeout` for connecting and for each read and write. With `tls`, the
    /// trust roots are loaded now: the system's, plus `ca_file`'s when given (an unreadable
    /// or certificate-less file is an error).
    pub fn new(tls: bool, ca_file: Option<&Path>, timeout: Duration) -> Result<Self> {
        let mut tls_config = TlsConfig::builder()
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if tls {
            tls_config = tls_config.root_certs(RootCerts::new_with_certs(&roots(ca_file)?));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .user_agent(format!("cairn/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config.build())
            .build()
            .new_agent();
        Ok(Transport {
            agent,
            ca_file: ca_file.map(Path::to_path_buf),
        })
    }

    /// Sends `POST url` with `body` as `application/json` and `headers`; the whole response.
    pub fn post_json(&self, url: &str, headers: &[(&str, &str)], body: &str) -> Result<Response> {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(body).map_err(|e| self.explain(e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| self.explain(e))
            .context("Reading the response")?;
        Ok(Response { status, body })
    }

    /// Sends `GET url`; the whole response, up to `limit` bytes (more is an error).
    pub fn get(&self, url: &str, limit: u64) -> Result<Response> {
        let mut resp = self.agent.get(url).call().map_err(|e| self.explain(e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.explain(e))
            .with_context(|| format!("Reading {url} (at most {limit} bytes)"))?;
        Ok(Response { status, body })
    }

    /// Sends `HEAD url`: the status and the length the server announces.
    pub fn head(&self, url: &str) -> Result<(u16, Option<u64>)> {
        let resp = self.agent.head(url).call().map_err(|e| self.explain(e))?;
        let length = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((resp.status().as_u16(), length))
    }

    /// Sends `GET url` and writes a 200 response's body to `out`, up to `limit` bytes (more is
    /// an error), calling `progress` with the bytes so far; returns the status and the bytes
    /// written (0 for another status, whose body is not read).
    pub fn download(
        &self,
        url: &str,
        out: &mut dyn std::io::Write,
        limit: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u16, u64)> {
        let mut resp = self.agent.get(url).call().map_err(|e| self.explain(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Ok((status, 0));
        }
        let mut body = resp.body_mut().with_config().limit(limit).reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = std::io::Read::read(&mut body, &mut buf)
                .with_context(|| format!("Reading {url} (at most {limit} bytes)"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .with_context(|| format!("Writing what {url} sent"))?;
            total += n as u64;
            progress(total);
        }
        Ok((status, total))
    }

    /// An error, with what to do when it is the server's certificate that was refused.
    fn explain(&self, e: ureq::Error) -> anyhow::Error {
        // ureq hands a failed handshake over as an I/O error wrapping rustls's.
        let tls_error = match &e {
            ureq::Error::Rustls(t) => Some(t),
            ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        let certificate = matches!(
            tls_error,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        );
        let e = anyhow::Error::new(e);
        if !certificate {
            return e;
        }
        let trusted = match &self.ca_file {
            Some(f) => format!("the system's CAs nor {}", f.display()),
            None => {
                "the system's CAs (for FleetLock, [update.fleet_lock] ca_file adds one)".to_string()
            }
        };
        e.context(format!(
            "TLS certificate error: the server's certificate is not valid for this address or \
             is signed by none of {trusted}"
        ))
    }
}

/// The system's trust roots and `ca_file`'s certificates.
fn roots(ca_file: Option<&Path>) -> Result<Vec<Certificate<'static>>> {
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        log::warn!("reading the system's CA certificates: {e}");
    }
    let mut certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("Reading the FleetLock CA file {}", path.display()))?;
        let mut found = 0;
        for item in ureq::tls::parse_pem(&pem) {
            let item =
                item.with_context(|| format!("Parsing the FleetLock CA file {}", path.display()))?;
            if let PemItem::Certificate(c) = item {
                certs.push(c);
                found += 1;
            }
        }
        if found == 0 {
            bail!(
                "The FleetLock CA file {} holds no PEM certificate",
                path.display()
            );
        }
    }
    if certs.is_empty() {
        log::warn!(
            "fleet-lock: no CA certificate found on this system (install ca-certificates or set \
             [update.fleet_lock] ca_file): no https server can be verified"
        );
    }
    Ok(certs)
}
