//! Web sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped in memory to a
//! member and a CSRF token. Restarting the agent logs everyone out, which is acceptable for a
//! household gateway; tokens stay valid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{hash_token, random_secret};

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most sessions kept; the least recently used goes first.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
struct Session {
    member_id: String,
    csrf: String,
    last_used: Instant,
}

/// A logged-in member, as a handler sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The member.
    pub member_id: String,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// Live sessions by the hash of their id (a memory dump shows no usable cookie).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map half-changed: recover it.
        self.by_id_hash
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session; returns its id for the cookie.
    pub fn create(&self, member_id: &str) -> Result<String, crate::auth::NoRandomness> {
        let id = random_secret()?;
        let session = Session {
            member_id: member_id.to_string(),
            csrf: random_secret()?,
            last_used: Instant::now(),
        };
        let mut map = self.map();
        map.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(hash_token(&id), session);
        Ok(id)
    }

    /// The session for a cookie value, refreshed; `None` if unknown or expired.
    pub fn get(&self, id: &str) -> Option<SessionInfo> {
        let mut map = self.map();
        let key = hash_token(id);
        let session = map.get_mut(&key)?;
        if session.last_used.elapsed() >= SESSION_IDLE {
            map.remove(&key);
            return None;
        }
        session.last_used = Instant::now();
        Some(SessionInfo {
            member_id: session.member_id.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map().remove(&hash_token(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_only_and_end_on_logout() {
        let sessions = Sessions::default();
        let id = sessions.create("m-000001").unwrap();
        let info = sessions.get(&id).unwrap();
        assert_eq!(info.member_id, "m-000001");
        assert_eq!(info.csrf.len(), 43);
        assert!(sessions.get("not-a-session").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }
}
