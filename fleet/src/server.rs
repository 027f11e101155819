//! The FleetLock HTTP server: HTTP/1.1 with `hyper`, one task per connection.
//!
//! It guards itself against bad clients before anything reaches etcd: at most
//! `max_connections` at once, headers and body within `request_timeout`, a body of at most
//! `max_body` bytes, and the checks of [`crate::protocol`]. Each answer other than 200 is
//! a JSON `{"kind", "value"}`. A request that hyper cannot parse as HTTP at all gets hyper's
//! own bare `400` and the connection is closed.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Settings, Watched};
use crate::coordinator::{self, Coordinator, PreReboot, SteadyState};
use crate::halt;
use crate::protocol::{self, Operation, Rejection};

struct Shared {
    config: Watched,
    coordinator: Coordinator,
}

/// Where the server listens, printed once it does (`serve --json` prints it as JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listening {
    /// The bound address (with the real port when the configuration said port 0).
    pub listen: String,
    /// The etcd members used.
    pub etcd: Vec<String>,
}

/// Serves FleetLock until SIGINT or SIGTERM, then lets requests in flight finish; `ready` is
/// called once the socket is bound.
pub async fn serve(
    config_path: &Path,
    settings: Settings,
    ready: impl FnOnce(&Listening),
) -> Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("Listening on {}", settings.listen))?;
    let addr = listener.local_addr().context("Reading the bound address")?;
    let shared = Arc::new(Shared {
        coordinator: Coordinator::new(&settings),
        config: Watched::new(config_path, settings.clone()),
    });
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let info = Listening {
        listen: addr.to_string(),
        etcd: settings.etcd.endpoints.clone(),
    };
    log::info!(
        "serving FleetLock on {addr} for group(s) {}, state in etcd at {}",
        settings.group_names(),
        settings.etcd.endpoints.join(", ")
    );
    ready(&info);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("Installing the SIGTERM handler")?;
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.context("connection limit closed")?,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let shared = shared.clone();
        let request_timeout = shared.config.current().request_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(request_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            // A connection may be kept alive for several requests, but not forever.
            match tokio::time::timeout(request_timeout * 30, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("connection from {peer}: {e}"),
                Err(_) => log::debug!("connection from {peer} closed after its time was up"),
            }
        });
    }
    // Let requests in flight finish (their etcd transactions are atomic either way, but the
    // host should hear the answer); idle connections end within the header timeout.
    drop(listener);
    let max = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let grace = (settings.request_timeout + Duration::from_secs(1)).min(Duration::from_secs(15));
    log::info!("stopping: signal received; waiting up to {grace:?} for requests in flight");
    if tokio::time::timeout(grace, limit.acquire_many(max))
        .await
        .is_err()
    {
        log::warn!("stopping with connections still open after {grace:?}");
    }
    Ok(())
}

