//! [`InFlightTable`]: the requests handed out and not yet answered, by [`RequestId`].

use super::action::RequestId;

/// One place of the table: its value while a request occupies it, and how many requests
/// used it before (part of the id, so that a late report for an earlier request is ignored).
#[derive(Debug)]
struct Slot<V> {
    generation: u32,
    value: Option<V>,
}

/// The top bit of a [`RequestId`]: set in the ids of a [`tagged`](InFlightTable::tagged)
/// table, so that two tables of one sender never hand out the same id.
const TAG: u64 = 1 << 63;
/// Generations wrap within 31 bits, below [`TAG`].
const GENERATIONS: u32 = (1 << 31) - 1;

/// The requests in flight: a slab whose places are reused, so that handing out and
/// answering a request costs no hashing and, once warm, no allocation. A [`RequestId`] is
/// the place and its generation (and the table's tag); an id whose request was answered
/// already (or that was never handed out, or by another table) finds nothing.
#[derive(Debug)]
pub(crate) struct InFlightTable<V> {
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    len: usize,
    tag: u64,
}

impl<V> InFlightTable<V> {
    /// Empty.
    pub(crate) fn new() -> Self {
        InFlightTable {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            tag: 0,
        }
    }

    /// Empty, handing out ids that no [`new`](Self::new) table hands out.
    pub(crate) fn tagged() -> Self {
        InFlightTable {
            tag: TAG,
            ..Self::new()
        }
    }

    /// True when `id` was handed out by a table of this one's kind (tagged or not).
    pub(crate) fn owns(&self, id: RequestId) -> bool {
        id.0 & TAG == self.tag
    }

    fn id(&self, generation: u32, index: u32) -> RequestId {
        RequestId(self.tag | u64::from(generation) << 32 | u64::from(index))
    }

    /// Requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when no request is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `value`; returns the id that finds it.
    pub(crate) fn insert(&mut self, value: V) -> RequestId {
        self.len += 1;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                // More than 2^32 requests in flight at once cannot fit in memory anyway.
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        let generation = slot.generation;
        self.id(generation, index)
    }

    /// Takes the value of `id`, if it is still in flight.
    pub(crate) fn remove(&mut self, id: RequestId) -> Option<V> {
        if !self.owns(id) {
            return None;
        }
        let index = (id.0 & u64::from(u32::MAX)) as u32;
        let generation = ((id.0 & !TAG) >> 32) as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1) & GENERATIONS;
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    /// The ids of the requests whose value satisfies `keep`.
    pub(crate) fn ids_where(&self, keep: impl Fn(&V) -> bool) -> Vec<RequestId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.value.as_ref().is_some_and(&keep))
            .map(|(index, slot)| self.id(slot.generation, u32::try_from(index).unwrap_or(u32::MAX)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_find_their_value_once_and_reused_places_get_new_ids() {
        let mut table = InFlightTable::new();
        let a = table.insert("a");
        let b = table.insert("b");
        assert_ne!(a, b);
        assert_eq!(table.len(), 2);
        assert_eq!(table.remove(a), Some("a"));
        assert_eq!(table.remove(a), None, "answered twice");
        let c = table.insert("c");
        assert_ne!(c, a, "the place is reused under a new id");
        assert_eq!(
            table.remove(a),
            None,
            "a late report for the earlier request"
        );
        assert_eq!(table.ids_where(|v| *v == "c"), vec![c]);
        assert_eq!(table.remove(c), Some("c"));
        assert_eq!(table.remove(b), Some("b"));
        assert!(table.is_empty());
        assert_eq!(table.remove(RequestId(99)), None, "never handed out");
    }

    #[test]
    fn a_tagged_table_never_takes_the_ids_of_an_untagged_one() {
        let mut plain = InFlightTable::new();
        let mut tagged = InFlightTable::tagged();
        let a = plain.insert("plain");
        let b = tagged.insert("tagged");
        assert_ne!(a, b, "the same place and generation in both");
        assert!(plain.owns(a) && !plain.owns(b));
        assert!(tagged.owns(b) && !tagged.owns(a));
        assert_eq!(tagged.remove(a), None);
        assert_eq!(plain.remove(b), None);
        assert_eq!(tagged.ids_where(|_| true), vec![b]);
        assert_eq!(tagged.remove(b), Some("tagged"));
        assert_eq!(plain.remove(a), Some("plain"));
    }
}
