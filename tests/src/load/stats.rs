//! Latency arithmetic for the benchmarks: percentiles of raw samples (when a run keeps every
//! sample) and a fixed-size log-linear histogram (when it cannot: a ten-minute run at 1,000
//! commands/s with dozens of WebSocket clients sees tens of millions of pushes).

use serde::{Deserialize, Serialize};

/// p-quantile in milliseconds of nanosecond samples (`NaN` when there are none). Reorders
/// `samples`.
pub fn percentile(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    let (_, value, _) = samples.select_nth_unstable(rank);
    *value as f64 / 1e6
}

/// The largest of nanosecond samples, in milliseconds (`NaN` when there are none).
pub fn max_ms(samples: &[u64]) -> f64 {
    samples.iter().max().map_or(f64::NAN, |&m| m as f64 / 1e6)
}

/// Sub-buckets per power of two: values are kept to within 1/128 (0.8 %) of their size.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A histogram of nanosecond values with a relative error under 0.8 %, in 58 KiB, whatever
/// the number of values. Exact count, sum and maximum.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// The bucket of `value`: exact below 128, then 128 buckets per power of two.
fn bucket(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let top = 63 - value.leading_zeros();
    let shift = top - SUB_BITS;
    let mantissa = (value >> shift) as usize;
    ((shift as usize + 1) << SUB_BITS) + mantissa - SUB
}

/// The middle of bucket `index`'s range.
fn middle(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) - 1;
    let low = ((index & (SUB - 1)) + SUB) as u64;
    (low << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// Records one value (nanoseconds).
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `n` equal values.
    pub fn record_n(&mut self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.counts[bucket(value)] += n;
        self.count += n;
        self.sum += u128::from(value) * u128::from(n);
        self.max = self.max.max(value);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The p-quantile (0 < p ≤ 1) in milliseconds, `NaN` when empty: the value of rank
    /// ⌈p·count⌉, to within the bucket's width, never above the maximum.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return middle(index).min(self.max) as f64 / 1e6;
            }
        }
        self.max as f64 / 1e6
    }

    /// The largest value in milliseconds (`NaN` when empty).
    pub fn max_ms(&self) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        self.max as f64 / 1e6
    }

    /// The mean in milliseconds (`NaN` when empty).
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        self.sum as f64 / self.count as f64 / 1e6
    }

    /// The usual summary: count, p50, p90, p99, max, mean.
    pub fn summary(&self) -> Latency {
        Latency {
            count: self.count,
            p50_ms: self.quantile_ms(0.50),
            p90_ms: self.quantile_ms(0.90),
            p99_ms: self.quantile_ms(0.99),
            max_ms: self.max_ms(),
            mean_ms: self.mean_ms(),
        }
    }
}

/// Percentiles of one latency distribution, in milliseconds (`NaN`, written as `null` in
/// JSON, when nothing was measured).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    #[serde(with = "nan_as_null")]
    pub p50_ms: f64,
    #[serde(with = "nan_as_null")]
    pub p90_ms: f64,
    #[serde(with = "nan_as_null")]
    pub p99_ms: f64,
    #[serde(with = "nan_as_null")]
    pub max_ms: f64,
    #[serde(with = "nan_as_null")]
    pub mean_ms: f64,
}

/// JSON has no NaN: a figure that was not measured is `null`.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `NaN` and infinities as `null`.
    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            serializer.serialize_none()
        }
    }

    /// Reads `null` as `NaN`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_within_their_precision() {
        let mut previous = 0;
        for value in (0..20_000u64).chain([1 << 20, 123_456_789, 1 << 40, u64::MAX]) {
            let index = bucket(value);
            assert!(index >= previous, "{value}");
            assert!(index < BUCKETS);
            let mid = middle(index);
            let error = (mid as f64 - value as f64).abs() / (value.max(1) as f64);
            assert!(error <= 1.0 / SUB as f64, "{value} → {mid}");
            previous = index;
        }
    }

    #[test]
    fn quantiles_follow_the_ranks_of_the_values() {
        let mut histogram = Histogram::default();
        for ms in 1..=100u64 {
            histogram.record(ms * 1_000_000);
        }
        assert!((histogram.quantile_ms(0.5) - 50.0).abs() < 0.5);
        assert!((histogram.quantile_ms(0.99) - 99.0).abs() < 1.0);
        assert_eq!(histogram.max_ms(), 100.0);
        assert_eq!(histogram.count(), 100);
        assert!((histogram.mean_ms() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn an_empty_histogram_has_no_figures() {
        let summary = Histogram::default().summary();
        assert!(summary.p99_ms.is_nan());
        let json = serde_json::to_value(summary).unwrap();
        assert!(json["p99_ms"].is_null());
    }
}
