//! The HTTP endpoints, served with hyper: `/metrics`, `/healthz` and
//! `/readyz`, GET only.
//!
//! The one router of both the agent and the controller: [`Routes::metrics`]
//! renders any [`Exposition`] and [`Routes::probes`] asks any [`Probes`].
//! One [`HttpServer`] serves one listener with the [`Routes`] it is given, so
//! the probes can get a listener of their own by running a second server with
//! [`Routes::probes`]. Each connection carries one request (`Connection:
//! close`), and what one client can cost is bounded by [`ConnectionLimits`].

use std::{
    collections::BTreeMap, convert::Infallible, future::Future, io, net::SocketAddr, sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::CONTENT_TYPE;

const TEXT: &str = "text/plain; charset=utf-8";

/// After the response, how much input nobody reads is taken in, and for how
/// long, before closing anyway: a client that neither sends nor closes must
/// not hold its connection slot until the connection timeout.
const MAX_LINGER_BYTES: usize = 64 * 1024;
const MAX_LINGER: Duration = Duration::from_secs(1);

/// Bounds on what one client can cost, so idle or slow clients cannot starve
/// the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
    /// Time from accepting a connection to having its request line and
    /// headers; an idle connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open in all.
    pub connection_timeout: Duration,
    /// Request line and headers larger than this get 431.
    pub max_head_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 32,
            header_read_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(10),
            max_head_bytes: 8 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the HTTP listener's address")]
    LocalAddr(#[source] io::Error),
}

/// What a route answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    /// Plain text.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Reply {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }
}

/// What [`Routes::metrics`] renders: the agent's `Metrics` or the
/// controller's `ControllerMetrics`.
pub trait Exposition: Send + Sync + 'static {
    /// The `/metrics` body, in [`CONTENT_TYPE`].
    fn encode(&self) -> String;
}

/// What [`Routes::probes`] asks: each probe passes or says why not (the
/// body of its 503).
pub trait Probes: Send + Sync + 'static {
    /// `/healthz`: whether the process is working (restart it if not).
    fn healthz(&self) -> Result<(), String>;
    /// `/readyz`: whether it has done what it needs before serving.
    fn readyz(&self) -> Result<(), String>;
}

type Handler = Arc<dyn Fn() -> Reply + Send + Sync>;

/// The paths one listener serves, each answering GET.
#[derive(Clone, Default)]
pub struct Routes(BTreeMap<&'static str, Handler>);

impl Routes {
    pub fn new() -> Self {
        Routes::default()
    }

    /// Answers GET `path` (any query string) with `handler`; replaces an
    /// earlier handler of the same path.
    pub fn get(
        mut self,
        path: &'static str,
        handler: impl Fn() -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.0.insert(path, Arc::new(handler));
        self
    }

    /// Both route sets; `other` wins where both have a path.
    pub fn merge(mut self, other: Routes) -> Self {
        self.0.extend(other.0);
        self
    }

    /// `/metrics`: what `source` renders now, in the Prometheus text format.
    pub fn metrics(source: &Arc<impl Exposition>) -> Self {
        let source = Arc::clone(source);
        Routes::new().get("/metrics", move || Reply {
            status: StatusCode::OK,
            content_type: CONTENT_TYPE,
            body: source.encode(),
        })
    }

    /// `/healthz` and `/readyz`: 200 while the probe passes, else 503 with
    /// the reason it gives.
    pub fn probes(probes: &Arc<impl Probes>) -> Self {
        let live = Arc::clone(probes);
        let ready = Arc::clone(probes);
        Routes::new()
            .get("/healthz", move || match live.healthz() {
                Ok(()) => Reply::text(StatusCode::OK, "ok\n"),
                Err(reason) => Reply::text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            })
            .get("/readyz", move || match ready.readyz() {
                Ok(()) => Reply::text(StatusCode::OK, "ready\n"),
                Err(reason) => Reply::text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            })
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let Some(handler) = self.0.get(path) else {
            return response(Reply::text(StatusCode::NOT_FOUND, "not found\n"));
        };
        if method != Method::GET {
            let mut refused = response(Reply::text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"));
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return refused;
        }
        response(handler())
    }
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    response
}

/// A bound listener, so callers learn the address (and any bind error)
/// before anything else starts.
pub struct HttpServer {
    listener: TcpListener,
    limits: ConnectionLimits,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(HttpServer {
            listener,
            limits: ConnectionLimits::default(),
        })
    }

    pub fn with_limits(self, limits: ConnectionLimits) -> Self {
        HttpServer { limits, ..self }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        self.listener.local_addr().map_err(HttpError::LocalAddr)
    }

    /// Serves `routes` until `shutdown` completes; connections still open
    /// then are dropped.
    pub async fn run(self, routes: Routes, shutdown: impl Future<Output = ()>) {
        let limits = self.limits;
        let routes = Arc::new(routes);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_head_bytes)
            // One request per connection, as the timeouts assume.
            .keep_alive(false)
            .title_case_headers(true);
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            match accepted {
                Ok((stream, _)) if connections.len() < limits.max_connections => {
                    let served = serve(stream, http.clone(), Arc::clone(&routes));
                    connections.spawn(async move {
                        if tokio::time::timeout(limits.connection_timeout, served)
                            .await
                            .is_err()
                        {
                            tracing::debug!("HTTP connection open too long; closed");
                        }
                    });
                }
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "too many HTTP connections; closing a new one");
                    drop(stream);
                }
                Err(error) => {
                    // Usually out of file descriptors: give others a moment to close.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn serve(stream: TcpStream, http: http1::Builder, routes: Arc<Routes>) {
    // hyper drops its handle when it is done, error or not; this second one
    // on the same socket stays to close it gently.
    let (stream, closer) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "HTTP connection unusable");
            return;
        }
    };
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = routes.respond(request.method(), request.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    if let Err(error) = http.serve_connection(TokioIo::new(stream), service).await {
        // Bad requests got their 4xx from hyper; idle clients got nothing.
        tracing::debug!(%error, "HTTP connection failed");
    }
    close_gently(closer).await;
}

fn duplicate(stream: TcpStream) -> io::Result<(TcpStream, TcpStream)> {
    let stream = stream.into_std()?;
    let other = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, TcpStream::from_std(other)?))
}

/// Closing a socket with unread input resets the connection, which can
/// destroy a response (a 431 above all) before the client has read it: so
/// finish sending, then take in (boundedly) whatever the client still sends
/// until it closes too.
async fn close_gently(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut drained = 0;
        let mut chunk = [0u8; 1024];
        while drained < MAX_LINGER_BYTES {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    };
    // Past the bound the client gets a reset instead of an end of stream.
    let _ = tokio::time::timeout(MAX_LINGER, drain).await;
}

#[cfg(test)]
mod tests;
