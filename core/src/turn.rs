//! [`TurnQueue`]: calls that may ask the client, waiting for their turn to
//! run on a legacy backend.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::event::Owner;

/// Calls waiting for the asking turn, by backend id: each owner's in the
/// order they came, the owners round robin, so that one client's many
/// calls cannot keep another client's one waiting behind them all. Calls
/// without an owner (stateless clients, who have no identity here) share
/// one place in the round.
#[derive(Debug, Default)]
pub(crate) struct TurnQueue {
    by_owner: FxHashMap<Option<Owner>, VecDeque<u64>>,
    /// Owners with calls waiting, in the order they are served.
    ring: VecDeque<Option<Owner>>,
    len: usize,
}

impl TurnQueue {
    /// Calls waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `call` of `owner` behind that owner's earlier calls.
    pub(crate) fn push(&mut self, owner: Option<Owner>, call: u64) {
        let queue = self.by_owner.entry(owner).or_default();
        if queue.is_empty() {
            self.ring.push_back(owner);
        }
        queue.push_back(call);
        self.len += 1;
    }

    /// The next call to get the turn: the oldest of the owner whose round
    /// it is; that owner goes to the back of the round.
    pub(crate) fn pop(&mut self) -> Option<u64> {
        while let Some(owner) = self.ring.pop_front() {
            let Some(queue) = self.by_owner.get_mut(&owner) else {
                continue;
            };
            let call = queue.pop_front();
            if queue.is_empty() {
                self.by_owner.remove(&owner);
            } else {
                self.ring.push_back(owner);
            }
            if let Some(call) = call {
                self.len -= 1;
                return Some(call);
            }
        }
        None
    }

    /// Takes `call` of `owner` out (it ended while waiting). Returns
    /// whether it was queued.
    pub(crate) fn remove(&mut self, owner: Option<Owner>, call: u64) -> bool {
        let Some(queue) = self.by_owner.get_mut(&owner) else {
            return false;
        };
        let Some(at) = queue.iter().position(|&c| c == call) else {
            return false;
        };
        queue.remove(at);
        self.len -= 1;
        if queue.is_empty() {
            self.by_owner.remove(&owner);
            self.ring.retain(|o| *o != owner);
        }
        true
    }

    pub(crate) fn clear(&mut self) {
        self.by_owner.clear();
        self.ring.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::TurnQueue;
    use crate::event::Owner;

    #[test]
    fn owners_take_turns_and_each_keeps_its_order() {
        let (a, b, c) = (Some(Owner(1)), Some(Owner(2)), None);
        let mut q = TurnQueue::default();
        for call in [10, 11, 12, 13] {
            q.push(a, call);
        }
        q.push(b, 20);
        q.push(c, 30);
        q.push(b, 21);
        assert_eq!(q.len(), 7);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [10, 20, 30, 11, 21, 12, 13]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_removed_call_is_skipped_and_an_emptied_owner_leaves_the_round() {
        let (a, b) = (Some(Owner(1)), Some(Owner(2)));
        let mut q = TurnQueue::default();
        q.push(a, 1);
        q.push(b, 2);
        q.push(a, 3);
        assert!(q.remove(b, 2));
        assert!(!q.remove(b, 2), "removed once");
        assert!(!q.remove(a, 99));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
        q.push(b, 4);
        assert_eq!(q.pop(), Some(4));
    }
}
