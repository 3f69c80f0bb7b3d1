//! One lock per key (a device id), kept only while someone holds or waits for it: ids that
//! callers name once (also ones that do not exist) leave nothing behind.
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Locks by key.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// A handle on one key's lock; the entry goes when the last handle does.
#[derive(Debug)]
pub struct KeyLock<'a> {
    locks: &'a KeyedLocks,
    key: String,
    lock: Option<Arc<Mutex<()>>>,
}

impl KeyedLocks {
    /// The lock of `key` (created when nobody holds one).
    pub fn get(&self, key: &str) -> KeyLock<'_> {
        let key = key.to_string();
        let lock = Arc::clone(self.map.lock().entry(key.clone()).or_default());
        KeyLock { locks: self, key, lock: Some(lock) }
    }

    /// Keys with a live handle.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether no key has a live handle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KeyLock<'_> {
    /// The lock itself.
    pub fn mutex(&self) -> &Arc<Mutex<()>> {
        // Set at creation, taken only by drop.
        self.lock.as_ref().unwrap_or_else(|| unreachable!("a KeyLock holds its lock until dropped"))
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock();
        if let Some(lock) = self.lock.take() {
            // Under the map's lock nobody can take a new handle: two references (the map's
            // and ours) mean ours was the last.
            if Arc::strong_count(&lock) == 2 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_only_while_handles_do() {
        let locks = KeyedLocks::default();
        let a = locks.get("a");
        let a2 = locks.get("a");
        assert!(Arc::ptr_eq(a.mutex(), a2.mutex()));
        let held = a.mutex().lock();
        assert!(a2.mutex().try_lock().is_none(), "one lock per key");
        drop(held);
        drop(a);
        assert_eq!(locks.len(), 1);
        drop(a2);
        assert!(locks.is_empty());
        for i in 0..1000 {
            let _ = locks.get(&format!("missing-{i}"));
        }
        assert!(locks.is_empty());
    }
}
