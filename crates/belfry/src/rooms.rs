//! Rooms given one or many at a time: what `join`, `leave`, `to`, `within` and `except` take.

use std::borrow::Cow;

use belfry_core::{Str, proto::SocketId};

/// One room or several, as [`Socket::join`](crate::Socket::join),
/// [`Socket::leave`](crate::Socket::leave), [`Socket::to`](crate::Socket::to),
/// [`SocketIo::to`](crate::SocketIo::to), [`BroadcastOperator::except`](crate::BroadcastOperator::except)
/// and the others take them (Node's `join(room)` and `join([a, b])`).
///
/// One room: `&str`, `String`, `&String`, `Cow<str>`, [`Str`], or a [`SocketId`] (a socket's
/// own room, Node's `io.to(socket.id)`). Several: an array or a `Vec` of any of those (of
/// anything `IntoRooms`), or a slice, `&[T; N]` or `&Vec<T>` of anything `AsRef<str>` (`&str`,
/// `String`, `Str`).
///
/// Implement it for a type of yours that names rooms: arrays and `Vec`s of it work too.
///
/// # Examples
///
/// ```
/// use belfry::{IntoRooms, SocketIo, SocketRef};
///
/// let (_layer, io) = SocketIo::new_layer();
/// io.ns("/", |socket: SocketRef| async move {
///     socket.join("lobby");
///     socket.join(["team-a", "team-a/voice"]);
///     let _ = socket.to(["lobby", "team-a"]).emit("joined", socket.id().as_str());
///     socket.leave(vec!["team-a".to_owned(), "team-a/voice".to_owned()]);
/// });
///
/// // A room type of one's own.
/// struct User(u64);
/// impl IntoRooms for User {
///     fn into_rooms(self) -> Vec<String> {
///         vec![format!("user:{}", self.0)]
///     }
/// }
/// let _ = io.to(User(7)).emit("hello", &());
/// ```
pub trait IntoRooms {
    /// The rooms, in order (a repeated room counts once where they are used).
    fn into_rooms(self) -> Vec<String>;
}

impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl IntoRooms for String {
    fn into_rooms(self) -> Vec<String> {
        vec![self]
    }
}

impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<String> {
        vec![self.clone()]
    }
}

impl IntoRooms for Cow<'_, str> {
    fn into_rooms(self) -> Vec<String> {
        vec![self.into_owned()]
    }
}

impl IntoRooms for Str {
    fn into_rooms(self) -> Vec<String> {
        vec![self.as_str().to_owned()]
    }
}

impl IntoRooms for &Str {
    fn into_rooms(self) -> Vec<String> {
        vec![self.as_str().to_owned()]
    }
}

impl IntoRooms for SocketId {
    fn into_rooms(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl IntoRooms for &SocketId {
    fn into_rooms(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl<T: IntoRooms, const N: usize> IntoRooms for [T; N] {
    fn into_rooms(self) -> Vec<String> {
        flatten(self, N)
    }
}

impl<T: AsRef<str>, const N: usize> IntoRooms for &[T; N] {
    fn into_rooms(self) -> Vec<String> {
        self.iter().map(|room| room.as_ref().to_owned()).collect()
    }
}

impl<T: AsRef<str>> IntoRooms for &[T] {
    fn into_rooms(self) -> Vec<String> {
        self.iter().map(|room| room.as_ref().to_owned()).collect()
    }
}

impl<T: IntoRooms> IntoRooms for Vec<T> {
    fn into_rooms(self) -> Vec<String> {
        let len = self.len();
        flatten(self, len)
    }
}

impl<T: AsRef<str>> IntoRooms for &Vec<T> {
    fn into_rooms(self) -> Vec<String> {
        self.iter().map(|room| room.as_ref().to_owned()).collect()
    }
}

/// The rooms of each of `all` (`len` of them, most often one room each), in order.
fn flatten<T: IntoRooms>(all: impl IntoIterator<Item = T>, len: usize) -> Vec<String> {
    let mut rooms = Vec::with_capacity(len);
    for one in all {
        rooms.extend(one.into_rooms());
    }
    rooms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(rooms: impl IntoRooms) -> Vec<String> {
        rooms.into_rooms()
    }

    #[test]
    // The borrowed forms are what this checks.
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn one_room_or_many() {
        let owned = String::from("b");
        let id = SocketId::from("abc");
        assert_eq!(rooms("a"), ["a"]);
        assert_eq!(rooms(owned.clone()), ["b"]);
        assert_eq!(rooms(&owned), ["b"]);
        assert_eq!(rooms(Cow::Borrowed("c")), ["c"]);
        assert_eq!(rooms(Str::from("d")), ["d"]);
        assert_eq!(rooms(&id), ["abc"]);
        assert_eq!(rooms(["a", "b"]), ["a", "b"]);
        assert_eq!(rooms(&["a", "b"]), ["a", "b"]);
        assert_eq!(rooms(&["a", "b"][..]), ["a", "b"]);
        assert_eq!(rooms(vec![owned.clone(), "e".to_owned()]), ["b", "e"]);
        assert_eq!(rooms(&vec![owned, "e".to_owned()]), ["b", "e"]);
        assert_eq!(rooms([id.clone(), id]), ["abc", "abc"]);
        assert!(rooms(Vec::<String>::new()).is_empty());
    }
}
