//! Events of the web page and the REST API: refused requests, logins and connections.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use metrics::counter;

use super::InternalEvent;
use crate::engine::EngineError;
use crate::metric;

/// A form came without this session's CSRF token (`replenish_http_csrf_refused_total`).
pub struct CsrfRefused<'a> {
    /// The member signed in, if any (none on the login form).
    pub member: Option<&'a str>,
}

impl InternalEvent for CsrfRefused<'_> {
    fn emit(self) {
        counter!(metric::HTTP_CSRF_REFUSED.name).increment(1);
        tracing::warn!(
            member = self.member,
            "form without a valid CSRF token refused"
        );
    }
}

/// A client address failed to authenticate too often and must wait
/// (`replenish_http_auth_throttled_total`).
pub struct AuthThrottled {
    /// How long it must wait.
    pub wait: Duration,
}

impl InternalEvent for AuthThrottled {
    fn emit(self) {
        counter!(metric::HTTP_AUTH_THROTTLED.name).increment(1);
        tracing::info!(
            wait_s = self.wait.as_secs(),
            "too many failed logins from one address; throttled"
        );
    }
}

/// A request without a valid token (`replenish_http_unauthorized_total`).
pub enum Unauthorized<'a> {
    /// The web page's login form, with a token no member has.
    WebLogin,
    /// The REST API, with what was wrong.
    Api(&'a str),
}

impl InternalEvent for Unauthorized<'_> {
    fn emit(self) {
        counter!(metric::HTTP_UNAUTHORIZED.name).increment(1);
        match self {
            Self::WebLogin => tracing::warn!("web login with an unknown token"),
            Self::Api(detail) => tracing::debug!(detail, "API request without a valid token"),
        }
    }
}

/// The engine refused what a request asked (`replenish_http_refused_total`).
pub struct RequestRefused<'a> {
    /// Why.
    pub error: &'a EngineError,
}

impl InternalEvent for RequestRefused<'_> {
    fn emit(self) {
        counter!(metric::HTTP_REFUSED.name, "reason" => self.error.label()).increment(1);
        tracing::info!(error = %self.error, "request refused");
    }
}

/// A connection was refused: the server has as many as it takes
/// (`replenish_http_connections_refused_total`).
pub struct ConnectionRefused {
    /// Who.
    pub peer: SocketAddr,
}

impl InternalEvent for ConnectionRefused {
    fn emit(self) {
        counter!(metric::HTTP_CONNECTIONS_REFUSED.name).increment(1);
        tracing::debug!(peer = %self.peer, "HTTP connection refused: too many open");
    }
}

/// A connection ended with an error (`replenish_http_connections_closed_total`).
pub struct ConnectionClosed<'a> {
    /// Who.
    pub peer: SocketAddr,
    /// What happened.
    pub error: &'a dyn Display,
    /// What happened, as the metric's label.
    pub reason: &'static str,
}

impl InternalEvent for ConnectionClosed<'_> {
    fn emit(self) {
        counter!(metric::HTTP_CONNECTIONS_CLOSED.name, "reason" => self.reason).increment(1);
        tracing::debug!(peer = %self.peer, error = %self.error, "HTTP connection ended");
    }
}
