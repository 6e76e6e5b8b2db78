//! The e-processes behind the judge, in log space.
//!
//! Two constructions (DESIGN.md §5, docs/statistics.md):
//! - [`RatioProcess`]: canary/primary rate ratio from per-look counts. Conditional on a
//!   look's total events, the canary's share is binomial with share
//!   θ(ψ) = n_c ψ / (n_c ψ + n_p); likelihood ratios of alternatives against a null ratio,
//!   multiplied over looks and mixed over a fixed grid, form an e-process.
//! - [`rate_log_e`] / [`rate_upper_bound`]: one arm's own event rate against a fixed rate
//!   (the absolute SLO guard and the few-events promotion rule).
//!
//! Every look's log-likelihood is tempered by κ = 1 / (1 + τ² v) where v is the look's
//! binomial information about the log ratio and τ the assumed sd of per-look log-ratio
//! noise (overdispersion). For any κ in (0, 1], LR^κ still has expectation at most 1
//! under the binomial null (Jensen), so tempering never breaks validity; it restores it,
//! approximately, when real looks carry extra-binomial noise of sd τ.

/// Step of the log-lattice of ratios: ψ_k = 1.05^k.
pub const LATTICE_STEP: f64 = 0.048_790_164_169_432_0; // ln(1.05)

/// Offsets (in lattice steps) of the mixture's alternatives from the null:
/// factors 1.05^j ≈ 1.10, 1.22, 1.34, 1.55, 1.80, 2.18, 2.93, 4.32, 8.15.
/// Equal weights. Small factors give power against small regressions; large ones let
/// gross regressions cross after a handful of events. Nine points cost ln 9 ≈ 2.2 nats
/// against a test that knew the true ratio.
pub const ALT_OFFSETS: [i32; 9] = [2, 4, 6, 9, 12, 16, 22, 30, 43];

/// The confidence sequence is reported on ψ0 = 1.05^k for |k| ≤ this (≈ 0.049 … 20.6).
pub const CS_HALF_WIDTH: i32 = 62;

const LATTICE_HALF: i32 = CS_HALF_WIDTH + ALT_OFFSETS[ALT_OFFSETS.len() - 1];

/// ln Σ exp(v_i), stable for large and very negative values.
pub fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// ln of the mixture's mean weight, 1 / |grid|.
fn log_weight() -> f64 {
    -(ALT_OFFSETS.len() as f64).ln()
}

/// The factor 1.05^j.
pub fn lattice_factor(j: i32) -> f64 {
    (f64::from(j) * LATTICE_STEP).exp()
}

/// One look's tempering exponent κ = 1 / (1 + τ² · x θ(1−θ)).
///
/// x θ(1−θ) is the Fisher information of x binomial trials about the log-odds of the
/// share, i.e. about the log ratio; with per-look noise of variance τ² on the log ratio
/// the information actually carried is v / (1 + τ² v).
pub fn temper(events: f64, share: f64, dispersion: f64) -> f64 {
    1.0 / (1.0 + dispersion * dispersion * events * share * (1.0 - share))
}

/// Cumulative tempered log-likelihood ℓ(ψ) = Σ_i κ_i [x_c ln θ_i(ψ) + x_p ln(1 − θ_i(ψ))]
/// at a fixed set of ratios ψ; a log-likelihood ratio is a difference of two entries.
#[derive(Debug, Clone, PartialEq)]
struct LogLik {
    ratios: Vec<f64>,
    ll: Vec<f64>,
}

impl LogLik {
    fn new(ratios: Vec<f64>) -> Self {
        let ll = vec![0.0; ratios.len()];
        Self { ratios, ll }
    }

    /// Adds one look with canary/primary traffic ratio `r = n_c / n_p` (> 0).
    fn add(&mut self, r: f64, x_c: f64, x_p: f64, kappa: f64) {
        for (psi, ll) in self.ratios.iter().zip(self.ll.iter_mut()) {
            let a = r * psi;
            // ln θ = −ln(1 + 1/a), ln(1 − θ) = −ln(1 + a): no cancellation for tiny or huge a.
            *ll -= kappa * (x_c * (1.0 / a).ln_1p() + x_p * a.ln_1p());
        }
    }
}

