//! Engine.IO session ids and Socket.IO socket ids, and the hash maps keyed by them.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    hash::{BuildHasher, Hasher},
    sync::{Arc, OnceLock},
};

use base64::Engine as _;

/// An id type: text shared in an `Arc<str>`, hashed as `str` hashes (maps keyed by ids are
/// looked up by `&str` too), compared by pointer first and, for ids of the usual length, as
/// three words.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Eq, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl std::hash::Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                // Copies of one id share their text: a broadcast's lookups compare no bytes.
                // Ids of the usual length compare as arrays, inline (a broadcast that excludes
                // its sender compares every recipient once).
                Arc::ptr_eq(&self.0, &other.0)
                    || match (
                        <&[u8; 20]>::try_from(self.0.as_bytes()),
                        <&[u8; 20]>::try_from(other.0.as_bytes()),
                    ) {
                        (Ok(a), Ok(b)) => words(a) == words(b),
                        _ => self.0 == other.0,
                    }
            }
        }

        impl $name {
            /// A fresh random id: 120 bits from the operating system's CSPRNG, 20 URL-safe
            /// characters, as long as Node's.
            ///
            /// # Panics
            ///
            /// Panics if the operating system cannot provide random bytes, which leaves no
            /// safe way to make ids.
            pub fn random() -> $name {
                let text = random_text();
                $name(Arc::from(std::str::from_utf8(&text).expect("base64 is ASCII")))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.into())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s.into())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

id_type!(
    /// An Engine.IO session id.
    ///
    /// The default generator draws 15 bytes from the operating system's CSPRNG and encodes them as
    /// 20 URL-safe base64 characters, as long as Node's ids. A custom generator (see
    /// `belfry_engine::EngineConfigBuilder::session_id_generator`)
    /// may produce any non-empty string.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry_proto::Sid;
    ///
    /// let sid = Sid::random();
    /// assert_eq!(sid.as_str().len(), 20);
    /// assert!(sid.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    /// ```
    Sid
);

id_type!(
    /// A Socket.IO socket id (Node's `socket.id`), distinct from the id of the Engine.IO
    /// session that carries the socket ([`Sid`]): a client connected to two namespaces has one
    /// session and two sockets.
    ///
    /// # Examples
    ///
    /// ```
    /// use belfry_proto::SocketId;
    ///
    /// let id = SocketId::random();
    /// assert_eq!(id.as_str().len(), 20);
    /// ```
    SocketId
);

/// 20 random URL-safe base64 characters (15 bytes of the thread's buffer), on the stack.
fn random_text() -> [u8; 20] {
    let bytes = RANDOM.with_borrow_mut(RandomBuffer::take);
    let mut text = [0u8; 20];
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut text)
        .expect("15 bytes take 20 base64 characters");
    debug_assert_eq!(written, 20);
    text
}

/// An id of the usual length as three words, to compare without a `memcmp` call.
fn words(id: &[u8; 20]) -> (u64, u64, u32) {
    let (a, rest) = id.split_at(8);
    let (b, c) = rest.split_at(8);
    (
        u64::from_ne_bytes(a.try_into().expect("8 bytes")),
        u64::from_ne_bytes(b.try_into().expect("8 bytes")),
        u32::from_ne_bytes(c.try_into().expect("4 bytes")),
    )
}

/// Random bytes for ids, drawn from the operating system's CSPRNG for 16 ids at a time (one
/// system call where there were two per connection: the session's id and its socket's).
struct RandomBuffer {
    bytes: [u8; RandomBuffer::IDS * 15],
    used: usize,
}

impl RandomBuffer {
    const IDS: usize = 16;

    fn take(&mut self) -> [u8; 15] {
        if self.used == self.bytes.len() {
            getrandom::fill(&mut self.bytes).expect("the OS random source is available");
            self.used = 0;
        }
        let mut id = [0u8; 15];
        id.copy_from_slice(&self.bytes[self.used..self.used + 15]);
        // Handed out once: the bytes of an id are not kept.
        self.bytes[self.used..self.used + 15].fill(0);
        self.used += 15;
        id
    }
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomBuffer> = const {
        std::cell::RefCell::new(RandomBuffer {
            bytes: [0; RandomBuffer::IDS * 15],
            used: RandomBuffer::IDS * 15,
        })
    };
}

