//! Robust statistics of one series `(x, y)` (pure, no I/O): the Theil–Sen slope with Sen's
//! confidence interval, the intercept and residual spread of that line, and the Mann–Kendall
//! test of a monotonic trend (Kendall's S, tau-b, a two-sided p-value). `x` is ascending (time);
//! no value is NaN (the caller leaves missing samples out).
//!
//! **Slope.** Theil–Sen is the median of the slopes `(y_j − y_i) / (x_j − x_i)` over all pairs
//! with `x_i < x_j`; Sen's interval takes the pair slopes at ranks `(N − C)/2` and `(N + C)/2 + 1`
//! with `C = z·sqrt(Var S)` (Sen 1968; Gilbert 1987, §16.5). Up to [`EXACT_PAIRS`] pairs (a series
//! of ~316 values) every pair is used. A longer series uses a *deterministic sample* of
//! [`SAMPLED_PAIRS`] pairs drawn uniformly (a fixed-seed generator, so the same series always
//! gives the same answer) and reads the median and the interval's ranks as the same *shares* of
//! the sampled slopes. Why a sample and not an exact O(n log n) selection (Cole, Salowe, Steiger
//! and Szemerédi; Matoušek's randomised slope selection): those are intricate, and their constant
//! is no better than a sample at our sizes (30 days of 5-minute runs: 8,640 values, 37 million
//! pairs, 2,300 series in the speed goal's store). The sample's error is a rank error: a quantile's
//! share among all pair slopes is off by up to `0.5/sqrt(M)` = 0.35 % of the pairs (one
//! standard deviation) at M = 20,000, about the exact estimate's own 0.36 % at 8,640 values
//! (Sen's 95 % half width is `z·sqrt(Var S)/2N` ≈ 0.70 %). The two are independent, so the
//! interval's half width (as a share) is widened to their sum in quadrature — 1.0 % instead of
//! 0.70 % at 8,640 values — and stays an honest 95 % interval; the slope itself is about 40 %
//! noisier than the exact estimate's. That is the price of speed: M = 20,000 keeps the math of
//! 2,300 series of 8,640 runs to a fraction of a second (docs/PERFORMANCE.md). The breakdown point (≈ 29 % of the values may be wild
//! without moving the slope far) is kept.
//!
//! **Test.** Kendall's S = Σ sign(Δx)·sign(Δy) over all pairs is counted *exactly* in O(n log n)
//! (inversions counted by a merge sort, Knight 1966), with ties in y and in x corrected in S and
//! in its variance (Kendall 1975). `z = (S − sign S)/sqrt(Var S)`; the p-value is two-sided
//! under the normal approximation, good from about 10 values. The test assumes independent
//! samples: a series whose noise is strongly autocorrelated looks more significant than it is.

/// Up to this many pairs, every pair's slope is used (a series of up to 316 values).
pub const EXACT_PAIRS: usize = 50_000;
/// A longer series uses this many pairs, drawn deterministically.
pub const SAMPLED_PAIRS: usize = 20_000;

/// The two-sided 95 % normal quantile: Sen's interval is a 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// What [`fit`] finds in one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenFit {
    /// Values used.
    pub n: usize,
    /// Theil–Sen slope (y per x unit).
    pub slope: f64,
    /// Lower end of Sen's interval (−∞ when the series is too short to bound it).
    pub slope_low: f64,
    /// Upper end of Sen's interval (+∞ when the series is too short to bound it).
    pub slope_high: f64,
    /// Intercept at x = 0: the median of `y − slope·x` (Conover).
    pub intercept: f64,
    /// Robust spread of the residuals around the line: 1.4826 × their median absolute value
    /// (the standard deviation, for normal noise).
    pub spread: f64,
    /// Kendall's S.
    pub s: i64,
    /// Var(S), tie-corrected.
    pub var_s: f64,
    /// Kendall's tau-b (−1 … 1): how monotonic the series is.
    pub tau: f64,
    /// Two-sided p-value of "no monotonic trend" (Mann–Kendall).
    pub p_value: f64,
    /// Whether every pair's slope was used (else a deterministic sample of them).
    pub exact: bool,
}

/// Buffers [`fit_with`] reuses from one series to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Pair slopes as [`total_key`]s: selections compare integers.
    slopes: Vec<i64>,
    /// `y` as order keys, sorted by the inversion count.
    sorted: Vec<i64>,
    /// The merge sort's other half; then the residuals as [`total_key`]s.
    keys: Vec<i64>,
}

