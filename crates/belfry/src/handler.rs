//! Handlers: async functions whose arguments are extractors.
//!
//! A handler is any `async fn` (or closure returning a future) taking up to 8 arguments that
//! implement [`FromContext`]: `SocketRef`, `Data<T>`, `AckSender`, `State<T>`... Extraction
//! runs before the function is called; if an extractor fails, the function is not called and
//! the failure is answered: a connect is refused with a CONNECT_ERROR carrying the message, an
//! event's ack (if the client asked for one) receives `{"error": message}`.
//!
//! Where a handler runs is its [`kind`]: [`kind::Connect`] (`io.ns`, `io.dynamic_ns`, connect
//! middlewares), [`kind::Event`] (`socket.on`, `once`, `on_any`, packet middlewares) or
//! [`kind::Disconnect`] (`on_disconnecting`, `on_disconnect`). Each extractor implements
//! [`FromContext<K>`](FromContext) for the kinds it fits, so an extractor in the wrong handler
//! (`Data<T>` in a disconnect handler, `AckSender` in a connect handler) is a compile error
//! rather than a handler that never runs:
//!
//! ```compile_fail,E0277
//! use belfry::{SocketIo, SocketRef, extract::Data};
//!
//! let (_layer, io) = SocketIo::new_layer();
//! io.ns("/", |socket: SocketRef| async move {
//!     // A disconnect has no data: `Data<T>` is for connect and event handlers.
//!     socket.on_disconnect(|Data(name): Data<String>| async move { drop(name) });
//! });
//! ```

use std::{future::Future, pin::Pin, sync::Arc};

use belfry_core::{
    Str,
    parser::{Elements, Payload},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::{ConnectError, DisconnectReason, SocketRef, extract::Args, extract::FromContext};

/// Where a handler runs: the marker types of the `K` parameter of [`Handler`] and
/// [`FromContext`].
///
/// An extractor that fits every handler implements `FromContext<K>` for every
/// [`HandlerKind`] `K`; one that needs an event implements `FromContext<kind::Event>` only.
pub mod kind {
    /// A connect handler: the namespace's handler (`io.ns(path, handler)`,
    /// `io.dynamic_ns(matcher, handler)`) and its connect middlewares
    /// ([`NamespaceHandle::middleware`](crate::NamespaceHandle::middleware)). Its context has
    /// the client's auth ([`HandlerContext::auth`](super::HandlerContext::auth)).
    #[derive(Debug, Clone, Copy)]
    pub enum Connect {}

    /// An event handler: `socket.on`, `socket.once`, `socket.on_any` and packet middlewares
    /// ([`Socket::packet_middleware`](crate::Socket::packet_middleware)). Its context has the
    /// event's name, arguments, attachments and ack id.
    #[derive(Debug, Clone, Copy)]
    pub enum Event {}

    /// A disconnect handler: `socket.on_disconnecting` and `socket.on_disconnect`. Its context
    /// has the [`DisconnectReason`](crate::DisconnectReason).
    #[derive(Debug, Clone, Copy)]
    pub enum Disconnect {}
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::kind::Connect {}
    impl Sealed for super::kind::Event {}
    impl Sealed for super::kind::Disconnect {}
}

/// One of the three [`kind`]s of handler: [`kind::Connect`], [`kind::Event`],
/// [`kind::Disconnect`] (sealed). Bound an extractor's `K` with it to make it fit every
/// handler: `impl<K: HandlerKind> FromContext<K> for MyExtractor`.
pub trait HandlerKind: sealed::Sealed + Send + Sync + 'static {
    /// `"connect"`, `"event"` or `"disconnect"`.
    const NAME: &'static str;
}

impl HandlerKind for kind::Connect {
    const NAME: &'static str = "connect";
}

impl HandlerKind for kind::Event {
    const NAME: &'static str = "event";
}

impl HandlerKind for kind::Disconnect {
    const NAME: &'static str = "disconnect";
}

/// The future of a handler, whose output is `R`.
#[doc(hidden)]
pub type BoxFuture<R = ()> = Pin<Box<dyn Future<Output = R> + Send + 'static>>;

/// Everything a handler's extractors read from: the socket and what triggered the call (a
/// connect's auth, an event's name, arguments and ack id, a disconnect's reason).
///
/// A custom extractor ([`FromContext`]) reads it through the methods below; those of another
/// kind of handler return `None`.
#[derive(Debug)]
pub struct HandlerContext {
    pub(crate) socket: SocketRef,
    pub(crate) kind: ContextKind,
}

/// One per handler run, inside its future: an event's variant is the large one, and boxing it
/// would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ContextKind {
    Connect {
        auth: Option<Str>,
    },
    Event {
        name: Str,
        payload: Payload,
        /// The arguments (after the name), as the decoder split them.
        args: Elements,
        ack: Option<u64>,
    },
    Disconnect {
        reason: DisconnectReason,
    },
}

impl HandlerContext {
    /// The socket the handler runs for.
    pub fn socket(&self) -> &SocketRef {
        &self.socket
    }

    /// The name of the event being handled; `None` outside event handlers.
    pub fn event_name(&self) -> Option<&str> {
        match &self.kind {
            ContextKind::Event { name, .. } => Some(&**name),
            _ => None,
        }
    }

    /// The event's arguments, binary included, as the [`Args`] extractor has them (shared with
    /// the packet: nothing is parsed or copied); `None` outside event handlers.
    pub fn args(&self) -> Option<Args> {
        match &self.kind {
            ContextKind::Event { args, payload, .. } => Some(Args::new(
                args.clone(),
                // Most events carry no binary: no call for an empty clone.
                if payload.attachments.is_empty() {
                    Vec::new()
                } else {
                    payload.attachments.clone()
                },
            )),
            _ => None,
        }
    }

