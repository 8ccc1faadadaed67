//! The send queue's packets: a session's own, and groups shared with other sessions (a
//! broadcast's), in the order they were queued.

use std::{collections::VecDeque, fmt, sync::Arc};

use crate::Packet;

/// Packets queued for many sessions at once, such as a broadcast's: encoded once, and each
/// session's queue holds a reference to them rather than a copy of each packet.
///
/// A queue entry is then 16 bytes (the reference and the entry's place in the queue) instead
/// of a copy of each packet: a broadcast to a large room writes a fraction of the memory into
/// its recipients' queues, and its writers read a fraction of it.
///
/// ```
/// use belfry_engine::{Packet, SharedPackets};
///
/// let shared = SharedPackets::new(vec![Packet::Message("hi".into())]).expect("one packet");
/// assert_eq!(shared.len(), 1);
/// assert!(matches!(shared.get(0), Some(Packet::Message(text)) if text == "hi"));
/// ```
#[derive(Clone)]
pub struct SharedPackets(Arc<Group>);

/// The packets of a [`SharedPackets`], the first inline: a group of one (most broadcasts) is
/// one allocation.
struct Group {
    first: Packet,
    rest: Box<[Packet]>,
    /// Their length on the wire, for the queue's byte cap: counted once, not per recipient.
    wire_len: usize,
}

impl SharedPackets {
    /// Shares `packets`; `None` if there are none.
    pub fn new(packets: Vec<Packet>) -> Option<SharedPackets> {
        let wire_len = super::wire_len(&packets);
        let mut packets = packets.into_iter();
        let first = packets.next()?;
        Some(SharedPackets(Arc::new(Group {
            first,
            rest: packets.collect(),
            wire_len,
        })))
    }

    /// Shares one packet.
    pub fn one(packet: Packet) -> SharedPackets {
        SharedPackets(Arc::new(Group {
            wire_len: packet.wire_len(),
            first: packet,
            rest: Box::default(),
        }))
    }

    /// How many packets there are (at least one).
    #[expect(clippy::len_without_is_empty, reason = "never empty")]
    pub fn len(&self) -> usize {
        1 + self.0.rest.len()
    }

    /// Packet `i`, if there are that many.
    pub fn get(&self, i: usize) -> Option<&Packet> {
        match i {
            0 => Some(&self.0.first),
            _ => self.0.rest.get(i - 1),
        }
    }

    /// The packets in order.
    pub fn iter(&self) -> impl Iterator<Item = &Packet> {
        std::iter::once(&self.0.first).chain(self.0.rest.iter())
    }

    pub(crate) fn wire_len(&self) -> usize {
        self.0.wire_len
    }
}

impl fmt::Debug for SharedPackets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A session's queued packets: its own, moved in, and shared groups, referenced.
///
/// Entries (an own packet, or a shared group) are numbered in the order they were queued; a
/// shared group keeps its number, so that the own packets, kept apart, need none: the front
/// entry is the front shared group if that group's number is the front's, else the front own
/// packet. Numbers wrap (only equality is compared, and no queue holds 2^32 entries).
#[derive(Debug, Default)]
pub(crate) struct Packets {
    own: VecDeque<Packet>,
    shared: VecDeque<(u32, SharedPackets)>,
    /// The front entry's number.
    head: u32,
    /// How many packets of the front shared group were taken already.
    offset: usize,
    /// Packets queued (those of shared groups included, the ones taken excluded).
    len: usize,
}

impl Packets {
    /// How many packets are queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number the next entry at the back takes.
    fn back(&self) -> u32 {
        // No queue holds 2^32 entries: numbers taken modulo 2^32 stay distinct.
        self.head
            .wrapping_add((self.own.len() + self.shared.len()) as u32)
    }

    pub(crate) fn push_back(&mut self, packet: Packet) {
        self.own.push_back(packet);
        self.len += 1;
    }

    /// Puts `packet` before every other.
    pub(crate) fn push_front(&mut self, packet: Packet) {
        self.head = self.head.wrapping_sub(1);
        self.own.push_front(packet);
        self.len += 1;
    }

    pub(crate) fn push_shared(&mut self, group: &SharedPackets) {
        let number = self.back();
        self.shared.push_back((number, group.clone()));
        self.len += group.len();
    }

    /// Makes room for `wanted` own packets if none is queued, allocating exactly that: a
    /// burst (a fan-out) would grow the buffer by doubling, a reallocation every few packets.
    pub(crate) fn reserve_own(&mut self, wanted: usize) {
        if self.own.is_empty() && self.own.capacity() < wanted {
            self.own.reserve_exact(wanted);
        }
    }

    /// As [`Packets::reserve_own`], for shared groups.
    pub(crate) fn reserve_shared(&mut self, wanted: usize) {
        if self.shared.is_empty() && self.shared.capacity() < wanted {
            self.shared.reserve_exact(wanted);
        }
    }

