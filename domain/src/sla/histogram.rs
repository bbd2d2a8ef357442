//! The buckets of the SLA report's duration histogram.
//!
//! The compliance report answers "median and 90th percentile of the business minutes" over a
//! year from pre-aggregated counts of `(duration, count)`. With exact minutes a long metric
//! (resolution: hours to days) has nearly one count per measurement, so a year reads hundreds
//! of thousands of them. Here durations are grouped into buckets in the manner of an HDR
//! histogram:
//!
//! - below [`EXACT_BELOW`] minutes (2 h 8 min) every minute is its own bucket: exact;
//! - above, each power of two `[2^e, 2^(e+1))` is cut into [`SUB_BUCKETS`] buckets of equal
//!   width `2^e / SUB_BUCKETS`: `[128, 256)` in fours, `[256, 512)` in eights, …, a week
//!   (10,080 minutes) in 256s. A bucket is less than 1/32 (3.1 %) of its lowest minute wide.
//!
//! A bucket is named by its lowest minute ([`bucket_of`]): that is the value stored in
//! `sla_report_counts.business_minutes`, so the column still reads as minutes, a bucket below
//! the threshold is the duration itself, and the order of buckets is the order of durations.
//! The report reads each bucket as its midpoint ([`representative`]). A measured duration `m`
//! and its representative differ by at most `(width − 1) / 2`, which is less than
//! `m / (2 × SUB_BUCKETS)`: under [`MAX_RELATIVE_ERROR`] (1/64, 1.56 %). A percentile interpolated
//! between two representatives (as `percentile_cont` does between two durations) inherits the
//! same bound, because the weights are the same and the order is kept.
//!
//! The migration `20261121000007_sla_minute_buckets.sql` defines the same function in SQL
//! (`sla_minutes_bucket`); a test compares the two. Changing a constant changes what is
//! stored: it needs a new migration that re-buckets the counts.

use std::ops::RangeInclusive;

/// Durations below this many minutes are counted exactly (one bucket per minute).
pub const EXACT_BELOW: u64 = 128;

/// Buckets per power of two at and above [`EXACT_BELOW`].
pub const SUB_BUCKETS: u64 = 32;

/// How far a bucket's [`representative`] may lie from a duration it holds, relative to that
/// duration: strictly less than `1 / (2 × SUB_BUCKETS)` (1/64, 1.56 %). Zero below
/// [`EXACT_BELOW`].
pub const MAX_RELATIVE_ERROR: f64 = 1.0 / (2.0 * SUB_BUCKETS as f64);

/// `log2(SUB_BUCKETS)`.
const SUB_BUCKET_BITS: u32 = SUB_BUCKETS.trailing_zeros();

// Both are powers of two, and a bucket is at least one minute wide.
const _: () = assert!(EXACT_BELOW.is_power_of_two() && SUB_BUCKETS.is_power_of_two());
const _: () = assert!(SUB_BUCKETS <= EXACT_BELOW);

/// The bucket that holds `minutes`, named by its lowest minute. Monotonic; the identity below
/// [`EXACT_BELOW`]; `bucket_of(bucket_of(m)) == bucket_of(m)`.
pub fn bucket_of(minutes: u64) -> u64 {
    if minutes < EXACT_BELOW {
        return minutes;
    }
    let width_bits = octave(minutes) - SUB_BUCKET_BITS;
    (minutes >> width_bits) << width_bits
}

/// Every duration, in whole minutes, that falls into the bucket holding `minutes` (pass the
/// bucket's name, its lowest minute, or any minute inside it).
pub fn bounds(minutes: u64) -> RangeInclusive<u64> {
    let low = bucket_of(minutes);
    low..=low + (width(low) - 1)
}

/// The value the report reads a bucket as: the midpoint of its [`bounds`] (the duration
/// itself below [`EXACT_BELOW`]).
pub fn representative(minutes: u64) -> f64 {
    let low = bucket_of(minutes);
    low as f64 + (width(low) - 1) as f64 / 2.0
}

