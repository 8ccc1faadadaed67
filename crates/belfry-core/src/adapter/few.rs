//! A set that keeps a lone member inline.
//!
//! Every socket joins the room of its own id, so the in-memory adapter holds, per socket, a
//! room of one member and a list of one room. As hash sets these allocate a table of four
//! slots each (about 230 bytes per socket, with the allocator's headers); [`Few`] holds the
//! one member in place and makes the table only for a second.

use std::{
    borrow::Borrow,
    collections::{HashSet, hash_set},
    hash::{BuildHasher, Hash},
    iter, option,
};

/// A set of `T`: one member inline, more in a [`HashSet`] hashed with `S`.
///
/// Once a table is made it stays until the set is empty (a set that had two members is likely
/// to have two again), as a [`HashSet`] keeps its capacity.
#[derive(Clone, Debug)]
pub(crate) enum Few<T, S> {
    /// Exactly one member.
    One(T),
    /// Any other number of members; empty without an allocation.
    Many(HashSet<T, S>),
}

impl<T, S: Default> Default for Few<T, S> {
    fn default() -> Self {
        Few::Many(HashSet::default())
    }
}

impl<T: Hash + Eq, S: BuildHasher + Default> Few<T, S> {
    /// Adds `value`; false if it was a member already.
    pub(crate) fn insert(&mut self, value: T) -> bool {
        match self {
            Few::Many(set) if set.is_empty() => {
                *self = Few::One(value);
                true
            }
            Few::Many(set) => set.insert(value),
            Few::One(one) if *one == value => false,
            Few::One(_) => {
                let mut set = HashSet::with_capacity_and_hasher(2, S::default());
                set.insert(value);
                if let Few::One(one) = std::mem::take(self) {
                    set.insert(one);
                }
                *self = Few::Many(set);
                true
            }
        }
    }

    /// Removes `value`; false if it was not a member.
    pub(crate) fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Few::One(one) if (*one).borrow() == value => {
                *self = Few::default();
                true
            }
            Few::One(_) => false,
            Few::Many(set) => {
                let removed = set.remove(value);
                if removed && set.is_empty() {
                    // An emptied set gives its table back, as the room it may stand for is
                    // about to be dropped anyway, and a socket out of all rooms keeps nothing.
                    *self = Few::default();
                }
                removed
            }
        }
    }
}

impl<T, S> Few<T, S> {
    /// The number of members.
    pub(crate) fn len(&self) -> usize {
        match self {
            Few::One(_) => 1,
            Few::Many(set) => set.len(),
        }
    }

    /// True if it has no member.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, in no particular order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        match self {
            Few::One(one) => Iter::One(iter::once(one)),
            Few::Many(set) => Iter::Many(set.iter()),
        }
    }
}

/// The members of a [`Few`], borrowed.
pub(crate) enum Iter<'a, T> {
    One(iter::Once<&'a T>),
    Many(hash_set::Iter<'a, T>),
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match self {
            Iter::One(one) => one.next(),
            Iter::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::One(one) => one.size_hint(),
            Iter::Many(many) => many.size_hint(),
        }
    }
}

impl<'a, T, S> IntoIterator for &'a Few<T, S> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The members of a [`Few`], taken.
pub(crate) enum IntoIter<T> {
    One(option::IntoIter<T>),
    Many(hash_set::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            IntoIter::One(one) => one.next(),
            IntoIter::Many(many) => many.next(),
        }
    }
}

impl<T, S> IntoIterator for Few<T, S> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        match self {
            Few::One(one) => IntoIter::One(Some(one).into_iter()),
            Few::Many(set) => IntoIter::Many(set.into_iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;

    use super::Few;

    type Set = Few<String, RandomState>;

    fn sorted(set: &Set) -> Vec<String> {
        let mut members: Vec<String> = set.iter().cloned().collect();
        members.sort();
        members
    }

    #[test]
    fn a_lone_member_is_kept_without_a_table() {
        let mut set = Set::default();
        assert!(set.is_empty());
        assert!(set.insert("a".into()));
        assert!(matches!(set, Few::One(_)));
        assert!(!set.insert("a".into()));
        assert_eq!(set.len(), 1);
        assert_eq!(sorted(&set), ["a"]);
    }

    #[test]
    fn a_second_member_makes_the_table_and_it_stays_until_empty() {
        let mut set = Set::default();
        set.insert("a".into());
        assert!(set.insert("b".into()));
        assert!(matches!(set, Few::Many(_)));
        assert_eq!(sorted(&set), ["a", "b"]);
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert!(matches!(set, Few::Many(_)));
        assert_eq!(sorted(&set), ["b"]);
        assert!(set.insert("c".into()));
        assert_eq!(set.len(), 2);
        assert!(set.remove("b") && set.remove("c"));
        assert!(set.is_empty());
        // Emptied, it holds no table: the next member is inline again.
        assert!(matches!(&set, Few::Many(table) if table.capacity() == 0));
        assert!(set.insert("d".into()));
        assert!(matches!(set, Few::One(_)));
    }

    #[test]
    fn removing_the_lone_member_empties_it() {
        let mut set = Set::default();
        set.insert("a".into());
        assert!(!set.remove("b"));
        assert_eq!(set.len(), 1);
        assert!(set.remove("a"));
        assert!(set.is_empty());
        assert_eq!(set.iter().count(), 0);
        assert_eq!(set.into_iter().count(), 0);
    }

    #[test]
    fn members_are_taken_by_value() {
        let mut one = Set::default();
        one.insert("a".into());
        assert_eq!(one.into_iter().collect::<Vec<_>>(), ["a"]);
        let mut many = Set::default();
        for name in ["a", "b", "c"] {
            many.insert(name.into());
        }
        let mut taken: Vec<String> = many.into_iter().collect();
        taken.sort();
        assert_eq!(taken, ["a", "b", "c"]);
    }
}
