//! The control API: a small async HTTP server (hyper under axum on tokio) that no client can
//! stall: bounded header and body sizes, read timeouts, a bound on connections (each one a
//! task, not a thread), a bearer token compared in constant time, and Host/Origin checks
//! (a web page in the agent's own browser, or a DNS-rebinding page, cannot drive it).
//! Call operations block on GStreamer, so they run on the blocking pool, one call's
//! operations never waiting for another's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::calls::{CallError, Registry};

/// Request bodies: an SDP offer is a few kB; a pause reason a line.
pub const MAX_BODY: usize = 64 * 1024;
/// Request line and headers together (hyper's read buffer; larger headers get 431).
pub const MAX_HEADERS: usize = 16 * 1024;
/// A request's headers must arrive within this, its body within `BODY_TIMEOUT`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection lives at most this long (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Open connections at once (each a task and at most MAX_HEADERS of buffer; an idle one is
/// closed after HEADER_TIMEOUT); beyond, new ones are closed at once. Fewer if the process
/// may not open that many files (see `connection_limit`).
pub const MAX_CONNECTIONS: usize = 4096;

/// MAX_CONNECTIONS within the process's open-file limit (raised to its hard limit first, as
/// servers do), leaving 256 descriptors for the calls' media and files.
pub fn connection_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 512;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let files = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
    MAX_CONNECTIONS.min(files.saturating_sub(256)).max(64)
}

#[derive(Clone)]
pub struct Access {
    /// `None` only with --insecure-localhost.
    pub token: Option<Arc<Vec<u8>>>,
    /// Host header values accepted (`host:port`).
    pub hosts: Arc<Vec<String>>,
    /// Origin header values accepted from browsers (`scheme://host:port`).
    pub origins: Arc<Vec<String>>,
}

#[derive(Clone)]
struct App {
    registry: Arc<Registry>,
    access: Access,
    /// Notified when a call ended (for --once).
    ended: Arc<tokio::sync::Notify>,
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(value).unwrap_or_default(),
    )
        .into_response()
}

impl IntoResponse for CallError {
    fn into_response(self) -> Response {
        let status = match &self {
            CallError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CallError::NotFound => StatusCode::NOT_FOUND,
            CallError::Conflict(_) => StatusCode::CONFLICT,
            CallError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = text(status, self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        response
    }
}

/// Host, Origin and token checks before anything else.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.access.hosts.iter().any(|allowed| allowed == host) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            format!("unexpected Host '{host}' (see --allowed-host)"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !app.access.origins.iter().any(|allowed| allowed == origin) {
            return text(
                StatusCode::FORBIDDEN,
                format!("requests from origin '{origin}' are not allowed (see --allowed-origin)"),
            );
        }
    }
    // The page that hosts a browser client holds nothing: no token needed for it.
    let public = request.method() == axum::http::Method::GET
        && matches!(request.uri().path(), "/" | "/favicon.ico");
    if !public && let Some(token) = &app.access.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_slice())) {
            let mut response = text(StatusCode::UNAUTHORIZED, "a valid bearer token is needed");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Reads a request body of at most MAX_BODY bytes within BODY_TIMEOUT.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bodies are at most {MAX_BODY} bytes"),
        ));
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bodies are at most {MAX_BODY} bytes"),
        )),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Runs a blocking call operation.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(CallError::Failed(format!("the operation failed: {e}"))))
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<!doctype html><title>gst-vcc agent</title>",
    )
        .into_response()
}

/// `POST /calls`: a WHIP offer; `201` with the answer and the call's Location.
async fn create_call(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|t| t.starts_with("application/sdp"));
    if !is_sdp {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST an SDP offer as application/sdp",
        );
    }
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "the offer is not UTF-8");
    };
    let requested = headers
        .get("x-call-id")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let registry = app.registry.clone();
    match blocking(move || registry.start(&offer, requested)).await {
        Ok((id, answer)) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, format!("/calls/{id}")),
            ],
            answer,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn list_calls(State(app): State<App>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "active": app.registry.active_ids() }),
    )
}

async fn get_call(State(app): State<App>, Path(id): Path<String>) -> Response {
    let registry = app.registry.clone();
    match blocking(move || registry.describe(&id)).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(error) => error.into_response(),
    }
}

async fn delete_call(State(app): State<App>, Path(id): Path<String>) -> Response {
    let registry = app.registry.clone();
    let result = blocking(move || registry.end(&id, "ended by request")).await;
    app.ended.notify_one();
    match result {
        Ok(summary) => json(StatusCode::OK, &summary),
        Err(error) => error.into_response(),
    }
}

/// `POST /calls/{id}/pause` and `/resume` (body: the reason): answered once recordmux applied
/// it (200, with the running time), or 202 if it is still queued after the apply timeout.
async fn control(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let resume = match action.as_str() {
        "pause" => false,
        "resume" => true,
        _ => return text(StatusCode::NOT_FOUND, "POST /calls/{id}/pause or /resume"),
    };
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let reason = String::from_utf8_lossy(&body).trim().to_string();
    let reason = if reason.is_empty() {
        "agent request".to_string()
    } else {
        reason
    };
    let registry = app.registry.clone();
    let call = id.clone();
    let result = blocking(move || registry.pause_or_resume(&call, resume, &reason)).await;
    let outcome = match &result {
        Ok(ack) if ack.unchanged => "unchanged (already in that state)".to_string(),
        Ok(ack) if ack.applied => format!(
            "applied at running time {:.3} s",
            ack.transition
                .as_ref()
                .and_then(|t| t.running_time_ns)
                .unwrap_or(0) as f64
                / 1e9
        ),
        Ok(_) => "queued, not yet applied".to_string(),
        Err(error) => format!("refused: {error}"),
    };
    eprintln!("control: call={id} from={peer} {action}: {outcome}");
    match result {
        Ok(ack) if ack.applied || ack.unchanged => json(StatusCode::OK, &ack),
        Ok(ack) => json(StatusCode::ACCEPTED, &ack),
        Err(error) => error.into_response(),
    }
}

pub fn router(registry: Arc<Registry>, access: Access, ended: Arc<tokio::sync::Notify>) -> Router {
    let app = App {
        registry,
        access,
        ended,
    };
    Router::new()
        .route("/", get(page))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/calls", post(create_call).get(list_calls))
        .route("/calls/{id}", get(get_call).delete(delete_call))
        .route("/calls/{id}/{action}", post(control))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Accepts connections until the process ends: each connection is a task with hyper's
/// header size and read-time bounds and a bounded lifetime; at most `connections` at once.
pub async fn serve(listener: TcpListener, router: Router, connections: usize) {
    let slots = Arc::new(Semaphore::new(connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, for example: wait instead of spinning.
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = {
            let router = router.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    use tower::ServiceExt;
                    router.oneshot(request.map(Body::new)).await
                }
            })
        };
        tokio::spawn(async move {
            // One request per connection: control requests are rare, a kept-alive idle
            // connection only holds a slot, and hyper closes it after HEADER_TIMEOUT while a
            // client may be sending its next request on it (a pause lost as "other side
            // closed" when ten calls starved the machine).
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(false)
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}
