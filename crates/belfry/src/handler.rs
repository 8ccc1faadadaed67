//! Handlers: async functions whose arguments are extractors.
//!
//! A handler is any `async fn` (or closure returning a future) taking up to 8 arguments that
//! implement [`FromContext`]: `SocketRef`, `Data<T>`, `AckSender`, `State<T>`... Extraction
//! runs before the function is called; if an extractor fails, the function is not called and
//! the failure is answered: a connect is refused with a CONNECT_ERROR carrying the message, an
//! event's ack (if the client asked for one) receives `{"error": message}`.

use std::{future::Future, pin::Pin, sync::Arc};

use belfry_core::{
    Str,
    parser::{Elements, Payload},
};

use crate::{ConnectError, DisconnectReason, SocketRef, extract::FromContext};

/// The future of a handler, whose output is `R`.
#[doc(hidden)]
pub type BoxFuture<R = ()> = Pin<Box<dyn Future<Output = R> + Send + 'static>>;

/// Everything a handler's extractors read from: the socket and what triggered the call.
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

    /// The ack id of the event, if the client asked for an answer.
    pub(crate) fn ack_id(&self) -> Option<u64> {
        match &self.kind {
            ContextKind::Event { ack, .. } => *ack,
            _ => None,
        }
    }
}

/// An extractor's refusal: the message the client is answered with (not constructible outside
/// Belfry).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Rejected(pub(crate) String);

/// An async function usable as a handler; implemented for functions of up to 8 extractors
/// whose future outputs `R` (`()` for handlers, `Result<(), E>` for middlewares).
///
/// You do not implement it: write an `async fn` (or an `async` closure) whose arguments are
/// extractors.
pub trait Handler<T, R = ()>: Clone + Send + Sync + 'static {
    /// Runs the extractors, then returns the handler's future.
    #[doc(hidden)]
    fn call(&self, ctx: &mut HandlerContext) -> Result<BoxFuture<R>, Rejected>;
}

/// A handler with its types erased, stored per event.
pub(crate) type ErasedHandler<R = ()> =
    Arc<dyn Fn(&mut HandlerContext) -> Result<BoxFuture<R>, Rejected> + Send + Sync>;

pub(crate) fn erase<H: Handler<T, R>, T, R>(handler: H) -> ErasedHandler<R> {
    Arc::new(move |ctx| handler.call(ctx))
}

/// A middleware (connect or packet) with its types erased: its error becomes the refusal it
/// stands for ([`ConnectError::from_middleware`]).
pub(crate) fn erase_middleware<H, T, E>(middleware: H) -> ErasedHandler<Result<(), ConnectError>>
where
    H: Handler<T, Result<(), E>>,
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

impl<F, Fut, R> Handler<(), R> for F
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    fn call(&self, _ctx: &mut HandlerContext) -> Result<BoxFuture<R>, Rejected> {
        Ok(Box::pin((self)()))
    }
}

macro_rules! impl_handler {
    ($($ty:ident),+) => {
        impl<F, Fut, R, $($ty,)+> Handler<($($ty,)+), R> for F
        where
            F: Fn($($ty,)+) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            $($ty: FromContext + Send + 'static,)+
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
