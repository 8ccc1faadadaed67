//! The options of [`instrument`](super::instrument): authentication, mode, and why it refuses.

/// How the UI authenticates (Node's `auth` option, which must be given).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AdminAuth {
    /// No authentication (Node's `auth: false`): anyone reaching the server can use the UI.
    None,
    /// A username and the bcrypt hash of the password (Node's `{type: "basic", ...}`).
    Basic {
        /// The username.
        username: String,
        /// The password's bcrypt hash (`$2a$`, `$2b$` or `$2y$`).
        password_hash: String,
    },
}

impl AdminAuth {
    /// [`AdminAuth::Basic`].
    pub fn basic(username: impl Into<String>, password_hash: impl Into<String>) -> AdminAuth {
        AdminAuth::Basic {
            username: username.into(),
            password_hash: password_hash.into(),
        }
    }
}

/// Node's `mode`: what is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Every socket, room and event, live (the default, as Node's outside production).
    #[default]
    Development,
    /// The aggregated statistics only.
    Production,
}

/// The options of [`instrument`](super::instrument).
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub(super) auth: AdminAuth,
    pub(super) namespace: String,
    pub(super) readonly: bool,
    pub(super) server_id: Option<String>,
    pub(super) mode: Mode,
}

impl AdminOptions {
    /// Options with `auth` and Node's defaults: namespace `/admin`, commands allowed,
    /// development mode, the host name as server id.
    pub fn new(auth: AdminAuth) -> AdminOptions {
        AdminOptions {
            auth,
            namespace: "/admin".to_owned(),
            readonly: false,
            server_id: None,
            mode: Mode::Development,
        }
    }

    /// The namespace the UI connects to (default `/admin`).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Refuses the UI's commands (emit, join, leave, disconnect).
    #[must_use]
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// The id of this server in the UI (default: the host name).
    #[must_use]
    pub fn server_id(mut self, id: impl Into<String>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// What is reported (default [`Mode::Development`]).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
}

/// Why [`instrument`](super::instrument) refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The password is not a bcrypt hash.
    #[error("the `password` field must be a valid bcrypt hash")]
    InvalidHash,
    /// The server is instrumented already.
    #[error("the server is already instrumented")]
    AlreadyInstrumented,
    /// Not called within a Tokio runtime (the statistics task needs one).
    #[error("instrument must be called within a Tokio runtime")]
    NoRuntime,
}
