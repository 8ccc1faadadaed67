//! Extractors: what a handler's arguments can be.
//!
//! Every extractor implements [`FromContext<K>`](FromContext) for the [`kind`]s of handler it
//! fits (its "in" below): one in the wrong handler (`Data<T>` in a disconnect handler, `Event`
//! in a connect handler) is a compile error. A failed extraction says how to fix it, and is
//! answered to the client (see [`crate::handler`]).
//!
//! | extractor | gives | in |
//! |---|---|---|
//! | [`SocketRef`] | the socket | every handler |
//! | [`Data<T>`] | the event's arguments (one argument: it; several: them as a tuple/array), or the connect auth | connect, events |
//! | [`TryData<T>`] | the same as a `Result`, never refused | connect, events |
//! | [`Args`] | every argument, however many, binary included; serializes back spread, as it came | events |
//! | [`AckSender`](crate::AckSender) | answers the client's ack | events |
//! | [`Event`] | the event name | events |
//! | [`Bin`] | the binary attachments | events |
//! | [`State<T>`] | a state registered with [`SocketIoBuilder::with_state`](crate::SocketIoBuilder::with_state) | every handler |
//! | [`Extension<T>`] | a value stored on the socket with `Socket::insert_extension` | every handler |
//! | [`HttpExtension<T>`] | an extension of the handshake request (put there by a tower layer) | every handler |
//! | [`SocketIo`] | the server handle | every handler |
//! | [`DisconnectReason`] | why the socket left | disconnect |
//! | `Option<E>` | `Some` if `E` extracts, `None` if not; never refused | where `E` fits |
//!
//! Connect handlers are the namespace's handler (`io.ns`, `io.dynamic_ns`) and its connect
//! middlewares; event handlers are `socket.on`, `once`, `on_any` and packet middlewares;
//! disconnect handlers are `on_disconnecting` and `on_disconnect`.

use std::{borrow::Cow, convert::Infallible, fmt, marker::PhantomData};

use belfry_core::{args, parser::Elements};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::{
    DisconnectReason, SocketIo, SocketRef,
    handler::{ContextKind, HandlerContext, HandlerKind, kind},
};

/// A type a handler argument can be in handlers of kind `K` ([`kind::Connect`],
/// [`kind::Event`], [`kind::Disconnect`]): built from the [`HandlerContext`].
///
/// An extractor implements it for each kind it fits, so that using it where it cannot work is
/// a compile error: for every kind with `impl<K: HandlerKind> FromContext<K>`, for events only
/// with `impl FromContext<kind::Event>`. The context's methods read the socket, an event's name,
/// arguments and ack id, a connect's auth, a disconnect's reason.
///
/// # Examples
///
/// An extractor for every handler, and one for events only:
///
/// ```
/// use belfry::{
///     SocketRef,
///     extract::FromContext,
///     handler::{HandlerContext, HandlerKind, kind},
/// };
///
/// #[derive(Clone)]
/// struct User(String);
///
/// /// The user a connect middleware stored on the socket.
/// struct CurrentUser(User);
///
/// impl<K: HandlerKind> FromContext<K> for CurrentUser {
///     type Rejection = &'static str;
///
///     fn from_context(ctx: &mut HandlerContext) -> Result<Self, Self::Rejection> {
///         ctx.socket().extension::<User>().map(CurrentUser).ok_or("log in first")
///     }
/// }
///
/// /// The event's first argument, as a string; refused when there is none.
/// struct FirstArg(String);
///
/// impl FromContext<kind::Event> for FirstArg {
///     type Rejection = String;
///
///     fn from_context(ctx: &mut HandlerContext) -> Result<Self, Self::Rejection> {
///         let args = ctx.args().ok_or("only events have arguments")?;
///         match args.get::<String>(0) {
///             Some(Ok(first)) => Ok(FirstArg(first)),
///             Some(Err(e)) => Err(e.to_string()),
///             None => Err("no argument".to_owned()),
///         }
///     }
/// }
///
/// async fn rename(CurrentUser(user): CurrentUser, FirstArg(name): FirstArg, socket: SocketRef) {
///     let _ = socket.emit("renamed", &(user.0, name));
/// }
/// # let (_layer, io) = belfry::SocketIo::new_layer();
/// # io.ns("/", |socket: SocketRef, CurrentUser(_): CurrentUser| async move {
/// #     socket.on("rename", rename);
/// # });
/// ```
///
/// An extractor used in a handler it does not fit is a compile error:
///
/// ```compile_fail,E0277
/// use belfry::{AckSender, SocketIo};
///
/// let (_layer, io) = SocketIo::new_layer();
/// // A connect has no ack to answer.
/// io.ns("/", |ack: AckSender| async move { drop(ack) });
/// ```
///
/// ```compile_fail,E0277
/// use belfry::{DisconnectReason, SocketIo, SocketRef};
///
/// let (_layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     // Only disconnect handlers have a reason.
///     socket.on("leave", |reason: DisconnectReason| async move { drop(reason) });
/// });
/// ```
///
/// ```compile_fail,E0277
/// use belfry::{SocketIo, SocketRef, extract::Event};
///
/// let (_layer, io) = SocketIo::new_layer();
/// // A connect is no event: `Event` would refuse every client.
/// io.ns("/", |socket: SocketRef, Event(name): Event| async move { drop((socket, name)) });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be extracted in a {K} handler",
    label = "not an extractor of {K} handlers",
    note = "`Data<T>`/`TryData<T>`: connect and event handlers; `Args`, `AckSender`, `Event`, `Bin`: event handlers only (`socket.on`, `once`, `on_any`, packet middlewares); `DisconnectReason`: disconnect handlers only; `SocketRef`, `State<T>`, `Extension<T>`, `HttpExtension<T>`, `SocketIo`: every handler",
    note = "a custom extractor fits the kinds it implements `FromContext<K>` for: `impl<K: HandlerKind> FromContext<K>` for every kind"
)]
pub trait FromContext<K: HandlerKind>: Sized {
    /// Why extraction failed; its message is answered to the client.
    type Rejection: fmt::Display;