/// The ratio e-process of one metric (errors or slow requests) with its confidence sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioProcess {
    null_ratio: f64,
    dispersion: f64,
    /// ℓ at the null ratio (index 0) and at null · factor_j.
    fail: LogLik,
    /// ℓ on the lattice 1.05^k, k ∈ [−LATTICE_HALF, LATTICE_HALF].
    lattice: LogLik,
    max_log_e: f64,
    log_e: f64,
    informative_looks: u32,
}

/// Confidence sequence for the ratio at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// 0 when the lower end is below the lattice.
    pub lower: f64,
    /// `None` when unbounded above (beyond the lattice).
    pub upper: Option<f64>,
    /// The lattice ratio of highest tempered likelihood; `None` before any informative look.
    pub estimate: Option<f64>,
}

impl RatioProcess {
    /// `null_ratio` = 1 + margin; `dispersion` = τ.
    pub fn new(null_ratio: f64, dispersion: f64) -> Self {
        let mut fail = vec![null_ratio];
        fail.extend(ALT_OFFSETS.iter().map(|&j| null_ratio * lattice_factor(j)));
        let lattice = (-LATTICE_HALF..=LATTICE_HALF).map(lattice_factor).collect();
        Self {
            null_ratio,
            dispersion,
            fail: LogLik::new(fail),
            lattice: LogLik::new(lattice),
            max_log_e: 0.0,
            log_e: 0.0,
            informative_looks: 0,
        }
    }

    /// Adds one look's increments. Looks where either arm served nothing, or with no events
    /// in either arm, carry no information about the share and leave everything unchanged.
    pub fn observe(&mut self, n_c: u64, n_p: u64, x_c: u64, x_p: u64) {
        if n_c == 0 || n_p == 0 || x_c + x_p == 0 {
            return;
        }
        let r = n_c as f64 / n_p as f64;
        let (x_c, x_p) = (x_c as f64, x_p as f64);
        let x = x_c + x_p;
        let null_share = r * self.null_ratio / (r * self.null_ratio + 1.0);
        self.fail
            .add(r, x_c, x_p, temper(x, null_share, self.dispersion));
        let even_share = r / (r + 1.0);
        self.lattice
            .add(r, x_c, x_p, temper(x, even_share, self.dispersion));
        let ll0 = self.fail.ll[0];
        self.log_e = log_weight() + log_sum_exp(self.fail.ll[1..].iter().map(|l| l - ll0));
        self.max_log_e = self.max_log_e.max(self.log_e);
        self.informative_looks += 1;
    }

    /// ln E_t of the one-sided test "ratio > null" now.
    pub fn log_e(&self) -> f64 {
        self.log_e
    }

    /// ln max_{s ≤ t} E_s; the anytime p-value is exp(−this) (capped at 1).
    pub fn max_log_e(&self) -> f64 {
        self.max_log_e
    }

    /// Looks that carried information.
    pub fn informative_looks(&self) -> u32 {
        self.informative_looks
    }

    /// ln of the one-sided e-value at lattice index `k` (relative to the centre):
    /// mean_j L(ψ0·f_j)/L(ψ0) when `above` (evidence that the ratio exceeds ψ0), else
    /// mean_j L(ψ0/f_j)/L(ψ0) (evidence that it is below ψ0).
    pub fn one_sided_log_e(&self, k: i32, above: bool) -> f64 {
        let at = |i: i32| self.lattice.ll[(i + LATTICE_HALF) as usize];
        let ll0 = at(k);
        let sign = if above { 1 } else { -1 };
        log_sum_exp(ALT_OFFSETS.iter().map(|&j| at(k + sign * j) - ll0)) + log_weight()
    }

