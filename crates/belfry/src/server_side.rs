//! Events between the servers of a cluster (Node's `serverSideEmit`).

use std::{fmt, future::Future, sync::Arc};

use crate::{Value, handler::BoxFuture};
use belfry_core::adapter::ServerSideReply;
use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};

/// Event names a server-side emit may not use (Node's list).
const RESERVED: [&str; 3] = ["connect", "connection", "new_namespace"];

/// True when `event` may not be sent between servers.
pub(crate) fn is_reserved(event: &str) -> bool {
    RESERVED.contains(&event)
}

/// A listener of server-side events, with its type erased.
pub(crate) type ServerSideHandler = Arc<dyn Fn(ServerSideEvent) -> BoxFuture + Send + Sync>;

pub(crate) fn erase_server_side<F, Fut>(handler: F) -> ServerSideHandler
where
    F: Fn(ServerSideEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |event| Box::pin(handler(event)))
}

/// An event another server of the cluster sent with
/// [`BroadcastOperator::server_side_emit`](crate::BroadcastOperator::server_side_emit) (or a Node
/// server with `io.serverSideEmit`), as its listener receives it.
///
/// Listeners are registered with [`SocketIo::on_server_side`](crate::SocketIo::on_server_side)
/// or [`NamespaceHandle::on_server_side`](crate::NamespaceHandle::on_server_side).
#[derive(Clone)]
pub struct ServerSideEvent {
    event: Arc<str>,
    args: Arc<[Value]>,
    /// Shared by the clones handed to several listeners: the first answer wins.
    reply: Option<Arc<Mutex<Option<ServerSideReply>>>>,
}

impl fmt::Debug for ServerSideEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSideEvent")
            .field("event", &self.event)
            .field("args", &self.args)
            .field("wants_ack", &self.wants_ack())
            .finish()
    }
}

impl ServerSideEvent {
    /// `[event, ...args]` from the wire; `None` unless the first element is a string.
    pub(crate) fn new(data: Vec<Value>, reply: Option<ServerSideReply>) -> Option<Self> {
        let mut items = data.into_iter();
        let Some(Value::String(event)) = items.next() else {
            return None;
        };
        Some(ServerSideEvent {
            event: event.into(),
            args: items.collect(),
            reply: reply.map(|reply| Arc::new(Mutex::new(Some(reply)))),
        })
    }

    /// The event name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The arguments, binary included.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The arguments as `T`: one argument as itself, several as a tuple, none as `()` (the rule
    /// of [`Data`](crate::extract::Data)); binary arguments as bytes.
    ///
    /// # Errors
    ///
    /// The arguments do not deserialize into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &*self.args {
            [] => belfry_core::args::from_value(&Value::Null),
            [one] => belfry_core::args::from_value(one),
            many => belfry_core::args::from_value(&Value::Array(many.to_vec())),
        }
    }

    /// True when the sender waits for an answer.
    pub fn wants_ack(&self) -> bool {
        self.reply
            .as_ref()
            .is_some_and(|reply| reply.lock().is_some())
    }

    /// Answers the sender (one value: Node's callback gets a single argument). Only the first
    /// answer of all the listeners of this event is sent; returns whether this one was.
    ///
    /// # Errors
    ///
    /// `answer` does not serialize to JSON.
    pub fn ack<T: Serialize + ?Sized>(&self, answer: &T) -> Result<bool, serde_json::Error> {
        let answer = serde_json::to_value(answer)?;
        let reply = self.reply.as_ref().and_then(|reply| reply.lock().take());
        Ok(reply.map(|reply| reply(answer)).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_data_rule() {
        let event = ServerSideEvent::new(vec!["ev".into(), 1.into(), "a".into()], None).unwrap();
        assert_eq!(event.event(), "ev");
        assert_eq!(event.data::<(u8, String)>().unwrap(), (1, "a".to_owned()));
        let one = ServerSideEvent::new(vec!["ev".into(), 7.into()], None).unwrap();
        assert_eq!(one.data::<u8>().unwrap(), 7);
        let none = ServerSideEvent::new(vec!["ev".into()], None).unwrap();
        none.data::<()>().unwrap();
        assert!(ServerSideEvent::new(vec![1.into()], None).is_none());
        assert!(ServerSideEvent::new(Vec::new(), None).is_none());
    }

    #[test]
    fn the_first_answer_wins() {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let sink = answers.clone();
        let event = ServerSideEvent::new(
            vec!["ev".into()],
            Some(Box::new(move |answer| sink.lock().push(answer))),
        )
        .unwrap();
        let copy = event.clone();
        assert!(event.wants_ack());
        assert!(copy.ack(&"first").unwrap());
        assert!(!event.ack(&"second").unwrap());
        assert!(!event.wants_ack());
        assert_eq!(*answers.lock(), vec![serde_json::Value::from("first")]);
    }

    #[test]
    fn binary_arguments_stay_binary() {
        let bytes = bytes::Bytes::from_static(&[0, 1, 255]);
        let data =
            belfry_core::args::to_values(&("ev", &bytes, crate::Binary(bytes.clone()))).unwrap();
        assert_eq!(data[1], Value::Binary(bytes.clone()));
        let event = ServerSideEvent::new(data, None).unwrap();
        let (a, b): (bytes::Bytes, crate::Binary) = event.data().unwrap();
        assert_eq!((a, b.0), (bytes.clone(), bytes));
    }
}