    /// Extracts the value.
    ///
    /// # Errors
    ///
    /// The rejection, when the context does not hold what the extractor needs.
    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Self::Rejection>;
}

impl<K: HandlerKind> FromContext<K> for SocketRef {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(ctx.socket.clone())
    }
}

impl<K: HandlerKind, T: FromContext<K>> FromContext<K> for Option<T> {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(T::from_context(ctx).ok())
    }
}

/// The JSON the data extractors read: the single argument, the arguments as an array, or the
/// connect auth (`{}` when the client sent none).
pub(crate) fn data_json(ctx: &HandlerContext) -> Result<Cow<'_, str>, &'static str> {
    match &ctx.kind {
        ContextKind::Event { args, .. } => Ok(match args.len() {
            0 => Cow::Borrowed("null"),
            1 => Cow::Borrowed(args.first().unwrap_or("null")),
            _ => {
                let mut json = String::from("[");
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    json.push_str(arg);
                }
                json.push(']');
                Cow::Owned(json)
            }
        }),
        ContextKind::Connect { auth } => Ok(Cow::Borrowed(auth.as_deref().unwrap_or("{}"))),
        ContextKind::Disconnect { .. } => Err("a disconnect handler has no data"),
    }
}

/// The event's arguments (or a connect's auth) deserialized into `T`.
///
/// One argument is deserialized as `T`; several as a tuple (or array) `T`; none as `null`
/// (so `()` or `Option<_>`). Refused, with serde's message, when they do not fit `T`. A binary
/// attachment (a client's `Buffer`, anywhere in the arguments) fills a `bytes::Bytes` field.
///
/// # Examples
///
/// ```
/// use belfry::{SocketRef, extract::Data};
///
/// #[derive(serde::Deserialize)]
/// struct Message { room: String, text: String }
///
/// async fn on_chat(socket: SocketRef, Data(msg): Data<Message>) {
///     let _ = socket.to(msg.room.clone()).emit("chat", &msg.text);
/// }
/// # let _ = on_chat;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data<T>(pub T);

/// Connect (the auth) and event (the arguments) handlers.
impl<T: DeserializeOwned> FromContext<kind::Connect> for Data<T> {
    type Rejection = DataRejection;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, DataRejection> {
        Data::extract(ctx)
    }
}

impl<T: DeserializeOwned> FromContext<kind::Event> for Data<T> {
    type Rejection = DataRejection;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, DataRejection> {
        Data::extract(ctx)
    }
}

impl<T: DeserializeOwned> Data<T> {
    fn extract(ctx: &HandlerContext) -> Result<Self, DataRejection> {
        let json = data_json(ctx).map_err(|e| DataRejection(e.to_owned()))?;
        args::from_str(&json, ctx.attachments())
            .map(Data)
            .map_err(|e| DataRejection(format!("invalid event data: {e}")))
    }
}

/// Why [`Data`] refused the event.
#[derive(Debug, Clone)]
pub struct DataRejection(String);