/// An integer whose order is `f64::total_cmp`'s (the map `total_cmp` makes before comparing):
/// selections over keys pick exactly the values a selection by `total_cmp` picks, with cheaper
/// comparisons (docs/PERFORMANCE.md, issue 14).
fn total_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// [`total_key`] with −0.0 taken as +0.0: for numbers that are not NaN, keys compare as the
/// values do (`<`, `==`), so the Mann–Kendall count over keys is the count over the values.
fn order_key(v: f64) -> i64 {
    total_key(v + 0.0)
}

/// The value of a [`total_key`] (the map is its own inverse).
fn from_key(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// [`fit_with`] with fresh buffers.
pub fn fit(x: &[f64], y: &[f64], z: f64) -> Option<SenFit> {
    fit_with(x, y, z, &mut Scratch::default())
}

/// Fit the Theil–Sen line of `y` over `x` with Sen's interval at normal quantile `z` (e.g.
/// [`Z95`]) and test it (Mann–Kendall). `None` when there are fewer than 3 values or all `x`
/// are equal. `x` must be ascending and neither may hold NaN (debug builds check).
pub fn fit_with(x: &[f64], y: &[f64], z: f64, scratch: &mut Scratch) -> Option<SenFit> {
    let n = x.len();
    assert_eq!(n, y.len(), "x and y of one series");
    debug_assert!(x.windows(2).all(|w| w[0] <= w[1]), "x ascending");
    debug_assert!(y.iter().chain(x).all(|v| !v.is_nan()), "no NaN");
    if n < 3 || x[0] == x[n - 1] {
        return None;
    }
    let mk = mann_kendall(x, y, scratch);
    // Pairs with different x: all pairs minus those tied in x.
    let distinct = mk.pairs - mk.x_tie_pairs;
    let exact = mk.pairs <= EXACT_PAIRS as u64;
    let slopes = &mut scratch.slopes;
    slopes.clear();
    if exact {
        for i in 0..n {
            for j in i + 1..n {
                if x[j] > x[i] {
                    slopes.push(total_key((y[j] - y[i]) / (x[j] - x[i])));
                }
            }
        }
    } else {
        let mut rng = SplitMix64(0x5EED_F7E4_D000_0001 ^ n as u64);
        while slopes.len() < SAMPLED_PAIRS {
            let a = rng.below(n);
            let b = rng.below(n);
            let (i, j) = if a < b { (a, b) } else { (b, a) };
            if x[j] > x[i] {
                slopes.push(total_key((y[j] - y[i]) / (x[j] - x[i])));
            }
        }
    }
    let m = slopes.len();
    if m == 0 {
        return None;
    }
    // Sen's interval as shares of the pair slopes: ranks (N − C)/2 and (N + C)/2 + 1 (1-based)
    // over N, i.e. 1/2 ∓ C/2N. A sample's quantile at a share is itself off by about
    // sqrt(p(1 − p)/M) (≤ 0.5/sqrt(M)); that error is independent of the series' own, so the two
    // half widths add in quadrature and the interval stays a 95 % one.
    let c = z * mk.var_s.sqrt();
    let nd = distinct as f64;
    let mut half = c / 2.0 / nd;
    if !exact {
        half = half.hypot(z * 0.5 / (SAMPLED_PAIRS as f64).sqrt());
    }
    let low_share = 0.5 - half;
    let high_share = 0.5 + half + 1.0 / nd;
    let index = |share: f64| -> Option<usize> {
        let r = (share * m as f64).round();
        (r >= 1.0 && r <= m as f64).then(|| r as usize - 1)
    };
    let mid = m / 2;
    let (left, upper_mid, right) = slopes.select_nth_unstable(mid);
    let upper_mid = from_key(*upper_mid);
    let slope = if m % 2 == 1 {
        upper_mid
    } else {
        let lower_mid = left
            .iter()
            .copied()
            .max()
            .map_or(f64::NEG_INFINITY, from_key);
        f64::midpoint(lower_mid, upper_mid)
    };
    let slope_low = match index(low_share) {
        Some(k) if k < mid => from_key(*left.select_nth_unstable(k).1),
        Some(_) => upper_mid,
        None => f64::NEG_INFINITY,
    };
    let slope_high = match index(high_share) {
        Some(k) if k > mid => from_key(*right.select_nth_unstable(k - mid - 1).1),
        Some(_) => upper_mid,
        None => f64::INFINITY,
    };
    // The line through the median residual, and the spread around it.
    let keys = &mut scratch.keys;
    keys.clear();
    keys.extend(x.iter().zip(y).map(|(&xi, &yi)| total_key(yi - slope * xi)));
    let intercept = median_of_keys(keys);
    for (r, (&xi, &yi)) in keys.iter_mut().zip(x.iter().zip(y)) {
        *r = total_key((yi - slope * xi - intercept).abs());
    }
    let spread = 1.4826 * median_of_keys(keys);
    let zstat = if mk.var_s > 0.0 {
        (mk.s - mk.s.signum()) as f64 / mk.var_s.sqrt()
    } else {
        0.0
    };
    let denom = ((mk.pairs - mk.x_tie_pairs) as f64 * (mk.pairs - mk.y_tie_pairs) as f64).sqrt();
    Some(SenFit {
        n,
        slope,
        slope_low: slope_low.min(slope),
        slope_high: slope_high.max(slope),
        intercept,
        spread,
        s: mk.s,
        var_s: mk.var_s,
        tau: if denom > 0.0 {
            mk.s as f64 / denom
        } else {
            0.0
        },
        p_value: erfc(zstat.abs() / std::f64::consts::SQRT_2).min(1.0),
        exact,
    })
}

/// Kendall's S and its tie-corrected variance over `(x, y)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MannKendall {
    s: i64,
    var_s: f64,
    pairs: u64,
    x_tie_pairs: u64,
    y_tie_pairs: u64,
}

