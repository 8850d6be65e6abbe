//! Updraft's HTTP listener: serves an axum `Router` over TCP (or TLS) with
//! hyper-util's connection builder (HTTP/1.1, and HTTP/2 by prior knowledge
//! or ALPN), and protects the server from its clients: at most
//! `max_connections` at once, the oldest connection with no request in flight
//! shed to make room for a new one; a connection that has not sent a whole
//! request head `header_read_timeout` after it was accepted (or after its
//! next request began), or that stays idle `idle_timeout`, is closed.

mod conns;
mod io;

pub use io::{Guarded, StreamGuard};

use axum::extract::ConnectInfo;
use conns::{Admission, Conn, Registry};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use io::{GuardedBody, Tracked};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// Pending connections the kernel queues for us (capped by `net.core.somaxconn`).
const BACKLOG: u32 = 4096;

/// How the listener treats its clients.
pub struct Config {
    /// Connections held at once; at the cap the oldest idle one is closed.
    pub max_connections: usize,
    /// From accept (or the first byte of a later request) to a whole request head.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// A certificate chain and its private key, ready to accept TLS connections.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("certificate file {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("private key file {}: {reason}", path.display())]
    PrivateKey { path: PathBuf, reason: String },
    #[error("the certificate and the private key cannot be used together: {0}")]
    KeyPair(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3 with rustls's safe defaults
    /// (the ring provider); ALPN offers h2 and http/1.1.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, ListenerError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert_error = |reason: String| ListenerError::Certificate {
            path: cert.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(format!("not a PEM certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(cert_error(
                "no \"BEGIN CERTIFICATE\" block: expected a PEM certificate chain".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ListenerError::PrivateKey {
            path: key.to_path_buf(),
            reason: format!("expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ListenerError::KeyPair(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ListenerError::KeyPair(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// Binds `addr` with a deep accept queue, so that a burst of connections
/// does not drop a client's SYN while the accept loop catches up.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenerError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    bind().map_err(|source| ListenerError::Bind { addr, source })
}

/// Raises this process's soft limit on open files to its hard limit (every
/// connection is a file descriptor); returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which we own.
    #[allow(unsafe_code)]
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut target = limit.rlim_max;
    if target == libc::RLIM_INFINITY {
        // The kernel refuses more than fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if limit.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass, which we own.
        #[allow(unsafe_code)]
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_cur = target;
    }
    Ok(limit.rlim_cur)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, closes idle connections, lets requests in flight finish and
/// returns once every connection is closed. Requests carry the peer's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) {
    let shared = Arc::new(Shared {
        registry: Registry::new(config.max_connections),
        builder: auto::Builder::new(TokioExecutor::new()),
        app,
        config,
    });
    let (stop_tx, stop_rx) = watch::channel(());
    // Open sockets, shed ones still closing included: past the cap plus this
    // room, the loop waits (new connections queue in the kernel's backlog)
    // until shed connections are closed, so file descriptors stay bounded.
    let max = shared.config.max_connections.max(1);
    let sockets = Arc::new(Semaphore::new(max + (max / 16).max(64)));
    tokio::pin!(shutdown);
    loop {
        let (socket, accepted) = tokio::select! {
            accepted = async {
                let socket = sockets.clone().acquire_owned().await.expect("never closed");
                (socket, listener.accept().await)
            } => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e, &shared.registry).await;
                continue;
            }
        };
        match shared.registry.admit() {
            Admission::Admitted(conn) => {
                let (shared, stop) = (shared.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    run_connection(stream, peer, conn, shared, stop).await;
                    drop(socket);
                });
            }
            Admission::Full => drop(stream),
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
}

struct Shared {
    registry: Registry,
    builder: auto::Builder<TokioExecutor>,
    app: axum::Router,
    config: Config,
}

async fn accept_failed(e: std::io::Error, registry: &Registry) {
    // Out of file descriptors: make room, and do not spin on the error.
    if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
        registry.shed_one();
        tracing::warn!(error = %e, "accept: out of file descriptors; closed the oldest idle connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Anything else concerns one connection that is gone already.
}

/// Takes the connection out of the registry when its task ends, however it ends.
struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<()>,
) {
    let _registered = Registered {
        registry: &shared.registry,
        id: conn.id(),
    };
    let _ = stream.set_nodelay(true);
    let io = Tracked::new(stream, conn.clone());
    match &shared.config.tls {
        None => drive(TokioIo::new(io), peer, &conn, &shared, &mut stop).await,
        Some(tls) => {
            let handshake = tls.0.accept(io);
            tokio::pin!(handshake);
            let stream = match watched(handshake, &conn, &shared.config, Some(&mut stop)).await {
                Woke::Done(Ok(stream)) => stream,
                Woke::Done(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Woke::Close | Woke::Stop => return,
            };
            drive(TokioIo::new(stream), peer, &conn, &shared, &mut stop).await
        }
    }
}

/// Serves one connection until it ends, is shed, times out, or (on
/// shutdown) finishes its requests in flight.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    conn: &Arc<Conn>,
    shared: &Shared,
    stop: &mut watch::Receiver<()>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let conn = conn.clone();
        let app = shared.app.clone();
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let in_flight = conn.request_began();
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|body| GuardedBody::new(body, in_flight)))
            }
        })
    };
    let connection = shared.builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let watch_stop = (!draining).then_some(&mut *stop);
        match watched(connection.as_mut(), conn, &shared.config, watch_stop).await {
            Woke::Done(result) => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            Woke::Close => return,
            Woke::Stop => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Why [`watched`] returned.
enum Woke<T> {
    /// The work finished with this.
    Done(T),
    /// The connection must close: shed, or past its header-read or idle deadline.
    Close,
    /// The server is stopping.
    Stop,
}

/// Polls `work` (a TLS handshake, a connection) until it finishes, the
/// connection must close, or, when `stop` is given, the server stops.
async fn watched<F: Future>(
    mut work: std::pin::Pin<&mut F>,
    conn: &Conn,
    config: &Config,
    mut stop: Option<&mut watch::Receiver<()>>,
) -> Woke<F::Output> {
    loop {
        if conn.must_close() {
            return Woke::Close;
        }
        let deadline = conn.deadline(config.header_read_timeout, config.idle_timeout);
        let stopping = async {
            match stop.as_mut() {
                Some(stop) => {
                    let _ = stop.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = work.as_mut() => return Woke::Done(done),
            _ = conn.changed.notified() => {}
            _ = sleep_until(deadline) => if past(conn, config) { return Woke::Close },
            _ = stopping => return Woke::Stop,
        }
    }
}

fn past(conn: &Conn, config: &Config) -> bool {
    conn.deadline(config.header_read_timeout, config.idle_timeout)
        .is_some_and(|d| d <= Instant::now())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