impl fmt::Display for DataRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every argument of the event, however many there are (Node's `...args`), binary included:
/// each as the JSON text the client sent (checked, not parsed: [`Args::raw`]), with the event's
/// binary attachments ([`Args::attachments`]) where their placeholders stand. It serializes
/// back as the same argument list, so `socket.emit("ev", &args)` and `ack.send(&args)` send them
/// spread, as Node's `emit("ev", ...args)` does: JSON copied as its text, binary as binary.
/// [`Args::get`] and [`Args::values`] parse when a handler needs the values.
///
/// # Examples
///
/// ```
/// use belfry::{AckSender, SocketRef, extract::Args};
///
/// async fn echo(socket: SocketRef, args: Args, ack: AckSender) {
///     let _ = socket.emit("echo", &args); // ["echo", a1, ..., an]
///     let _ = ack.send(&args); // [a1, ..., an]
///     if let Some(Ok(first)) = args.get::<String>(0) {
///         tracing::debug!(%first, count = args.len(), "echoed");
///     }
/// }
/// # let _ = echo;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Args {
    elements: Elements,
    attachments: Vec<Bytes>,
}

impl Args {
    /// Arguments of JSON text (`elements`) whose placeholders stand for `attachments`.
    pub fn new(elements: Elements, attachments: Vec<Bytes>) -> Args {
        Args {
            elements,
            attachments,
        }
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The JSON text of argument `index`, as the client wrote it (binary as placeholders);
    /// `None` past the last one.
    pub fn raw(&self, index: usize) -> Option<&str> {
        self.elements.get(index)
    }

    /// The JSON text of each argument, in order.
    pub fn iter_raw(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.elements.iter()
    }

    /// The event's binary attachments, in the order of their placeholders' numbers.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// Argument `index` as a `T` (binary where its placeholders stand: a `bytes::Bytes` or
    /// [`Binary`](crate::Binary) field gets it); `None` past the last argument.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Option<Result<T, serde_json::Error>> {
        self.elements
            .get(index)
            .map(|json| args::from_str(json, &self.attachments))
    }

    /// Every argument as a [`Value`](crate::Value), binary included, object keys in order.
    ///
    /// # Errors
    ///
    /// An argument nests deeper than serde_json parses (128 levels).
    pub fn values(&self) -> Result<Vec<crate::Value>, serde_json::Error> {
        self.elements
            .iter()
            .map(|json| args::from_str(json, &self.attachments))
            .collect()
    }
}

impl FromContext<kind::Event> for Args {
    type Rejection = DataRejection;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, DataRejection> {
        // The decoder's split, shared: nothing is parsed or copied.
        ctx.args()
            .ok_or_else(|| DataRejection("only events have arguments".to_owned()))
    }
}

impl serde::Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        // A tuple: spread into separate arguments by `emit` and `AckSender::send`. Without
        // binary, each element is its text, copied into the packet by Belfry's writer (and
        // checked into a serde_json `RawValue` for any other serializer: see `RawJson`). With
        // binary, each element is its value: the packet numbers its own attachments.
        let mut tuple = serializer.serialize_tuple(self.len())?;
        if self.attachments.is_empty() {
            for json in self.elements.iter() {
                tuple.serialize_element(&args::RawJson(json))?;
            }
        } else {
            for json in self.elements.iter() {
                let value: crate::Value =
                    args::from_str(json, &self.attachments).map_err(serde::ser::Error::custom)?;
                tuple.serialize_element(&value)?;
            }
        }
        tuple.end()
    }
}

/// Like [`Data`], but hands the handler the deserialization result instead of refusing.
#[derive(Debug)]
pub struct TryData<T>(pub Result<T, serde_json::Error>);

/// Connect (the auth) and event (the arguments) handlers.
impl<T: DeserializeOwned> FromContext<kind::Connect> for TryData<T> {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(TryData(ctx.data()))
    }
}

impl<T: DeserializeOwned> FromContext<kind::Event> for TryData<T> {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(TryData(ctx.data()))
    }
}

/// The name of the event being handled (useful in a handler shared by several events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event(pub String);

impl FromContext<kind::Event> for Event {
    type Rejection = &'static str;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, &'static str> {
        ctx.event_name()
            .map(|name| Event(name.to_owned()))
            .ok_or("only event handlers have an event name")
    }
}

/// The binary attachments of the event, in order (`Buffer` arguments on the Node client). Their
/// places in the arguments hold `{"_placeholder":true,"num":i}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin(pub Vec<Bytes>);

impl FromContext<kind::Event> for Bin {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(Bin(ctx.attachments().to_vec()))
    }
}

/// A state registered with [`SocketIoBuilder::with_state`](crate::SocketIoBuilder::with_state)
/// (or derived with axum's `FromRef` by
/// [`SocketIoBuilder::with_state_from`](crate::SocketIoBuilder::with_state_from)), cloned.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use belfry::{SocketIo, SocketRef, extract::State};
///
/// #[derive(Clone, Default)]
/// struct Counter(Arc<AtomicUsize>);
///
/// let (_layer, io) = SocketIo::builder().with_state(Counter::default()).build_layer();
/// io.ns("/", |_socket: SocketRef, State(counter): State<Counter>| async move {
///     counter.0.fetch_add(1, Ordering::Relaxed);
/// });
/// ```
#[derive(Debug, Clone)]
pub struct State<T>(pub T);