    /// The event's binary attachments, in the order of their placeholders' numbers; empty
    /// outside event handlers.
    pub fn attachments(&self) -> &[Bytes] {
        match &self.kind {
            ContextKind::Event { payload, .. } => &payload.attachments,
            _ => &[],
        }
    }

    /// The ack id of the event, if the client asked for an answer; `None` outside event
    /// handlers.
    pub fn ack_id(&self) -> Option<u64> {
        match &self.kind {
            ContextKind::Event { ack, .. } => *ack,
            _ => None,
        }
    }

    /// The JSON text of the client's auth (the CONNECT packet's data), if it sent one; `None`
    /// outside connect handlers.
    pub fn auth(&self) -> Option<&str> {
        match &self.kind {
            ContextKind::Connect { auth } => auth.as_deref(),
            _ => None,
        }
    }

    /// Why the socket left; `None` outside disconnect handlers.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        match &self.kind {
            ContextKind::Disconnect { reason } => Some(*reason),
            _ => None,
        }
    }

    /// What [`Data<T>`](crate::extract::Data) extracts: the event's arguments (one: it;
    /// several: a tuple or array; none: `null`), or a connect's auth (`{}` when the client sent
    /// none), as a `T`, binary attachments filling `bytes::Bytes` fields.
    ///
    /// # Errors
    ///
    /// The arguments do not fit `T`, or this is a disconnect handler (which has no data).
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match crate::extract::data_json(self) {
            Ok(json) => belfry_core::args::from_str(&json, self.attachments()),
            Err(message) => Err(serde::de::Error::custom(message)),
        }
    }
}

/// An extractor's refusal: the message the client is answered with (not constructible outside
/// Belfry).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Rejected(pub(crate) String);

/// An async function usable as a handler of kind `K` (see [`kind`]); implemented for functions
/// of up to 8 extractors, each fitting `K` ([`FromContext<K>`](FromContext)), whose future
/// outputs `R` (`()` for handlers, `Result<(), E>` for middlewares).
///
/// You do not implement it: write an `async fn` (or an `async` closure) whose arguments are
/// extractors of that kind.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a {K} handler",
    label = "an argument is not an extractor of {K} handlers (or there are more than 8, or the future's output is not `{R}`)",
    note = "where extractors fit: `Data<T>`, `TryData<T>`: connect and event handlers; `Args`, `AckSender`, `Event`, `Bin`: event handlers; `DisconnectReason`: disconnect handlers; `SocketRef`, `State<T>`, `Extension<T>`, `HttpExtension<T>`, `SocketIo`: every handler; `Option<E>`: where `E` fits",
    note = "connect handlers: `io.ns`, `io.dynamic_ns`, connect middlewares; event handlers: `socket.on`, `once`, `on_any`, packet middlewares; disconnect handlers: `on_disconnecting`, `on_disconnect` (a disconnect has no data: read what you need in the connect or event handlers, or store it with `socket.insert_extension`)"
)]
pub trait Handler<T, K: HandlerKind, R = ()>: Clone + Send + Sync + 'static {
    /// Runs the extractors, then returns the handler's future.
    #[doc(hidden)]
    fn call(&self, ctx: &mut HandlerContext) -> Result<BoxFuture<R>, Rejected>;
}

/// A handler with its types erased, stored per event.
pub(crate) type ErasedHandler<R = ()> =
    Arc<dyn Fn(&mut HandlerContext) -> Result<BoxFuture<R>, Rejected> + Send + Sync>;

pub(crate) fn erase<H: Handler<T, K, R>, T, K: HandlerKind, R>(handler: H) -> ErasedHandler<R> {
    Arc::new(move |ctx| handler.call(ctx))
}

/// A middleware (connect or packet) with its types erased: its error becomes the refusal it
/// stands for ([`ConnectError::from_middleware`]).
pub(crate) fn erase_middleware<H, T, K, E>(middleware: H) -> ErasedHandler<Result<(), ConnectError>>
where
    H: Handler<T, K, Result<(), E>>,
    K: HandlerKind,
    E: std::fmt::Display + Send + 'static,
{
    Arc::new(move |ctx| {
        let future = middleware.call(ctx)?;
        Ok(
            Box::pin(async move { future.await.map_err(ConnectError::from_middleware) })
                as BoxFuture<Result<(), ConnectError>>,
        )
    })
}

impl<F, Fut, K, R> Handler<(), K, R> for F
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    K: HandlerKind,
{
    fn call(&self, _ctx: &mut HandlerContext) -> Result<BoxFuture<R>, Rejected> {
        Ok(Box::pin((self)()))
    }
}

macro_rules! impl_handler {
    ($($ty:ident),+) => {
        impl<F, Fut, K, R, $($ty,)+> Handler<($($ty,)+), K, R> for F
        where
            F: Fn($($ty,)+) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            K: HandlerKind,
            $($ty: FromContext<K> + Send + 'static,)+
        {
            #[allow(non_snake_case)]
            fn call(&self, ctx: &mut HandlerContext) -> Result<BoxFuture<R>, Rejected> {
                $(
                    let $ty = $ty::from_context(ctx)
                        .map_err(|rejection| Rejected(rejection.to_string()))?;
                )+
                Ok(Box::pin((self)($($ty,)+)))
            }
        }
    };
}

impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
