//! Which element of the per-CPU counter array (`VIP_COUNTERS`) each VIP key
//! counts in. The data plane finds the slot in the key's `VIPS` value, so a
//! reply costs one hash lookup and one array index instead of two hash
//! lookups; the agent hands the slots out and takes them back here.

use std::collections::{BTreeMap, VecDeque};

use responder_common::VipKey;

/// A slot for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub index: u32,
    /// Newly handed to the key: its counters must be zeroed before the key
    /// is installed (they may hold a previous key's counts).
    pub fresh: bool,
}

/// Slots `0..capacity`, handed out to keys. Never-used slots go first, then
/// released ones oldest first: a program run that looked a VIP up just
/// before its removal may still count into its slot once, so a slot is
/// reused as late as possible.
#[derive(Debug)]
pub(crate) struct CounterSlots {
    capacity: u32,
    next_unused: u32,
    released: VecDeque<u32>,
    by_key: BTreeMap<VipKey, u32>,
}

impl CounterSlots {
    pub(crate) fn new(capacity: u32) -> Self {
        CounterSlots {
            capacity,
            next_unused: 0,
            released: VecDeque::new(),
            by_key: BTreeMap::new(),
        }
    }

    /// The key's slot: the one it has, else a new one; None when every
    /// slot is taken.
    pub(crate) fn assign(&mut self, key: &VipKey) -> Option<Slot> {
        if let Some(&index) = self.by_key.get(key) {
            return Some(Slot {
                index,
                fresh: false,
            });
        }
        let index = if self.next_unused < self.capacity {
            self.next_unused += 1;
            self.next_unused - 1
        } else {
            self.released.pop_front()?
        };
        self.by_key.insert(*key, index);
        Some(Slot { index, fresh: true })
    }

    /// Takes the key's slot back; returns it, if the key had one.
    pub(crate) fn release(&mut self, key: &VipKey) -> Option<u32> {
        let index = self.by_key.remove(key)?;
        self.released.push_back(index);
        Some(index)
    }

    #[cfg(test)]
    pub(crate) fn slot_of(&self, key: &VipKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Every key with a slot, by key.
    pub(crate) fn assigned(&self) -> Vec<(VipKey, u32)> {
        self.by_key
            .iter()
            .map(|(key, slot)| (*key, *slot))
            .collect()
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> VipKey {
        VipKey::v4(2, 0, 0, [192, 0, 2, n])
    }

    #[test]
    fn a_key_keeps_its_slot() {
        let mut slots = CounterSlots::new(4);
        assert_eq!(
            slots.assign(&key(1)),
            Some(Slot {
                index: 0,
                fresh: true
            })
        );
        assert_eq!(
            slots.assign(&key(2)),
            Some(Slot {
                index: 1,
                fresh: true
            })
        );
        assert_eq!(
            slots.assign(&key(1)),
            Some(Slot {
                index: 0,
                fresh: false
            }),
            "assigning again keeps the slot and its counters"
        );
        assert_eq!(slots.slot_of(&key(2)), Some(1));
        assert_eq!(slots.assigned(), vec![(key(1), 0), (key(2), 1)]);
    }

    #[test]
    fn unused_slots_go_first_then_released_ones_oldest_first() {
        let mut slots = CounterSlots::new(3);
        for n in 1..=3 {
            slots.assign(&key(n));
        }
        assert_eq!(slots.release(&key(2)), Some(1));
        assert_eq!(slots.release(&key(1)), Some(0));
        assert_eq!(slots.release(&key(1)), None, "released once");
        let reused: Vec<u32> = [4, 5]
            .iter()
            .map(|n| slots.assign(&key(*n)).expect("a free slot").index)
            .collect();
        assert_eq!(reused, vec![1, 0], "oldest release first");
        assert!(slots.assign(&key(4)).is_some_and(|slot| !slot.fresh));
    }

    #[test]
    fn a_full_table_refuses_new_keys_until_one_is_released() {
        let mut slots = CounterSlots::new(2);
        slots.assign(&key(1));
        slots.assign(&key(2));
        assert_eq!(slots.assign(&key(3)), None);
        assert_eq!(slots.slot_of(&key(3)), None, "a refused key holds nothing");
        slots.release(&key(1));
        assert_eq!(
            slots.assign(&key(3)),
            Some(Slot {
                index: 0,
                fresh: true
            })
        );
        assert_eq!(slots.capacity(), 2);
    }

    #[test]
    fn released_slots_are_not_handed_out_while_unused_ones_remain() {
        let mut slots = CounterSlots::new(3);
        slots.assign(&key(1));
        slots.release(&key(1));
        assert_eq!(slots.assign(&key(2)).map(|slot| slot.index), Some(1));
        assert_eq!(slots.assign(&key(3)).map(|slot| slot.index), Some(2));
        assert_eq!(slots.assign(&key(4)).map(|slot| slot.index), Some(0));
    }
}
