//! The engine's devices and slots by id: looked up by hash, listed in id order.
//!
//! A report looks its device and slot up several times (to check, apply, forecast and journal
//! it); in B-trees keyed by text those lookups were a quarter of the engine's time per report
//! (string comparisons all the way down). Listing in order (pages of the status API, the tick,
//! snapshots) is rare next to lookups, so the order is made when asked: a sort of references,
//! no second copy of the keys kept in memory.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::{Entry, Values};
use std::hash::Hash;

use foldhash::fast::RandomState;

/// Records by id, hashed for lookups and sorted when listed.
#[derive(Debug, Clone)]
pub struct IdMap<K, V> {
    by_id: HashMap<K, V, RandomState>,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        Self {
            by_id: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq + Ord, V> IdMap<K, V> {
    /// The record under `id`.
    pub fn get<Q>(&self, id: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.get(id)
    }

    /// The record under `id`, to change.
    pub fn get_mut<Q>(&mut self, id: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.get_mut(id)
    }

    /// The stored id and record under `id`.
    pub fn get_key_value<Q>(&self, id: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.get_key_value(id)
    }

    /// Whether there is a record under `id`.
    pub fn contains_key<Q>(&self, id: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.contains_key(id)
    }

    /// The place of `id`'s record, filled or not.
    pub fn entry(&mut self, id: K) -> Entry<'_, K, V> {
        self.by_id.entry(id)
    }

    /// Stores `record` under `id`; the one it replaces.
    pub fn insert(&mut self, id: K, record: V) -> Option<V> {
        self.by_id.insert(id, record)
    }

    /// Takes the record under `id` out.
    pub fn remove<Q>(&mut self, id: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.by_id.remove(id)
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every record, in no particular order (for counts and searches whose result does not
    /// depend on it).
    pub fn unordered(&self) -> Values<'_, K, V> {
        self.by_id.values()
    }

    /// Every id and record in id order.
    pub fn sorted(&self) -> Vec<(&K, &V)> {
        let mut all: Vec<_> = self.by_id.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// The records after `after` in id order (all when `None`).
    pub fn sorted_after(&self, after: Option<&K>) -> Vec<&V> {
        let mut page: Vec<_> = self
            .by_id
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| *id > after))
            .collect();
        page.sort_unstable_by(|a, b| a.0.cmp(b.0));
        page.into_iter().map(|(_, record)| record).collect()
    }

    /// Every id in order, copied (for passes that change records as they go).
    pub fn sorted_ids(&self) -> Vec<K>
    where
        K: Clone,
    {
        let mut ids: Vec<K> = self.by_id.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for IdMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(records: I) -> Self {
        Self {
            by_id: records.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_borrowed_id_and_listings_in_id_order() {
        let mut map: IdMap<String, u32> = ["b", "c", "a"]
            .into_iter()
            .zip(1..)
            .map(|(id, n)| (id.to_string(), n))
            .collect();
        assert_eq!(map.get("c"), Some(&2));
        assert!(map.contains_key("a") && !map.contains_key("d"));
        assert_eq!(map.insert("d".into(), 4), None);
        assert_eq!(map.insert("d".into(), 5), Some(4));
        *map.get_mut("a").unwrap() += 10;
        assert_eq!(map.remove("b"), Some(1));
        let listed: Vec<_> = map
            .sorted()
            .into_iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(listed, [("a", 13), ("c", 2), ("d", 5)]);
        assert_eq!(map.sorted_ids(), ["a", "c", "d"]);
        assert_eq!(map.sorted_after(Some(&"a".to_string())), [&2, &5]);
        assert_eq!(map.sorted_after(None).len(), map.len());
        assert_eq!(map.unordered().sum::<u32>(), 20);
    }
}
