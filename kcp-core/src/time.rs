//! Milliseconds on the KCP wire clock.

use core::fmt;

/// A point in time on the KCP wire clock, in milliseconds since an arbitrary epoch.
///
/// The clock is 32 bits wide and wraps every ~49.7 days, exactly as the `ts` field on
/// the wire does. Two timestamps order correctly while they are less than 2^31 ms
/// apart. `Timestamp` deliberately has no `PartialOrd`: use [`Timestamp::since`],
/// [`Timestamp::is_before`] or [`Timestamp::has_reached`] so every comparison is a
/// wrapping one.
///
/// ```
/// use kcp_core::Timestamp;
/// let before_wrap = Timestamp::from_millis(u32::MAX - 5);
/// let after_wrap = before_wrap.add_millis(10);
/// assert_eq!(after_wrap.as_millis(), 4);
/// assert_eq!(after_wrap.since(before_wrap), 10);
/// assert!(before_wrap.is_before(after_wrap));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp(u32);

impl Timestamp {
    /// The timestamp `ms` milliseconds after the epoch (the value on the wire).
    pub const fn from_millis(ms: u32) -> Self {
        Self(ms)
    }

    /// The raw wire value.
    pub const fn as_millis(self) -> u32 {
        self.0
    }

    /// Signed `self - earlier` in milliseconds, correct across the wrap while the two
    /// are less than 2^31 ms apart.
    pub const fn since(self, earlier: Self) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// `true` if `self` lies strictly before `other`.
    pub const fn is_before(self, other: Self) -> bool {
        self.since(other) < 0
    }

    /// `true` if `self` is at or after `other` ("the clock has reached `other`").
    pub const fn has_reached(self, other: Self) -> bool {
        self.since(other) >= 0
    }

    /// The timestamp `ms` milliseconds later (wrapping).
    #[must_use]
    pub const fn add_millis(self, ms: u32) -> Self {
        Self(self.0.wrapping_add(ms))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_crosses_the_wrap() {
        let a = Timestamp::from_millis(u32::MAX);
        let b = Timestamp::from_millis(0);
        assert_eq!(b.since(a), 1);
        assert_eq!(a.since(b), -1);
        assert!(a.is_before(b));
        assert!(b.has_reached(a));
        assert!(!a.has_reached(b));
        assert!(a.has_reached(a));
        assert_eq!(a.add_millis(1), b);
    }

    #[test]
    fn half_range_is_the_ordering_limit() {
        let a = Timestamp::from_millis(0);
        assert_eq!(a.add_millis(i32::MAX as u32).since(a), i32::MAX);
        // One more and the order flips: this is the documented limit.
        assert!(a.add_millis(1 << 31).is_before(a));
    }
}
