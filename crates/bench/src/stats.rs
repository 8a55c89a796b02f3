//! Samples and their percentiles. Durations are kept as milliseconds in `f64`, so a
//! difference of two timings (which may be negative) is a sample like any other.

use std::time::Duration;

/// A set of measurements in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, milliseconds: f64) {
        self.values.push(milliseconds);
    }

    pub fn push_duration(&mut self, duration: Duration) {
        self.push(duration.as_secs_f64() * 1000.0);
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: Samples) {
        self.values.extend(other.values);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The nearest-rank percentile (`percent` in 0..=100): the smallest sample with at
    /// least `percent`% of the samples at or below it. `NaN` without samples.
    pub fn percentile(&self, percent: f64) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn p50(&self) -> f64 {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> f64 {
        self.percentile(99.0)
    }

    pub fn max(&self) -> f64 {
        self.percentile(100.0)
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        Self {
            values: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Samples = (1..=100).map(f64::from).collect();
        assert_eq!(samples.p50(), 50.0);
        assert_eq!(samples.p99(), 99.0);
        assert_eq!(samples.max(), 100.0);
        assert_eq!(samples.percentile(0.0), 1.0);

        let few: Samples = [3.0, -1.0, 2.0].into_iter().collect();
        assert_eq!(few.p50(), 2.0);
        assert_eq!(few.p99(), 3.0);
        assert!(Samples::new().p50().is_nan());
    }
}