/// Σ t(t−1), Σ t(t−1)(t−2), Σ t(t−1)(2t+5) over groups of equal values of a sorted slice.
fn tie_sums(sorted: &[i64]) -> (f64, f64, f64, u64) {
    let (mut a, mut b, mut c, mut pairs) = (0.0, 0.0, 0.0, 0u64);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        if j - i > 1 {
            a += t * (t - 1.0);
            b += t * (t - 1.0) * (t - 2.0);
            c += t * (t - 1.0) * (2.0 * t + 5.0);
            pairs += ((j - i) * (j - i - 1) / 2) as u64;
        }
        i = j;
    }
    (a, b, c, pairs)
}

fn mann_kendall(x: &[f64], y: &[f64], scratch: &mut Scratch) -> MannKendall {
    let n = y.len();
    let pairs = (n as u64) * (n as u64 - 1) / 2;
    // S over the index order = (pairs with y rising) − (pairs with y falling); the merge sort
    // counts the falling ones (strict inversions) and sorts y for its ties.
    let sorted = &mut scratch.sorted;
    sorted.clear();
    sorted.extend(y.iter().map(|&v| order_key(v)));
    scratch.keys.clear();
    scratch.keys.resize(n, 0);
    let falling = merge_count(sorted, &mut scratch.keys);
    let (ya, yb, yc, y_tie_pairs) = tie_sums(sorted);
    let mut s = pairs as i64 - y_tie_pairs as i64 - 2 * falling as i64;
    // Pairs tied in x carry no sign: take back what they added.
    let (mut xa, mut xb, mut xc, mut x_tie_pairs) = (0.0, 0.0, 0.0, 0u64);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && x[j] == x[i] {
            j += 1;
        }
        if j - i > 1 {
            let t = (j - i) as f64;
            xa += t * (t - 1.0);
            xb += t * (t - 1.0) * (t - 2.0);
            xc += t * (t - 1.0) * (2.0 * t + 5.0);
            x_tie_pairs += ((j - i) * (j - i - 1) / 2) as u64;
            for k in i..j {
                for l in k + 1..j {
                    s -= sign(y[l] - y[k]);
                }
            }
        }
        i = j;
    }
    let nf = n as f64;
    let mut var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - xc - yc) / 18.0;
    if n > 2 {
        var_s += xb * yb / (9.0 * nf * (nf - 1.0) * (nf - 2.0));
    }
    var_s += xa * ya / (2.0 * nf * (nf - 1.0));
    MannKendall {
        s,
        var_s: var_s.max(0.0),
        pairs,
        x_tie_pairs,
        y_tie_pairs,
    }
}

fn sign(d: f64) -> i64 {
    i64::from(d > 0.0) - i64::from(d < 0.0)
}

