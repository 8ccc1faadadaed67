//! The UI's basic authentication and the admin sessions it hands out.

use std::collections::{HashSet, VecDeque};

use serde_json::Value;

use super::{Admin, AdminAuth};
use crate::{ConnectError, SocketRef};

/// The most admin sessions remembered (the oldest is forgotten first).
const MAX_SESSIONS: usize = 1024;

/// The admin session ids handed out, the oldest forgotten past [`MAX_SESSIONS`].
#[derive(Default)]
pub(super) struct Sessions {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Sessions {
    fn insert(&mut self, id: String) {
        if self.order.len() >= MAX_SESSIONS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone());
        self.order.push_back(id);
    }
}

impl Admin {
    /// Node's basic authentication: a known session id, or the username and password (then a
    /// new session id is sent as `session`, before CONNECT).
    pub(super) async fn authenticate(
        &self,
        socket: &SocketRef,
        auth: &Value,
    ) -> Result<(), ConnectError> {
        let AdminAuth::Basic {
            username,
            password_hash,
        } = &self.auth
        else {
            return Ok(());
        };
        if let Some(id) = auth["sessionId"].as_str()
            && self.sessions.lock().ids.contains(id)
        {
            return Ok(());
        }
        if auth["username"].as_str() == Some(username.as_str())
            && let Some(password) = auth["password"].as_str()
        {
            // bcrypt is slow on purpose: off the runtime's threads.
            let (password, hash) = (password.to_owned(), password_hash.clone());
            let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .is_ok_and(|result| result.unwrap_or(false));
            if matches {
                let id = random_hex(8);
                self.sessions.lock().insert(id.clone());
                let _ = socket.emit("session", &id);
                return Ok(());
            }
        }
        Err(ConnectError::new("invalid credentials"))
    }
}

/// `bytes` random bytes from the OS in hex (Node's `randomBytes(n).toString("hex")`).
fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded() {
        let mut sessions = Sessions::default();
        for i in 0..MAX_SESSIONS + 10 {
            sessions.insert(i.to_string());
        }
        assert_eq!(sessions.ids.len(), MAX_SESSIONS);
        assert!(!sessions.ids.contains("0"));
        assert!(sessions.ids.contains(&(MAX_SESSIONS + 9).to_string()));
    }

    #[test]
    fn session_ids_are_sixteen_hex_digits() {
        let id = random_hex(8);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, random_hex(8));
    }
}
