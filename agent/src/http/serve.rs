//! The HTTP server loop: hyper's HTTP/1.1 connections with limits a home network needs, as
//! `axum::serve` has none: a client that sends no (complete) request head within
//! `client_timeout` is closed, which also ends idle keep-alive connections; a request that takes
//! longer (a body sent slowly) is answered `408`; at most `max_connections` at once (more are
//! closed at once, and counted). Every request carries its peer address (`ConnectInfo`) for
//! the rate limit of failed logins. Graceful: on shutdown no new connection is accepted and open
//! ones finish their request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::internal_events::{ConnectionClosed, ConnectionRefused, emit};

/// Limits of the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request head (and the wait for one on an idle connection) and a whole request must
    /// each come within this.
    pub client_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            emit(ConnectionRefused { peer });
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let open = open.clone();
        let app = app.clone();
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.client_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let finished = tokio::select! {
                finished = connection.as_mut() => finished,
                () = stopping(&mut closing) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = finished {
                emit(ConnectionClosed {
                    peer,
                    error: &error,
                    reason: reason(&error),
                });
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let _ = closing_tx.send(true);
    // Open requests get a moment to finish; idle connections close at once.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Completes once the server stops accepting (or is gone).
async fn stopping(closing: &mut tokio::sync::watch::Receiver<bool>) {
    while !*closing.borrow_and_update() {
        if closing.changed().await.is_err() {
            return;
        }
    }
}

fn reason(error: &hyper::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_incomplete_message() {
        "incomplete"
    } else if error.is_parse() || error.is_parse_too_large() {
        "bad_request"
    } else {
        "other"
    }
}

/// The peer address of a request served by [`serve`] (absent in router tests).
pub fn peer(request: &axum::http::request::Parts) -> Option<SocketAddr> {
    request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// The peer address of a request, if [`serve`] served it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(peer(parts)))
    }
}