    /// How many own packets and shared groups are queued: the sizes the next batch's buffers
    /// start with.
    pub(crate) fn entries(&self) -> [usize; 2] {
        [self.own.len(), self.shared.len()]
    }

    /// With nothing queued, drops each buffer that has room for more than `small` entries: an
    /// idle connection keeps no burst's buffer.
    pub(crate) fn release_large(&mut self, small: usize) {
        if self.is_empty() {
            if self.own.capacity() > small {
                self.own = VecDeque::new();
            }
            if self.shared.capacity() > small {
                self.shared = VecDeque::new();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.own.clear();
        self.shared.clear();
        self.offset = 0;
        self.len = 0;
    }

    /// Whether the front entry is the front shared group: its number is the front's, or no own
    /// packet is left (so that nothing queued is ever passed over).
    fn shared_in_front(&self) -> bool {
        self.shared
            .front()
            .is_some_and(|(n, _)| *n == self.head || self.own.is_empty())
    }

    /// The first packet.
    pub(crate) fn front(&self) -> Option<&Packet> {
        if self.shared_in_front() {
            self.shared.front().and_then(|(_, g)| g.get(self.offset))
        } else {
            self.own.front()
        }
    }

    /// Takes packets from the front, each given to `f` by reference, until `f` says to stop
    /// (the packet it says so of is taken) or none is left.
    pub(crate) fn take_each(&mut self, mut f: impl FnMut(&Packet) -> bool) {
        loop {
            if self.shared_in_front() {
                let (_, group) = self.shared.front().expect("a shared group is in front");
                let mut go_on = true;
                while go_on && let Some(packet) = group.get(self.offset) {
                    self.offset += 1;
                    self.len -= 1;
                    go_on = f(packet);
                }
                if self.offset == group.len() {
                    self.shared.pop_front();
                    self.offset = 0;
                    self.head = self.head.wrapping_add(1);
                }
                if !go_on {
                    return;
                }
            } else if let Some(packet) = self.own.pop_front() {
                self.head = self.head.wrapping_add(1);
                self.len -= 1;
                if !f(&packet) {
                    return;
                }
            } else {
                return;
            }
        }
    }

    /// Moves every packet of `other` behind these.
    pub(crate) fn append(&mut self, mut other: Packets) {
        if self.is_empty() {
            // Renumbering is not needed: only the order within `other` counts.
            *self = other;
            return;
        }
        while !other.own.is_empty() || !other.shared.is_empty() {
            if other.shared_in_front() {
                let (_, group) = other
                    .shared
                    .pop_front()
                    .expect("a shared group is in front");
                let taken = std::mem::take(&mut other.offset);
                if taken == 0 {
                    self.push_shared(&group);
                } else {
                    // Partly taken: the rest goes on as own packets, copied.
                    for packet in group.iter().skip(taken) {
                        self.push_back(packet.clone());
                    }
                }
            } else if let Some(packet) = other.own.pop_front() {
                self.push_back(packet);
            }
            other.head = other.head.wrapping_add(1);
        }
    }

    /// Takes the first packet (a copy of it if shared).
    #[cfg(test)]
    pub(crate) fn pop_front(&mut self) -> Option<Packet> {
        let mut first = None;
        self.take_each(|packet| {
            first = Some(packet.clone());
            false
        });
        first
    }

    /// The room for own packets.
    #[cfg(test)]
    pub(crate) fn own_capacity(&self) -> usize {
        self.own.capacity()
    }

    /// The room for shared groups.
    #[cfg(test)]
    pub(crate) fn shared_capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Every packet in order, shared ones copied.
    pub(crate) fn into_vec(mut self) -> Vec<Packet> {
        if self.shared.is_empty() {
            return Vec::from(self.own);
        }
        let mut out = Vec::with_capacity(self.len);
        self.take_each(|packet| {
            out.push(packet.clone());
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Packet {
        Packet::Message(text.into())
    }

    fn texts(packets: &[Packet]) -> Vec<String> {
        packets
            .iter()
            .map(|packet| match packet {
                Packet::Message(text) => text.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn group(names: &[&str]) -> SharedPackets {
        SharedPackets::new(names.iter().map(|n| message(n)).collect()).expect("not empty")
    }

    /// Own packets and shared groups come out in the order they went in, with a packet put in
    /// front first, and a stop in the middle of a group going on from there.
    #[test]
    fn own_and_shared_keep_their_order() {
        let mut queue = Packets::default();
        queue.push_back(message("a"));
        queue.push_shared(&group(&["b1", "b2", "b3"]));
        queue.push_back(message("c"));
        queue.push_back(message("d"));
        queue.push_shared(&group(&["e"]));
        queue.push_shared(&group(&["f"]));
        queue.push_back(message("g"));
        queue.push_front(Packet::Ping);
        assert_eq!(queue.len(), 10);
        assert_eq!(queue.front(), Some(&Packet::Ping));

        let mut taken = Vec::new();
        queue.take_each(|packet| {
            taken.push(packet.clone());
            taken.len() < 3
        });
        assert_eq!(texts(&taken), ["Ping", "a", "b1"]);
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.front(), Some(&message("b2")));
        // A packet put in front of a group partly taken goes before the group's rest.
        queue.push_front(Packet::Pong);
        let rest = queue.into_vec();
        assert_eq!(texts(&rest), ["Pong", "b2", "b3", "c", "d", "e", "f", "g"]);
    }

    /// Appending renumbers the other queue's groups behind this one's entries, and a group
    /// partly taken goes on where it stopped.
    #[test]
    fn append_keeps_the_order_of_both() {
        let mut front = Packets::default();
        front.push_shared(&group(&["a1", "a2"]));
        front.push_back(message("b"));
        let mut back = Packets::default();
        back.push_back(message("x"));
        back.push_shared(&group(&["y1", "y2", "y3"]));
        back.push_back(message("z"));
        back.push_shared(&group(&["w"]));
        // Takes "x", then "y1" and stops.
        let mut first = true;
        back.take_each(|_| std::mem::take(&mut first));
        assert_eq!(back.front(), Some(&message("y2")));

        front.append(back);
        assert_eq!(front.len(), 7);
        assert_eq!(
            texts(&front.into_vec()),
            ["a1", "a2", "b", "y2", "y3", "z", "w"]
        );

        let mut empty = Packets::default();
        let mut other = Packets::default();
        other.push_shared(&group(&["p"]));
        other.push_back(message("q"));
        empty.append(other);
        assert_eq!(texts(&empty.into_vec()), ["p", "q"]);
    }

    /// A packet put in front of a group partly taken, appended: the group's rest follows it,
    /// and nothing taken goes out twice. A stop on a group's last packet ends the group.
    #[test]
    fn append_after_a_packet_in_front_of_a_partly_taken_group() {
        let mut back = Packets::default();
        back.push_shared(&group(&["g1", "g2", "g3"]));
        back.push_back(message("own"));
        back.take_each(|_| false);
        back.push_front(Packet::Ping);
        let mut front = Packets::default();
        front.push_back(message("first"));
        front.append(back);
        assert_eq!(front.len(), 5);
        assert_eq!(
            texts(&front.into_vec()),
            ["first", "Ping", "g2", "g3", "own"]
        );

        let mut queue = Packets::default();
        queue.push_shared(&group(&["a1", "a2"]));
        queue.push_back(message("b"));
        let mut seen = 0;
        queue.take_each(|_| {
            seen += 1;
            seen < 2
        });
        assert_eq!(queue.front(), Some(&message("b")));
        assert_eq!(queue.len(), 1);
    }

    /// The queue holds the group itself, not a copy; an idle queue lets a burst's buffers go.
    #[test]
    fn groups_are_shared_and_large_buffers_released() {
        // A number and a pointer: 16 bytes on 64-bit targets.
        assert_eq!(
            std::mem::size_of::<(u32, SharedPackets)>(),
            2 * std::mem::size_of::<usize>()
        );
        let shared = group(&["x"]);
        let mut queue = Packets::default();
        queue.reserve_shared(8);
        assert!(queue.shared_capacity() >= 8);
        queue.push_shared(&shared);
        assert!(std::ptr::eq(
            queue.front().expect("queued"),
            shared.get(0).expect("one packet")
        ));
        assert_eq!(Arc::strong_count(&shared.0), 2);
        queue.release_large(1);
        assert_eq!(queue.entries(), [0, 1], "nothing is released while queued");
        queue.take_each(|_| true);
        assert_eq!(
            Arc::strong_count(&shared.0),
            1,
            "taken, the reference is dropped"
        );
        queue.release_large(1);
        assert_eq!(queue.shared_capacity(), 0);
        queue.push_shared(&shared);
        queue.clear();
        assert_eq!(
            Arc::strong_count(&shared.0),
            1,
            "cleared (a close), the same"
        );
    }

    /// Numbers wrap without changing the order.
    #[test]
    fn numbers_wrap() {
        let mut queue = Packets {
            head: u32::MAX - 1,
            ..Packets::default()
        };
        for i in 0..4 {
            queue.push_back(message(&format!("own{i}")));
            queue.push_shared(&group(&[&format!("shared{i}")]));
        }
        queue.push_front(Packet::Ping);
        let all = queue.into_vec();
        assert_eq!(
            texts(&all),
            [
                "Ping", "own0", "shared0", "own1", "shared1", "own2", "shared2", "own3", "shared3"
            ]
        );
    }

    #[test]
    fn shared_packets_hold_their_wire_length() {
        assert!(SharedPackets::new(Vec::new()).is_none());
        let two = group(&["hello", "!"]);
        assert_eq!(two.len(), 2);
        assert_eq!(
            two.wire_len(),
            message("hello").wire_len() + message("!").wire_len()
        );
        assert_eq!(SharedPackets::one(message("hi")).len(), 1);
        assert!(two.get(2).is_none());
    }
}