/// A map keyed by session ids, hashed with [`SidHasher`].
pub type SidMap<V> = HashMap<Sid, V, SidHasher>;

/// A set of session ids, hashed with [`SidHasher`].
pub type SidSet = HashSet<Sid, SidHasher>;

/// A map keyed by socket ids, hashed with [`SidHasher`].
pub type SocketIdMap<V> = HashMap<SocketId, V, SidHasher>;

/// A set of socket ids, hashed with [`SidHasher`].
pub type SocketIdSet = HashSet<SocketId, SidHasher>;

/// The hasher of [`SidMap`] and [`SidSet`]: a folded multiply per 8 bytes, seeded once per
/// process. Broadcasts hash every recipient's id two or three times (room membership, the
/// namespace's sockets): SipHash, made to resist chosen keys, would be most of a delivery's
/// work.
///
/// It resists collisions for keys nobody picks; it is not made to resist keys chosen to
/// collide. Maps keyed by ids only ever insert ids the server made (the random ids of
/// [`Sid::random`], or those of the application's own generator); a client's id only reaches
/// them as a lookup, which cannot lengthen a chain.
///
/// # Examples
///
/// ```
/// use belfry_proto::{Sid, sid::SidSet};
///
/// let mut ids = SidSet::default();
/// let sid = Sid::random();
/// assert!(ids.insert(sid.clone()));
/// assert!(ids.contains(sid.as_str()));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SidHasher {
    seed: u64,
}

impl Default for SidHasher {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // A fixed seed still hashes well: the seed only makes the layout differ per process.
            if getrandom::fill(&mut bytes).is_err() {
                return 0x243f_6a88_85a3_08d3;
            }
            u64::from_le_bytes(bytes)
        });
        SidHasher { seed }
    }
}

impl BuildHasher for SidHasher {
    type Hasher = SidHash;

    fn build_hasher(&self) -> SidHash {
        SidHash(self.seed)
    }
}

/// The state of one [`SidHasher`] hash.
#[derive(Clone, Copy, Debug)]
pub struct SidHash(u64);

impl SidHash {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(Self::MULTIPLIER);
        // Truncations on purpose: the low and high halves of the product folded together.
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for SidHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word: [u8; 8] = chunk.try_into().expect("chunks_exact yields 8 bytes");
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte) | 0x100);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_million_ids_are_unique_and_url_safe() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let sid = Sid::random();
            assert_eq!(sid.as_str().len(), 20);
            assert!(
                sid.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(seen.insert(sid), "duplicate session id");
        }
    }

    #[test]
    fn ids_are_equal_when_their_text_is() {
        let base = "abcdefghijklmnopqrst";
        let id = Sid::from(base);
        assert_eq!(
            id,
            Sid::from(base.to_owned()),
            "separate copies of one text"
        );
        for at in 0..base.len() {
            let mut other = base.as_bytes().to_vec();
            other[at] = b'_';
            let other = Sid::from(String::from_utf8(other).unwrap());
            assert_ne!(id, other, "differs at {at}");
        }
        for (a, b) in [
            ("a", "a"),
            ("a", "b"),
            (base, &base[..19]),
            ("x".repeat(21).as_str(), "x".repeat(21).as_str()),
        ] {
            assert_eq!(Sid::from(a) == Sid::from(b), a == b, "{a} {b}");
        }
    }

    #[test]
    fn the_id_hasher_spreads_ids_over_the_buckets() {
        // Sequential ids of a custom generator and random ids: the low bits (the bucket) of
        // 4,096 hashes cover most of 4,096 buckets, as a uniform hash does (~63%).
        let build = SidHasher::default();
        for ids in [
            (0..4096)
                .map(|i| Sid::from(i.to_string()))
                .collect::<Vec<_>>(),
            (0..4096).map(|_| Sid::random()).collect(),
            (0..4096)
                .map(|i| Sid::from(format!("/chat#{i:020}")))
                .collect(),
        ] {
            let buckets: HashSet<u64> = ids.iter().map(|id| build.hash_one(id) & 4095).collect();
            assert!(buckets.len() > 2400, "{} buckets", buckets.len());
        }
        assert_ne!(
            build.hash_one(Sid::from("ab")),
            build.hash_one(Sid::from("ab\0"))
        );
        let mut map = SidMap::default();
        map.insert(Sid::from("x"), 1);
        assert_eq!(map.get("x"), Some(&1));
    }
}
