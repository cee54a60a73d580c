//! Puts back in order what several threads return out of order: items numbered as they were
//! handed out come back in any order and leave in number order, each as soon as all before it
//! have left.
//!
//! It holds only the items that came back early, so what it holds is bounded by how far ahead
//! the caller lets the threads get (see `next`). It does no work on the items and has no threads.

use std::collections::BTreeMap;

/// Items numbered 0, 1, 2, … that arrive in any order and leave in number order.
pub(crate) struct InOrder<T> {
    /// The number of the next item to leave.
    next: u64,
    /// Items that came before their turn, by number.
    early: BTreeMap<u64, T>,
}

impl<T> InOrder<T> {
    pub(crate) fn new() -> InOrder<T> {
        InOrder {
            next: 0,
            early: BTreeMap::new(),
        }
    }

    /// Takes item `number` and hands `due` every item that may now leave, in order. Each number
    /// comes once; one that already left is a caller's mistake and panics.
    pub(crate) fn put(&mut self, number: u64, item: T, mut due: impl FnMut(T)) {
        assert!(
            number >= self.next && !self.early.contains_key(&number),
            "item {number} came twice"
        );
        if number != self.next {
            self.early.insert(number, item);
            return;
        }
        due(item);
        self.next += 1;
        while let Some(item) = self.early.remove(&self.next) {
            due(item);
            self.next += 1;
        }
    }

    /// The number of the next item to leave: of `n` items handed out, `n - next()` have not
    /// left yet.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// How many items came early and are held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.early.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_in(order: &[u64]) -> (Vec<u64>, usize) {
        let mut q = InOrder::new();
        let mut out = Vec::new();
        let mut most_held = 0;
        for &n in order {
            q.put(n, n, |i| out.push(i));
            most_held = most_held.max(q.held());
        }
        assert_eq!(q.held(), 0, "nothing is left behind");
        (out, most_held)
    }

    #[test]
    fn items_in_order_pass_straight_through() {
        let (out, held) = all_in(&[0, 1, 2, 3]);
        assert_eq!(out, [0, 1, 2, 3]);
        assert_eq!(held, 0);
    }

    #[test]
    fn items_out_of_order_leave_in_order_as_soon_as_their_turn_comes() {
        let mut q = InOrder::new();
        let mut out = Vec::new();
        q.put(2, "c", |i| out.push(i));
        q.put(1, "b", |i| out.push(i));
        assert!(out.is_empty(), "0 has not come");
        assert_eq!(q.next(), 0);
        q.put(0, "a", |i| out.push(i));
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(q.next(), 3);
        q.put(4, "e", |i| out.push(i));
        q.put(3, "d", |i| out.push(i));
        assert_eq!(out, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn only_the_items_that_came_early_are_held() {
        // One slow item keeps the ones after it; they leave the moment it comes.
        let (out, held) = all_in(&[1, 2, 3, 0, 5, 4, 6]);
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(held, 3);
    }

    #[test]
    fn a_scrambled_run_comes_out_whole_and_in_order() {
        // Every number once, in an order that comes back out of step by up to 16.
        let order: Vec<u64> = (0..1000u64)
            .collect::<Vec<_>>()
            .chunks(16)
            .flat_map(|c| c.iter().rev().copied().collect::<Vec<_>>())
            .collect();
        let (out, held) = all_in(&order);
        assert_eq!(out, (0..1000).collect::<Vec<_>>());
        assert!(held < 16, "{held}");
    }

    #[test]
    #[should_panic(expected = "came twice")]
    fn a_number_that_already_left_is_a_mistake() {
        let mut q = InOrder::new();
        q.put(0, (), |_| {});
        q.put(0, (), |_| {});
    }
}
