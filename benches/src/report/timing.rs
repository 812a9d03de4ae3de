//! Wall-time samples, interleaved across the implementations being compared.
//!
//! The machine is shared and noisy. Running the contenders in rounds (A, B, C, A, B,
//! C, ...) spreads a burst of noise over all of them instead of one, and the median of
//! each one's samples discards the outliers. The ratio of two medians is what we
//! report.

use std::time::{Duration, Instant};

/// A contender: each call takes one sample and returns how long the timed part took
/// (the closure excludes its own set-up) and how many operations it covered.
pub type Case<'a> = Box<dyn FnMut() -> (Duration, u64) + 'a>;

/// Median time per operation of each case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Median seconds per operation.
    pub seconds_per_op: f64,
    /// Samples taken.
    pub samples: usize,
}

/// Samples every case in rounds until `budget` wall time has passed and each case has
/// at least `min_samples` samples; returns each case's median time per operation, in
/// the order given.
pub fn interleaved(budget: Duration, min_samples: usize, cases: &mut [Case<'_>]) -> Vec<Measured> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let start = Instant::now();
    // One untimed warm-up round: caches, allocator pools, lazy statics.
    for case in cases.iter_mut() {
        let _ = case();
    }
    loop {
        for (case, taken) in cases.iter_mut().zip(&mut samples) {
            let (elapsed, ops) = case();
            taken.push(elapsed.as_secs_f64() / ops.max(1) as f64);
        }
        if start.elapsed() >= budget && samples.iter().all(|s| s.len() >= min_samples) {
            break;
        }
    }
    samples
        .into_iter()
        .map(|mut s| Measured {
            seconds_per_op: median(&mut s),
            samples: s.len(),
        })
        .collect()
}

/// Times `routine` on `batch` fresh states made by `setup` (set-up and drop not timed).
pub fn batched<S>(
    batch: usize,
    mut setup: impl FnMut() -> S,
    mut routine: impl FnMut(&mut S),
) -> (Duration, u64) {
    let mut states: Vec<S> = (0..batch).map(|_| setup()).collect();
    let start = Instant::now();
    for state in &mut states {
        routine(std::hint::black_box(state));
    }
    let elapsed = start.elapsed();
    drop(states);
    (elapsed, batch as u64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn every_case_gets_its_minimum_samples() {
        let mut calls = [0u32; 2];
        let (first, second) = calls.split_at_mut(1);
        let mut cases: Vec<Case<'_>> = vec![
            Box::new(|| {
                first[0] += 1;
                (Duration::from_micros(2), 2)
            }),
            Box::new(|| {
                second[0] += 1;
                (Duration::from_micros(3), 1)
            }),
        ];
        let m = interleaved(Duration::ZERO, 5, &mut cases);
        drop(cases);
        assert_eq!(m[0].samples, 5);
        assert_eq!(m[0].seconds_per_op, 1e-6);
        assert_eq!(m[1].seconds_per_op, 3e-6);
        assert_eq!(calls, [6, 6], "one warm-up call each");
    }
}