/// How many whole minutes the bucket holding `minutes` spans.
fn width(minutes: u64) -> u64 {
    if minutes < EXACT_BELOW {
        1
    } else {
        1 << (octave(minutes) - SUB_BUCKET_BITS)
    }
}

/// `floor(log2(minutes))`, for `minutes > 0`.
fn octave(minutes: u64) -> u32 {
    u64::BITS - 1 - minutes.leading_zeros()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn durations_below_the_threshold_are_their_own_bucket() {
        for minutes in 0..EXACT_BELOW {
            assert_eq!(bucket_of(minutes), minutes);
            assert_eq!(bounds(minutes), minutes..=minutes);
            assert_eq!(representative(minutes), minutes as f64);
        }
    }

    #[test]
    fn each_power_of_two_above_the_threshold_holds_sub_buckets_of_equal_width() {
        assert_eq!(bounds(128), 128..=131);
        assert_eq!(bounds(255), 252..=255);
        assert_eq!(bounds(256), 256..=263);
        assert_eq!(
            bounds(10_080),
            9_984..=10_239,
            "a week, in 256-minute buckets"
        );
        assert_eq!(representative(129), 129.5);
        for octave in EXACT_BELOW.trailing_zeros()..u64::BITS {
            let start = 1u64 << octave;
            let width = start / SUB_BUCKETS;
            for i in 0..SUB_BUCKETS {
                let low = start + i * width;
                assert_eq!(bounds(low), low..=low + (width - 1), "octave {octave}");
            }
        }
    }

    #[test]
    fn the_first_two_hundred_thousand_minutes_rise_by_bucket_with_no_gap() {
        let mut previous = bounds(0);
        for minutes in 1..200_000 {
            let bounds = bounds(minutes);
            if bounds != previous {
                assert_eq!(*bounds.start(), previous.end() + 1, "{minutes}");
            }
            assert!(bounds.contains(&minutes));
            previous = bounds;
        }
    }

    #[test]
    fn the_largest_durations_have_a_bucket_that_does_not_overflow() {
        assert_eq!(*bounds(u64::MAX).end(), u64::MAX);
        assert_eq!(bucket_of(i64::MAX as u64), 63 << 57);
        assert!(representative(u64::MAX) <= u64::MAX as f64);
    }

    /// Durations of every size: minutes, days, years, and all of `u64`.
    fn any_minutes() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1_000, 0u64..1_000_000, any::<u64>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn every_duration_lies_in_the_bounds_of_its_bucket(minutes in any_minutes()) {
            let bounds = bounds(minutes);
            prop_assert!(bounds.contains(&minutes));
            prop_assert_eq!(*bounds.start(), bucket_of(minutes));
            prop_assert_eq!(bucket_of(*bounds.end()), bucket_of(minutes));
            prop_assert_eq!(bucket_of(bucket_of(minutes)), bucket_of(minutes));
        }

        #[test]
        fn the_bucket_function_never_reverses_the_order_of_durations(
            a in any_minutes(),
            b in any_minutes(),
        ) {
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(bucket_of(low) <= bucket_of(high));
            prop_assert!(representative(low) <= representative(high));
        }

        #[test]
        fn a_representative_is_within_the_relative_error_of_every_duration_it_stands_for(
            minutes in any_minutes(),
        ) {
            let error = (representative(minutes) - minutes as f64).abs();
            prop_assert!(error <= minutes as f64 * MAX_RELATIVE_ERROR, "{minutes}: {error}");
            if minutes < EXACT_BELOW {
                prop_assert_eq!(error, 0.0);
            }
        }

        #[test]
        fn the_next_bucket_starts_right_after_the_last_minute_of_this_one(
            minutes in any_minutes().prop_filter("room for a next bucket", |m| *m < u64::MAX / 2),
        ) {
            let end = *bounds(minutes).end();
            prop_assert_eq!(bucket_of(end + 1), end + 1);
        }
    }
}
