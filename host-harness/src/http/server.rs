//! The accept loop and per-connection limits of `host-harness serve`.
//!
//! hyper serves each connection (HTTP/1.1) with a timer, so a request head must
//! arrive within [`ServerLimits::header_read_timeout`]. Around it this module adds
//! what hyper leaves to the server:
//! - an idle timeout: a connection with no request in flight and no byte read or
//!   written for [`ServerLimits::idle_timeout`] is closed;
//! - a connection cap: at [`ServerLimits::max_connections`] (never more than the
//!   process's file-descriptor limit allows), accepting a new connection first closes
//!   the connection that has been idle longest, so idle or half-sent connections can
//!   never shut out a client that sends a whole request;
//! - graceful shutdown: stop accepting, let in-flight requests finish (at most
//!   [`ServerLimits::shutdown_grace`]), then close.
//!
//! The request body's own deadline is applied by the handlers (see
//! [`ServerLimits::body_timeout`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Connection limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Time a client has to send a whole request head, from when the connection
    /// opens or a kept-alive connection starts reading its next request.
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body.
    pub body_timeout: Duration,
    /// A connection with nothing in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; lowered to what the file-descriptor limit
    /// leaves room for.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept free for the store, the SMTP pool, plugins and logs.
const FD_RESERVE: u64 = 64;

/// Raises the soft file-descriptor limit to the hard one (as Go's runtime does) and
/// returns how many connections fit under it, at most `wanted`.
pub fn connection_capacity(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
        unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                if lim.rlim_cur < lim.rlim_max {
                    let raised = libc::rlimit {
                        rlim_cur: lim.rlim_max,
                        rlim_max: lim.rlim_max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                        lim.rlim_cur = lim.rlim_max;
                    }
                }
                // rlim_t is u64 on Linux but not on every Unix.
                #[allow(clippy::unnecessary_cast)]
                let room = (lim.rlim_cur as u64).saturating_sub(FD_RESERVE).max(1);
                return wanted
                    .min(usize::try_from(room).unwrap_or(usize::MAX))
                    .max(1);
            }
        }
    }
    wanted.max(1)
}

/// What the accept loop knows of one connection.
struct Conn {
    /// Milliseconds since the server started, at the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests being handled.
    in_flight: AtomicUsize,
    /// Closes the connection at once.
    kill: Notify,
}

/// The open connections, for the cap and for shutdown.
struct Registry {
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    drained: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection, first closing the longest-idle one when `cap` is
    /// reached. `None` when every open connection has a request in flight.
    fn admit(&self, cap: usize) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.lock();
        if open.len() >= cap {
            let idle = open
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, c)| c.last_io_ms.load(Ordering::SeqCst))
                .map(|(id, _)| *id)?;
            if let Some(c) = open.remove(&idle) {
                c.kill.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            last_io_ms: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            kill: Notify::new(),
        });
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        if open.is_empty() {
            self.drained.notify_waiters();
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A socket that records when it last moved a byte.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Tracked {
    fn touch(&self) {
        self.conn
            .last_io_ms
            .store(self.registry.now_ms(), Ordering::SeqCst);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = connection_capacity(limits.max_connections);
    let registry = Arc::new(Registry {
        started: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
        drained: Notify::new(),
    });
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a transient network error: make room, wait a
                    // little, go on. Never a reason to stop serving.
                    tracing::warn!(target: "http", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = registry.admit(cap) else {
            tracing::warn!(target: "http", cap, "every connection is busy; refusing one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            id,
            conn,
            registry.clone(),
            router.clone(),
            limits.clone(),
            closing_rx.clone(),
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = registry.drained.notified();
    if registry.len() > 0 {
        let _ = tokio::time::timeout(limits.shutdown_grace, drained).await;
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    limits: ServerLimits,
    mut closing: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
        registry: registry.clone(),
    });
    let counter = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let counter = counter.clone();
        counter.in_flight.fetch_add(1, Ordering::SeqCst);
        async move {
            let resp = router.oneshot(req).await;
            counter.in_flight.fetch_sub(1, Ordering::SeqCst);
            resp
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut served = pin!(served);
    let mut shutting_down = false;
    let tick = limits.idle_timeout.min(Duration::from_secs(1));
    let idle_ms = limits.idle_timeout.as_millis() as u64;
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(target: "http", error = %e, "connection ended");
                }
                break;
            }
            _ = conn.kill.notified() => break,
            _ = closing.changed(), if !shutting_down => {
                shutting_down = true;
                served.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(tick) => {
                let quiet = registry.now_ms().saturating_sub(conn.last_io_ms.load(Ordering::SeqCst));
                if conn.in_flight.load(Ordering::SeqCst) == 0 && quiet >= idle_ms {
                    break;
                }
            }
        }
    }
    registry.remove(id);
}
