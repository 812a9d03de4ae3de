//! Segment sequence numbers.

use core::fmt;

/// A KCP segment sequence number (`sn`, `una` on the wire). Wraps at 2^32.
///
/// Like [`Timestamp`](crate::Timestamp) it has no `PartialOrd`: order goes through
/// [`Sn::since`] / [`Sn::is_before`], which are correct while two numbers are less than
/// 2^31 apart (windows are at most 65535 segments).
///
/// ```
/// use kcp_core::Sn;
/// let last = Sn::new(u32::MAX);
/// assert_eq!(last.add(1), Sn::new(0));
/// assert!(last.is_before(Sn::new(0)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sn(u32);

impl Sn {
    /// The sequence number with wire value `v`.
    pub const fn new(v: u32) -> Self {
        Self(v)
    }

    /// The raw wire value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Signed distance `self - earlier`.
    pub const fn since(self, earlier: Self) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// `true` if `self` comes strictly before `other`.
    pub const fn is_before(self, other: Self) -> bool {
        self.since(other) < 0
    }

    /// The number `n` places later (wrapping).
    #[must_use]
    pub const fn add(self, n: u32) -> Self {
        Self(self.0.wrapping_add(n))
    }
}

impl fmt::Debug for Sn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sn{}", self.0)
    }
}

impl fmt::Display for Sn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_across_the_wrap() {
        let a = Sn::new(u32::MAX - 1);
        let b = a.add(3);
        assert_eq!(b.get(), 1);
        assert_eq!(b.since(a), 3);
        assert!(a.is_before(b));
        assert!(!b.is_before(a));
        assert!(!a.is_before(a));
    }
}