fn answer(status: StatusCode, body: Option<Rejection>) -> Response<Full<Bytes>> {
    let (bytes, json) = match body {
        Some(r) => (Bytes::from(r.to_json()), true),
        None => (Bytes::new(), false),
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    if json {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
    }
    resp
}

fn reject(status: StatusCode, kind: &str, value: impl Into<String>) -> Response<Full<Bytes>> {
    answer(status, Some(Rejection::new(kind, value)))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let settings = shared.config.current();
    if req.uri().path() == protocol::HALTS_PATH {
        if req.method() != Method::GET {
            return reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} wants GET", protocol::HALTS_PATH),
            );
        }
        return halts(shared, &settings).await;
    }
    let Some(op) = Operation::from_path(req.uri().path()) else {
        return reject(
            StatusCode::NOT_FOUND,
            "not_found",
            "FleetLock serves POST /v1/pre-reboot and POST /v1/steady-state (and Cairn's \
             POST /v1/report and GET /v1/halts)",
        );
    };
    if req.method() != Method::POST {
        return reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} wants POST", req.uri().path()),
        );
    }
    if let Err(r) = protocol::check_header(
        req.headers()
            .get(protocol::PROTOCOL_HEADER)
            .map(|v| v.as_bytes()),
    ) {
        return answer(StatusCode::BAD_REQUEST, Some(r));
    }
    let too_large = || {
        reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body may be at most {} bytes", settings.max_body),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > settings.max_body as u64) {
        return too_large();
    }
    let body = Limited::new(req.into_body(), settings.max_body).collect();
    let body = match tokio::time::timeout(settings.request_timeout, body).await {
        Err(_) => {
            return reject(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {:?}",
                    settings.request_timeout
                ),
            )
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!("reading the body: {e}"),
            )
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    let params = match protocol::parse_body(&body) {
        Ok(p) => p,
        Err(r) => return answer(StatusCode::BAD_REQUEST, Some(r)),
    };
    let Some(group) = settings.groups.get(&params.group) else {
        return reject(
            StatusCode::BAD_REQUEST,
            "unknown_group",
            format!(
                "group {:?} is not configured here (configured: {})",
                params.group,
                settings.group_names()
            ),
        );
    };
    let c = &shared.coordinator;
    let (g, id) = (params.group.as_str(), params.id.as_str());
    let prefix = settings.etcd.prefix.as_str();
    if op == Operation::PreReboot {
        if let Some(commit) = protocol::target_commit(&body) {
            match halt::halted(c.etcd(), prefix, &commit).await {
                Ok(Some(h)) => {
                    return reject(
                        StatusCode::CONFLICT,
                        "release_halted",
                        format!(
                            "{} ({commit}) is halted: {} of {} update(s) failed; not \
                             rebooting into it (an operator runs `cairn-fleet unhalt {commit}`)",
                            h.version, h.failures, h.reports
                        ),
                    )
                }
                Ok(None) => {}
                Err(e) => return failure(&e.into(), "pre-reboot", g, id),
            }
        }
    }
    match op {
        Operation::Report => {
            let report = match protocol::parse_report(&body) {
                Ok(r) => r,
                Err(r) => return answer(StatusCode::BAD_REQUEST, Some(r)),
            };
            log::info!(
                "{id} in group {g}: update to {} ({}) on {}: {:?}",
                report.version,
                report.commit,
                report.stream,
                report.outcome
            );
            match halt::record(c.etcd(), prefix, id, &report, settings.halt, now()).await {
                Ok(h) => json_answer(&serde_json::json!({"halted": h.is_some()})),
                Err(e) => failure(&e.into(), "report", g, id),
            }
        }
        Operation::PreReboot => match c.pre_reboot(g, group, id).await {
            Ok(PreReboot::Granted { .. }) => answer(StatusCode::OK, None),
            Ok(PreReboot::Full { holders }) => reject(
                StatusCode::CONFLICT,
                "no_slot",
                format!(
                    "all {} slot(s) of group {g} are taken (by {}); try again later",
                    group.slots,
                    holders.join(", ")
                ),
            ),
            Ok(PreReboot::Paused { lost }) => reject(
                StatusCode::CONFLICT,
                "group_paused",
                format!(
                    "group {g} is paused: {} host(s) did not come back within {}s of taking \
                     a slot ({}); an operator runs `cairn-fleet resume {g}`",
                    lost.len(),
                    group.reboot_timeout.as_secs(),
                    lost.join(", ")
                ),
            ),
            Err(e) => failure(&e, "pre-reboot", g, id),
        },
        Operation::SteadyState => match c.steady_state(g, id).await {
            Ok(SteadyState::Released | SteadyState::NotHeld | SteadyState::Lost) => {
                answer(StatusCode::OK, None)
            }
            Err(e) => failure(&e, "steady-state", g, id),
        },
    }
}

async fn halts(shared: &Shared, settings: &Settings) -> Response<Full<Bytes>> {
    match halt::all(shared.coordinator.etcd(), &settings.etcd.prefix).await {
        Ok(h) => json_answer(&serde_json::json!({ "halts": h })),
        Err(e) => {
            log::error!("listing halts: {e}");
            reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "etcd_unavailable",
                format!("the halted releases cannot be read: {e}"),
            )
        }
    }
}

fn json_answer(v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn failure(e: &coordinator::Error, op: &str, group: &str, id: &str) -> Response<Full<Bytes>> {
    log::error!("{op} of {id} in group {group}: {e}");
    match e {
        coordinator::Error::Etcd(e) => reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "etcd_unavailable",
            format!("no slot granted: {e}"),
        ),
        coordinator::Error::Contention(why) => {
            reject(StatusCode::SERVICE_UNAVAILABLE, "contention", why.clone())
        }
    }
}