/// Sort `v` (bottom-up merge sort, `buf` as long as `v`) and return how many pairs `i < j` had
/// `v[i] > v[j]`. The merge step chooses its side without a branch (the side taken is a
/// coin toss on noisy data, which a branch predictor loses half the time).
fn merge_count(v: &mut [i64], buf: &mut [i64]) -> u64 {
    // Runs of 8 by insertion sort first (counting its swaps: each is one inversion).
    const RUN: usize = 8;
    let n = v.len();
    let mut inversions = 0u64;
    for chunk in v.chunks_mut(RUN) {
        for i in 1..chunk.len() {
            let mut j = i;
            while j > 0 && chunk[j - 1] > chunk[j] {
                chunk.swap(j - 1, j);
                inversions += 1;
                j -= 1;
            }
        }
    }
    let mut width = RUN;
    let (mut src, mut dst): (&mut [i64], &mut [i64]) = (v, buf);
    let mut in_buf = false;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (lo, hi) = (&src[start..mid], &src[mid..end]);
            let out = &mut dst[start..end];
            let (mut i, mut j, mut k) = (0, 0, 0);
            while i < lo.len() && j < hi.len() {
                let (a, b) = (lo[i], hi[j]);
                let take_hi = b < a;
                out[k] = if take_hi { b } else { a };
                inversions += (lo.len() - i) as u64 * u64::from(take_hi);
                j += usize::from(take_hi);
                i += usize::from(!take_hi);
                k += 1;
            }
            out[k..k + (lo.len() - i)].copy_from_slice(&lo[i..]);
            k += lo.len() - i;
            out[k..].copy_from_slice(&hi[j..]);
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        in_buf = !in_buf;
        width *= 2;
    }
    if in_buf {
        // `src` is the buffer now; the sorted values belong in `v` (`dst`).
        dst.copy_from_slice(src);
    }
    inversions
}

/// Median of [`total_key`]s (reordered), as a value; NaN when empty.
fn median_of_keys(v: &mut [i64]) -> f64 {
    let m = v.len();
    if m == 0 {
        return f64::NAN;
    }
    let (left, mid, _) = v.select_nth_unstable(m / 2);
    let mid = from_key(*mid);
    if m % 2 == 1 {
        mid
    } else {
        let lower = left
            .iter()
            .copied()
            .max()
            .map_or(f64::NEG_INFINITY, from_key);
        f64::midpoint(lower, mid)
    }
}

/// Median of `v` (reordered); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    let m = v.len();
    if m == 0 {
        return f64::NAN;
    }
    let (left, mid, _) = v.select_nth_unstable_by(m / 2, f64::total_cmp);
    let mid = *mid;
    if m % 2 == 1 {
        mid
    } else {
        f64::midpoint(left.iter().copied().fold(f64::NEG_INFINITY, f64::max), mid)
    }
}