    /// Anytime-valid one-sided (1 − α) bounds on the ratio: every lattice ψ0 below `lower`
    /// has an upward e-value ≥ 1/α, every one above `upper` a downward one. Each bound holds
    /// at all looks simultaneously with probability ≥ 1 − α; together they form a
    /// (1 − 2α) confidence sequence. Ends are rounded outwards to the next excluded lattice
    /// point, so ratios between lattice points are never excluded by rounding.
    pub fn interval(&self, alpha: f64) -> RatioInterval {
        if self.informative_looks == 0 {
            return RatioInterval {
                lower: 0.0,
                upper: None,
                estimate: None,
            };
        }
        let bar = (1.0 / alpha).ln();
        let ks = -CS_HALF_WIDTH..=CS_HALF_WIDTH;
        let ll = |k: i32| self.lattice.ll[(k + LATTICE_HALF) as usize];
        let estimate_k = ks
            .clone()
            .max_by(|&a, &b| ll(a).total_cmp(&ll(b)))
            .unwrap_or(0);
        // Hulls: the lowest ψ0 the upward test has not excluded, the highest the downward
        // test has not excluded.
        let lo = ks.clone().find(|&k| self.one_sided_log_e(k, true) < bar);
        let hi = ks.rev().find(|&k| self.one_sided_log_e(k, false) < bar);
        RatioInterval {
            lower: match lo {
                Some(k) if k > -CS_HALF_WIDTH => lattice_factor(k - 1),
                Some(_) => 0.0,
                // Everything excluded from below: the ratio is above the lattice.
                None => lattice_factor(CS_HALF_WIDTH),
            },
            upper: match hi {
                Some(k) if k < CS_HALF_WIDTH => Some(lattice_factor(k + 1)),
                Some(_) => None,
                None => Some(lattice_factor(-CS_HALF_WIDTH)),
            },
            estimate: Some(lattice_factor(estimate_k)),
        }
    }
}

/// ln of the one-sample mixture e-value that the rate is above `theta0`, after `k` events
/// in `n` trials: ln mean_j (θ_j/θ0)^k ((1−θ_j)/(1−θ0))^(n−k), θ_j = θ0 · factor_j.
/// Grid points at or above 1 are dropped (they cannot be rates).
pub fn rate_log_e(k: u64, n: u64, theta0: f64) -> f64 {
    let (k, rest) = (k as f64, n.saturating_sub(k) as f64);
    let alts: Vec<f64> = ALT_OFFSETS
        .iter()
        .map(|&j| theta0 * lattice_factor(j))
        .filter(|&t| t < 1.0)
        .collect();
    if alts.is_empty() {
        return 0.0;
    }
    let terms = alts
        .iter()
        .map(|&t| k * (t / theta0).ln() + rest * ((1.0 - t) / (1.0 - theta0)).ln());
    log_sum_exp(terms) - (alts.len() as f64).ln()
}

/// ln of the mixture e-value that the rate is below `theta0` (alternatives θ0 / factor_j).
fn rate_log_e_below(k: f64, rest: f64, theta0: f64) -> f64 {
    let terms = ALT_OFFSETS.iter().map(|&j| {
        let t = theta0 / lattice_factor(j);
        k * (t / theta0).ln() + rest * ((1.0 - t) / (1.0 - theta0)).ln()
    });
    log_sum_exp(terms) + log_weight()
}

/// Lowest rate on the lattice 1e-7 · 1.05^i.
const RATE_FLOOR: f64 = 1e-7;

/// Anytime-valid upper confidence bound (level 1 − α) on a rate after `k` events in `n`
/// trials: the smallest lattice rate above the observed rate whose "rate is lower" e-value
/// reaches 1/α. `None` when `n` is 0 or no lattice rate below 1/2 is excluded.
pub fn rate_upper_bound(k: u64, n: u64, alpha: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let bar = (1.0 / alpha).ln();
    let observed = k as f64 / n as f64;
    let (kf, rest) = (k as f64, n.saturating_sub(k) as f64);
    // Start just below the observed rate: every lattice point under it is accepted anyway.
    let mut i = if observed > RATE_FLOOR {
        ((observed / RATE_FLOOR).ln() / LATTICE_STEP).floor() as i32
    } else {
        0
    };
    loop {
        let theta0 = RATE_FLOOR * lattice_factor(i);
        if theta0 >= 0.5 {
            return None;
        }
        if theta0 > observed && rate_log_e_below(kf, rest, theta0) >= bar {
            return Some(theta0);
        }
        i += 1;
    }
}
