//! Values named by a slot and an epoch, for queues of deadlines that must not touch what they
//! name until one is due: the engine's heartbeats, and the connect timeout of the Socket.IO
//! layer.
//!
//! An entry waiting in such a queue keeps the `(slot, epoch)` its value got. Whenever the entry
//! no longer holds (the value was removed, or its owner [`bump`](Slots::bump)ed it), the slot's
//! epoch moves on, and the entry, when due, finds a different epoch: it is dropped without a
//! look at the value.

use std::collections::VecDeque;

/// A slab whose slots carry an epoch (see the module).
#[derive(Debug)]
pub struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    epoch: u32,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Puts `value` in a free slot (a new one if none is): its slot and epoch.
    pub fn insert(&mut self, value: T) -> (u32, u32) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len())
                    .expect("fewer than 2^32 values at once: each stands for a connection");
                self.slots.push(Slot {
                    value: None,
                    epoch: 0,
                });
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.value = Some(value);
        entry.epoch = entry.epoch.wrapping_add(1);
        (slot, entry.epoch)
    }

    /// The value in `slot`, if `epoch` is still the slot's.
    pub fn get(&self, slot: u32, epoch: u32) -> Option<&T> {
        self.slots
            .get(slot as usize)
            .filter(|entry| entry.epoch == epoch)
            .and_then(|entry| entry.value.as_ref())
    }

    /// The value in `slot`, whatever its epoch.
    pub fn value(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.value.as_ref()
    }

    /// Makes what waits for `slot` stale: its new epoch, `None` for an empty slot.
    pub fn bump(&mut self, slot: u32) -> Option<u32> {
        let entry = self.slots.get_mut(slot as usize)?;
        entry.value.as_ref()?;
        entry.epoch = entry.epoch.wrapping_add(1);
        Some(entry.epoch)
    }

    /// Takes the value out of `slot` if `epoch` is still the slot's, freeing the slot (and
    /// making what waits for it stale).
    pub fn remove(&mut self, slot: u32, epoch: u32) -> Option<T> {
        let entry = self
            .slots
            .get_mut(slot as usize)
            .filter(|entry| entry.epoch == epoch)?;
        let value = entry.value.take()?;
        entry.epoch = entry.epoch.wrapping_add(1);
        self.free.push(slot);
        Some(value)
    }

    /// No slot holds a value.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == self.free.len()
    }

    /// Drops the entries in front of `queue` that no longer hold (`named` gives an entry's slot
    /// and epoch), up to the first that does, which it returns. A queue kept in due order then
    /// wakes its task only for an entry that still holds, rather than for each one answered
    /// since it was pushed.
    pub fn first_holding<'q, E>(
        &self,
        queue: &'q mut VecDeque<E>,
        named: impl Fn(&E) -> (u32, u32),
    ) -> Option<&'q E> {
        while let Some(entry) = queue.front() {
            let (slot, epoch) = named(entry);
            if self.get(slot, epoch).is_some() {
                break;
            }
            queue.pop_front();
        }
        queue.front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_until_its_slot_moves_on() {
        let mut slots = Slots::default();
        let (slot, epoch) = slots.insert("first");
        assert_eq!(slots.get(slot, epoch), Some(&"first"));
        let bumped = slots.bump(slot).expect("the slot holds a value");
        assert_eq!(slots.get(slot, epoch), None);
        assert_eq!(slots.value(slot), Some(&"first"));
        assert_eq!(slots.remove(slot, epoch), None);
        assert_eq!(slots.remove(slot, bumped), Some("first"));
        assert!(slots.is_empty());
        assert_eq!(slots.bump(slot), None);
        // The slot is taken again, with an epoch of its own.
        let (again, later) = slots.insert("second");
        assert_eq!(again, slot);
        assert_eq!(slots.get(slot, bumped), None);
        assert_eq!(slots.get(again, later), Some(&"second"));
        assert!(!slots.is_empty());
    }

    #[test]
    fn entries_that_no_longer_hold_go_from_the_front() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        let b = slots.insert("b");
        let c = slots.insert("c");
        let mut queue = VecDeque::from([a, b, c]);
        slots.bump(a.0);
        slots.remove(b.0, b.1);
        assert_eq!(slots.first_holding(&mut queue, |&e| e), Some(&c));
        assert_eq!(queue, [c]);
        slots.remove(c.0, c.1);
        assert_eq!(slots.first_holding(&mut queue, |&e| e), None);
        assert!(queue.is_empty());
    }
}