/// The complementary error function (Numerical Recipes' `erfcc`, fractional error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A small deterministic generator (`SplitMix64`) for the pair sample.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_s(x: &[f64], y: &[f64]) -> i64 {
        let mut s = 0;
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                s += sign(x[j] - x[i]) * sign(y[j] - y[i]);
            }
        }
        s
    }

    fn brute_slope(x: &[f64], y: &[f64]) -> f64 {
        let mut v = Vec::new();
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                if x[j] > x[i] {
                    v.push((y[j] - y[i]) / (x[j] - x[i]));
                }
            }
        }
        median(&mut v)
    }

    fn xs(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    /// Deterministic noise in −1 … 1.
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64(seed);
        (0..n)
            .map(|_| (r.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
            .collect()
    }

    #[test]
    fn a_perfect_line_is_recovered_exactly_both_ways() {
        for n in [5, 300, 5000] {
            let x = xs(n);
            let y: Vec<f64> = x.iter().map(|v| 2.5 * v - 7.0).collect();
            let f = fit(&x, &y, Z95).unwrap();
            assert_eq!(f.exact, n <= 316, "n {n}");
            assert_eq!(f.slope, 2.5, "n {n}");
            assert_eq!((f.slope_low, f.slope_high), (2.5, 2.5));
            assert_eq!(f.intercept, -7.0);
            assert_eq!(f.spread, 0.0);
            assert_eq!(f.s, (n * (n - 1) / 2) as i64);
            assert!((f.tau - 1.0).abs() < 1e-12);
            assert!(n < 10 || f.p_value < 1e-6, "{f:?}");
        }
    }

    #[test]
    fn a_known_series_matches_a_hand_count() {
        // Gilbert (1987) style: S counted by hand for 1 3 2 5 4: rising pairs 8, falling 2.
        let x = xs(5);
        let y = [1.0, 3.0, 2.0, 5.0, 4.0];
        let f = fit(&x, &y, Z95).unwrap();
        assert_eq!(f.s, 6);
        assert_eq!(f.var_s, 5.0 * 4.0 * 15.0 / 18.0);
        // Slopes: 2, .5, 4/3, .75, −1, 1, .5, 3, 1, −1 → sorted middle (.75, 1).
        assert_eq!(f.slope, 0.875);
        assert_eq!(f.tau, 0.6);
        // z = (6 − 1)/sqrt(16.667) = 1.2247 → p = 0.2207.
        assert!((f.p_value - 0.2207).abs() < 1e-3, "{}", f.p_value);
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-7);
        // Two-sided p of z = 1.96 is 0.05.
        assert!((erfc(Z95 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn pure_noise_has_no_significant_trend_and_an_interval_around_zero() {
        let n = 8640;
        let x: Vec<f64> = (0..n).map(|i| i as f64 * 300.0 / 86400.0).collect();
        let y: Vec<f64> = noise(n, 7).iter().map(|e| 100.0 + e).collect();
        let f = fit(&x, &y, Z95).unwrap();
        assert!(!f.exact);
        assert!(f.p_value > 0.05, "{f:?}");
        assert!(f.slope_low < 0.0 && f.slope_high > 0.0, "{f:?}");
        // Uniform ±1 noise: median absolute deviation 0.5, × 1.4826.
        assert!((f.spread - 0.741).abs() < 0.03, "{f:?}");
    }

    #[test]
    fn a_small_trend_in_noise_is_found_and_its_interval_holds_it() {
        let n = 8640;
        let x: Vec<f64> = (0..n).map(|i| i as f64 * 300.0 / 86400.0).collect();
        let y: Vec<f64> = noise(n, 11)
            .iter()
            .zip(&x)
            .map(|(e, t)| 50.0 + 0.05 * t + e)
            .collect();
        let f = fit(&x, &y, Z95).unwrap();
        assert!(f.p_value < 1e-6, "{f:?}");
        assert!(f.slope_low < 0.05 && 0.05 < f.slope_high, "{f:?}");
        assert!((f.slope - 0.05).abs() < 0.01, "{f:?}");
        // Sen's interval from the sample is close to the exact one's width: for uniform noise
        // the slope's standard error is about sd·sqrt(12/n)/span ≈ 0.577·0.0373/30 = 0.00072.
        let half = (f.slope_high - f.slope_low) / 2.0;
        assert!(half > 0.0007 && half < 0.0025, "{half}");
    }

    #[test]
    fn the_sample_agrees_with_every_pair() {
        // 400 values: 79,800 pairs, above EXACT_PAIRS; compare with the brute median.
        let n = 400;
        let x = xs(n);
        let y: Vec<f64> = noise(n, 3)
            .iter()
            .zip(&x)
            .map(|(e, t)| 0.01 * t + 3.0 * e)
            .collect();
        let f = fit(&x, &y, Z95).unwrap();
        assert!(!f.exact);
        let b = brute_slope(&x, &y);
        assert!(
            (f.slope - b).abs() < 0.1 * (f.slope_high - f.slope_low),
            "{} vs {b}",
            f.slope
        );
    }

    #[test]
    fn too_few_or_flat_x_gives_nothing() {
        assert!(fit(&[0.0, 1.0], &[1.0, 2.0], Z95).is_none());
        assert!(fit(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], Z95).is_none());
        // Three values: the interval cannot be bounded at 95 %.
        let f = fit(&xs(3), &[0.0, 1.0, 2.0], Z95).unwrap();
        assert_eq!(f.slope, 1.0);
        assert!(
            f.slope_low.is_infinite() && f.slope_high.is_infinite(),
            "{f:?}"
        );
    }

    #[test]
    fn a_constant_series_is_flat_with_no_trend() {
        let f = fit(&xs(50), &[4.0; 50], Z95).unwrap();
        assert_eq!((f.slope, f.intercept, f.spread, f.s), (0.0, 4.0, 0.0, 0));
        assert_eq!(f.p_value, 1.0);
    }

    #[test]
    fn order_keys_take_minus_zero_as_zero_and_total_keys_do_not() {
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert!(total_key(-0.0) < total_key(0.0));
        assert!(order_key(f64::NEG_INFINITY) < order_key(-f64::MAX));
        assert!(order_key(f64::MAX) < order_key(f64::INFINITY));
    }

    proptest! {
        #[test]
        fn keys_order_as_the_floats_do(a: f64, b: f64) {
            prop_assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_key(total_key(a)).to_bits(), a.to_bits());
            if !a.is_nan() && !b.is_nan() {
                prop_assert_eq!(Some(order_key(a).cmp(&order_key(b))), a.partial_cmp(&b));
            }
        }

        #[test]
        fn s_and_slope_match_brute_force_with_ties(
            vals in proptest::collection::vec((0u8..6, -3i8..4), 3..60)
        ) {
            let mut v = vals;
            v.sort_by_key(|p| p.0);
            let x: Vec<f64> = v.iter().map(|p| f64::from(p.0)).collect();
            let y: Vec<f64> = v.iter().map(|p| f64::from(p.1)).collect();
            match fit(&x, &y, Z95) {
                None => prop_assert!(x[0] == x[x.len() - 1]),
                Some(f) => {
                    prop_assert_eq!(f.s, brute_s(&x, &y));
                    prop_assert_eq!(f.slope, brute_slope(&x, &y));
                    prop_assert!(f.slope_low <= f.slope && f.slope <= f.slope_high);
                    prop_assert!((0.0..=1.0).contains(&f.p_value));
                    prop_assert!((-1.0..=1.0).contains(&f.tau));
                }
            }
        }

        #[test]
        fn outliers_within_the_breakdown_point_leave_the_slope_exact(
            n in 20usize..300,
            share in 0.0f64..0.2,
            seed: u64,
            b in -5.0f64..5.0,
        ) {
            // A line with integer-friendly values so every clean pair's slope is exactly b.
            let b = (b * 4.0).round() / 4.0;
            let x = xs(n);
            let mut y: Vec<f64> = x.iter().map(|t| 10.0 + b * t).collect();
            let k = (share * n as f64) as usize;
            let mut r = SplitMix64(seed);
            for _ in 0..k {
                let i = r.below(n);
                y[i] += (r.next() % 2000) as f64 - 1000.0;
            }
            let f = fit(&x, &y, Z95).unwrap();
            prop_assert_eq!(f.slope, b);
        }

        #[test]
        fn shifting_or_scaling_values_moves_the_line_not_the_trend(
            ys in proptest::collection::vec(-1000i32..1000, 3..120),
            c in -1000i32..1000,
            k in 1i32..8,
        ) {
            let x = xs(ys.len());
            let y: Vec<f64> = ys.iter().map(|v| f64::from(*v)).collect();
            let shifted: Vec<f64> = y.iter().map(|v| v + f64::from(c)).collect();
            let scaled: Vec<f64> = y.iter().map(|v| v * f64::from(k)).collect();
            let f = fit(&x, &y, Z95).unwrap();
            let g = fit(&x, &shifted, Z95).unwrap();
            let h = fit(&x, &scaled, Z95).unwrap();
            prop_assert_eq!(f.slope, g.slope);
            prop_assert_eq!((f.slope_low, f.slope_high), (g.slope_low, g.slope_high));
            prop_assert!((f.intercept + f64::from(c) - g.intercept).abs() < 1e-9 * (1.0 + g.intercept.abs()));
            prop_assert_eq!((f.s, f.p_value), (g.s, g.p_value));
            prop_assert!((h.slope - f.slope * f64::from(k)).abs() <= 1e-9 * (1.0 + h.slope.abs()));
            prop_assert_eq!((f.s, f.p_value), (h.s, h.p_value));
        }

        #[test]
        fn shifting_time_leaves_the_slope(
            ys in proptest::collection::vec(-100i32..100, 3..80),
            t0 in -1000i32..1000,
        ) {
            let x = xs(ys.len());
            let later: Vec<f64> = x.iter().map(|t| t + f64::from(t0)).collect();
            let y: Vec<f64> = ys.iter().map(|v| f64::from(*v)).collect();
            let f = fit(&x, &y, Z95).unwrap();
            let g = fit(&later, &y, Z95).unwrap();
            prop_assert_eq!(f.slope, g.slope);
            prop_assert_eq!(f.s, g.s);
        }
    }
}
