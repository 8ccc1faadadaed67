//! `tower-sessions` around Belfry's engine (Node's `io.engine.use(session(...))`), and CORS with
//! credentials for a page on another origin.
//!
//! - `POST /login {"name": ".."}` puts the user in the session; `GET /me` shows the session;
//!   `POST /logout` ends it. Plain axum handlers with tower-sessions' `Session` extractor.
//! - The Socket.IO server refuses a connect without a logged-in session (a connect middleware
//!   reading `HttpExtension<Session>`), answers `whoami`, and on `visit` updates the session,
//!   which the next `GET /me` sees.
//!
//! The onion, outermost first:
//!
//! ```text
//! CorsLayer                       every response, the engine's included, carries the CORS headers
//! └─ SocketIoLayer                answers /socket.io/, passes the rest on
//!    ├─ engine_layer(sessions)    the engine's requests: the session the handlers read
//!    └─ Router                    /login, /me, /logout
//!       └─ sessions               the plain routes' session
//! ```
//!
//! CORS has to wrap the Socket.IO layer: a layer inside it never sees the engine's requests.
use axum::{
    Json, Router,
    http::{HeaderValue, Method, StatusCode, header},
    routing::{get, post},
};
use belfry::{AckSender, ConnectError, SocketIo, SocketRef, extract::HttpExtension};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::CorsLayer;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

const USER: &str = "user";
const VISITS: &str = "visits";

#[derive(Debug, Deserialize)]
struct Login {
    name: String,
}

/// The app: HTTP routes and the Socket.IO server, with sessions and CORS for `allowed_origins`.
pub fn app(allowed_origins: Vec<HeaderValue>) -> (Router, SocketIo) {
    // One store for both session layers: the engine and the routes share sessions. `Secure`
    // is off for plain-HTTP development; keep it on behind TLS.
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);

    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect).middleware(require_login);

    let cors = CorsLayer::new()
        .allow_origin(allowed_origins)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE]);

    let app = Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .layer(sessions.clone())
        .layer(layer.engine_layer(sessions))
        .layer(cors);
    (app, io)
}

async fn login(session: Session, Json(login): Json<Login>) -> Result<Json<Value>, StatusCode> {
    let name = login.name.trim();
    if name.is_empty() {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // A new session id on login, so a session id planted before it is worthless.
    session
        .cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    session
        .insert(USER, name)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(json!({ "user": name })))
}

async fn logout(session: Session) -> StatusCode {
    match session.flush().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn me(session: Session) -> Json<Value> {
    let user: Option<String> = session.get(USER).await.ok().flatten();
    let visits: u64 = session.get(VISITS).await.ok().flatten().unwrap_or(0);
    Json(json!({ "user": user, "visits": visits }))
}

/// Refuses sockets whose handshake carried no logged-in session.
async fn require_login(HttpExtension(session): HttpExtension<Session>) -> Result<(), ConnectError> {
    match session.get::<String>(USER).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ConnectError::new("log in first")),
        Err(error) => {
            tracing::warn!(%error, "session store failed");
            Err(ConnectError::new("session unavailable"))
        }
    }
}

async fn on_connect(socket: SocketRef, HttpExtension(session): HttpExtension<Session>) {
    let user: Option<String> = session.get(USER).await.ok().flatten();
    tracing::info!(id = %socket.id(), ?user, "connected");

    socket.on(
        "whoami",
        |HttpExtension(session): HttpExtension<Session>, ack: AckSender| async move {
            let user: Option<String> = session.get(USER).await.ok().flatten();
            let visits: u64 = session.get(VISITS).await.ok().flatten().unwrap_or(0);
            let _ = ack.send(&json!({ "user": user, "visits": visits }));
        },
    );

    socket.on(
        "visit",
        |HttpExtension(session): HttpExtension<Session>, ack: AckSender| async move {
            let visits = session.get::<u64>(VISITS).await.ok().flatten().unwrap_or(0) + 1;
            // Outside an HTTP request nobody saves the session for us: save it here.
            let saved = match session.insert(VISITS, visits).await {
                Ok(()) => session.save().await.is_ok(),
                Err(_) => false,
            };
            let _ = if saved {
                ack.send(&json!({ "visits": visits }))
            } else {
                ack.send(&json!({ "error": "session not saved" }))
            };
        },
    );
}