impl<K: HandlerKind, T: Clone + Send + Sync + 'static> FromContext<K> for State<T> {
    type Rejection = MissingState<T>;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, MissingState<T>> {
        ctx.socket
            .io()
            .state::<T>()
            .map(State)
            .ok_or(MissingState(PhantomData))
    }
}

/// [`State<T>`] found no state of type `T`.
pub struct MissingState<T>(PhantomData<T>);

impl<T> fmt::Display for MissingState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "State of type `{}` was not found. Perhaps you forgot to add it with `SocketIoBuilder::with_state`?",
            std::any::type_name::<T>()
        )
    }
}

impl<T> fmt::Debug for MissingState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A value stored on the socket with
/// [`Socket::insert_extension`](crate::Socket::insert_extension) (by a middleware, say), cloned.
/// Refused when there is none of type `T`.
#[derive(Debug, Clone)]
pub struct Extension<T>(pub T);

impl<K: HandlerKind, T: Clone + Send + Sync + 'static> FromContext<K> for Extension<T> {
    type Rejection = MissingExtension<T>;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, MissingExtension<T>> {
        ctx.socket
            .extension::<T>()
            .map(Extension)
            .ok_or(MissingExtension(PhantomData, "the socket"))
    }
}

/// An extension of the handshake HTTP request, cloned: what a tower layer wrapping the engine
/// put there (a `tower_sessions::Session`, an authenticated user...).
#[derive(Debug, Clone)]
pub struct HttpExtension<T>(pub T);

impl<K: HandlerKind, T: Clone + Send + Sync + 'static> FromContext<K> for HttpExtension<T> {
    type Rejection = MissingExtension<T>;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, MissingExtension<T>> {
        ctx.socket
            .req_parts()
            .extensions
            .get::<T>()
            .cloned()
            .map(HttpExtension)
            .ok_or(MissingExtension(PhantomData, "the handshake request"))
    }
}

/// [`Extension<T>`] or [`HttpExtension<T>`] found no value of type `T`.
pub struct MissingExtension<T>(PhantomData<T>, &'static str);

impl<T> fmt::Display for MissingExtension<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = if self.1 == "the socket" {
            "Perhaps you forgot to store it with `Socket::insert_extension` (in a middleware)?"
        } else {
            "Perhaps you forgot to add the layer that inserts it, inside the engine (`SocketIoLayer::engine_layer`)?"
        };
        write!(
            f,
            "Extension of type `{}` was not found in {}. {hint}",
            std::any::type_name::<T>(),
            self.1
        )
    }
}

impl<T> fmt::Debug for MissingExtension<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<K: HandlerKind> FromContext<K> for SocketIo {
    type Rejection = Infallible;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, Infallible> {
        Ok(ctx.socket.io())
    }
}

impl FromContext<kind::Disconnect> for DisconnectReason {
    type Rejection = &'static str;

    fn from_context(ctx: &mut HandlerContext) -> Result<Self, &'static str> {
        ctx.disconnect_reason()
            .ok_or("only disconnect handlers have a disconnect reason")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `["e",...args]` as an emit writes it, and its attachments.
    fn emitted(args: &Args) -> (String, Vec<Bytes>) {
        let mut text = String::new();
        let attachments = args::push_event_array(&mut text, "e", args).unwrap();
        (text, attachments)
    }

    /// Without binary, the arguments go out spread as their text (serde_json's writer checks
    /// it); with binary, as their values, the attachments numbered in the order written.
    #[test]
    fn args_go_out_spread() {
        let text = Args::new(
            Elements::parse(r#"[{"b": 1}, "x\u00e9"]"#).unwrap(),
            Vec::new(),
        );
        assert_eq!(emitted(&text).0, r#"["e",{"b": 1},"x\u00e9"]"#);
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            r#"[{"b": 1},"x\u00e9"]"#
        );
        let (zero, one) = (Bytes::from_static(b"0"), Bytes::from_static(b"1"));
        let binary = Args::new(
            Elements::parse(r#"[{"_placeholder":true,"num":1},[{"_placeholder":true,"num":0}]]"#)
                .unwrap(),
            vec![zero.clone(), one.clone()],
        );
        assert_eq!(
            emitted(&binary),
            (
                r#"["e",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]"#.to_owned(),
                vec![one, zero]
            )
        );
    }
}
