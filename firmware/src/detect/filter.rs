//! Small fixed-capacity median filters.

use heapless::Deque;

/// A sliding median over the last `size` values (at most `N`).
#[derive(Debug, Clone)]
pub(crate) struct Median<T, const N: usize> {
    window: Deque<T, N>,
    size: usize,
}

impl<T: Copy, const N: usize> Median<T, N> {
    /// A filter over the last `size` values, clamped to `1..=N`.
    pub(crate) fn new(size: usize) -> Self {
        Self {
            window: Deque::new(),
            size: size.clamp(1, N.max(1)),
        }
    }

    pub(crate) fn push(&mut self, value: T) {
        while self.window.len() >= self.size {
            self.window.pop_front();
        }
        // Cannot fail: the loop above made room (size <= N).
        let _ = self.window.push_back(value);
    }

    pub(crate) fn clear(&mut self) {
        self.window.clear();
    }

    /// The values in the window, sorted by `cmp`, passed to `pick` with their count.
    fn sorted<R>(
        &self,
        cmp: impl FnMut(&T, &T) -> core::cmp::Ordering,
        pick: impl FnOnce(&[T]) -> R,
    ) -> Option<R> {
        let first = *self.window.front()?;
        let mut buf = [first; N];
        let len = self.window.len();
        for (slot, value) in buf.iter_mut().zip(self.window.iter()) {
            *slot = *value;
        }
        let values = &mut buf[..len];
        values.sort_unstable_by(cmp);
        Some(pick(values))
    }
}

impl<const N: usize> Median<f32, N> {
    /// The median (the mean of the two middle values for an even count), `None` when empty.
    pub(crate) fn median(&self) -> Option<f32> {
        self.sorted(f32::total_cmp, |v| {
            let mid = v.len() / 2;
            if v.len() % 2 == 1 {
                v[mid]
            } else {
                (v[mid - 1] + v[mid]) / 2.0
            }
        })
    }
}

impl<const N: usize> Median<i32, N> {
    /// The median (the mean of the two middle values for an even count), `None` when empty.
    pub(crate) fn median(&self) -> Option<i32> {
        self.sorted(Ord::cmp, |v| {
            let mid = v.len() / 2;
            if v.len() % 2 == 1 {
                v[mid]
            } else {
                ((i64::from(v[mid - 1]) + i64::from(v[mid])) / 2) as i32
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_windows() {
        let mut m: Median<f32, 5> = Median::new(5);
        assert_eq!(m.median(), None);
        m.push(3.0);
        assert_eq!(m.median(), Some(3.0));
        m.push(1.0);
        assert_eq!(m.median(), Some(2.0));
        for v in [100.0, 2.0, 4.0] {
            m.push(v);
        }
        assert_eq!(m.median(), Some(3.0));
        m.push(-50.0); // 3.0 leaves the window
        assert_eq!(m.median(), Some(2.0));
    }

    #[test]
    fn size_is_clamped_and_window_slides() {
        let mut m: Median<i32, 3> = Median::new(99);
        for v in [1, 2, 3, 10, 11] {
            m.push(v);
        }
        assert_eq!(m.median(), Some(10));
        let mut one: Median<i32, 3> = Median::new(0);
        one.push(7);
        one.push(i32::MAX);
        assert_eq!(one.median(), Some(i32::MAX));
        let mut even: Median<i32, 4> = Median::new(4);
        for v in [i32::MAX, i32::MAX, i32::MAX - 2, 0] {
            even.push(v);
        }
        assert_eq!(even.median(), Some(i32::MAX - 1));
        even.clear();
        assert_eq!(even.median(), None);
    }
}
