//! Latency histograms: choosing the boundary b* and counting requests above it.

use serde::{Deserialize, Serialize};

/// One cumulative histogram bucket: `count` requests took at most `le` seconds.
/// `le` is `f64::INFINITY` for the `+Inf` bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le: f64,
    pub count: f64,
}

/// SKELETON: the smallest boundary at or above the primary's `q`-quantile.
pub fn choose_boundary(_primary: &[Bucket], _q: f64) -> Option<f64> {
    None
}

/// SKELETON: requests above `boundary` (total minus the cumulative count at `le == boundary`).
pub fn count_above(_buckets: &[Bucket], _boundary: f64) -> u64 {
    0
}

/// SKELETON: an interpolated quantile estimate, for people only; never used for decisions.
pub fn quantile_estimate(_buckets: &[Bucket], _q: f64) -> Option<f64> {
    None
}
