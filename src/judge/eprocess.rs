//! The e-processes behind the judge, in log space (docs/statistics.md §2–§5).
//!
//! - [`RatioProcess`]: the canary/primary rate ratio of one metric from per-look counts.
//!   Conditional on a look's total events, the canary's share is binomial with
//!   θ(ψ) = n_c ψ / (n_c ψ + n_p). Three families of likelihood ratios are kept:
//!   the fail test ("ratio > 1 + m"), the promotion test ("ratio < 1 + pm") and a lattice
//!   of ratios for the reported confidence sequence.
//! - [`RateProcess`]: one arm's own event rate against a fixed rate, look by look (the
//!   absolute SLO guard, and the negligible-rate test that lets a service with almost no
//!   errors be promoted).
//!
//! Every look's log-likelihood is tempered by κ = 1 / (1 + τ² v), v the look's binomial
//! information about the log rate (or log ratio) and τ the sd of per-look noise on it
//! (overdispersion). For κ in (0, 1], LR^κ still has expectation at most 1 under the
//! binomial null (Jensen), so tempering never breaks validity; under per-look noise of sd τ
//! it restores it (exactly in the normal approximation: E[LR^κ] = 1 at κ = 1/(1 + τ² v)).

/// Step of the reporting lattice of ratios: ψ_k = 1.1^k.
pub const LATTICE_STEP: f64 = 0.095_310_179_804_324_87; // ln(1.1)

/// Offsets (in lattice steps) of the confidence sequence's alternatives from each ψ0:
/// factors 1.1^j ≈ 1.10, 1.21, 1.33, 1.46, 1.77, 2.14, 2.85, 4.18, 8.14, equal weights.
pub const CS_OFFSETS: [i32; 9] = [1, 2, 3, 4, 6, 8, 11, 15, 22];

/// The confidence sequence is reported on ψ0 = 1.1^k for |k| ≤ this (≈ 0.047 … 21).
pub const CS_HALF_WIDTH: i32 = 32;

const LATTICE_HALF: i32 = CS_HALF_WIDTH + CS_OFFSETS[CS_OFFSETS.len() - 1];

/// A mixture of alternatives, as factors away from the null and weights summing to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixture {
    /// Each alternative is null × factor (fail, SLO) or null / factor (promotion, floor).
    pub factors: &'static [f64],
    /// Prior weights, same length, summing to 1.
    pub weights: &'static [f64],
}

/// The fail test's alternatives: ratios 1.2 … 8 times the null, most weight on 1.5–3×,
/// the regressions canaries really show (chosen with `verdict evaluate`, see
/// docs/statistics.md §2).
pub const FAIL_MIXTURE: Mixture = Mixture {
    factors: &[1.2, 1.45, 1.75, 2.1, 2.6, 3.5, 5.0, 8.0],
    weights: &[0.08, 0.16, 0.2, 0.18, 0.14, 0.1, 0.08, 0.06],
};

/// The promotion test's alternatives, as canary/primary ratios (not relative to the
/// limit): "the canary is about as good as the primary, or better". Only those below the
/// promotion limit take part (weights renormalised). Putting no weight between ≈ 1.15 and
/// the limit keeps a canary that is really worse by less than the limit (a ×1.5 error
/// rate under a limit of 1.75) from being promoted by chance, at no cost for an equal one
/// (chosen with `verdict evaluate`, docs/statistics.md §6).
pub const PROMOTION_ALTERNATIVES: Mixture = Mixture {
    factors: &[1.1, 1.0, 0.87, 0.75, 0.6, 0.45],
    weights: &[0.12, 0.45, 0.17, 0.12, 0.08, 0.06],
};

/// The negligible-rate test's alternatives: rates the negligible rate divided by these.
pub const NEGLIGIBLE_MIXTURE: Mixture = Mixture {
    factors: &[1.15, 1.35, 1.6, 1.8, 2.1, 2.6, 3.5],
    weights: &[0.08, 0.14, 0.2, 0.22, 0.16, 0.12, 0.08],
};

/// The log e-value of a process now and the largest it has been: a test rejects when the
/// largest reaches ln(1/α) (Ville's bound covers the first crossing, so it stays rejected).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogE {
    /// ln E_t.
    pub now: f64,
    /// ln max_{s ≤ t} E_s; the anytime p-value is exp(−this).
    pub max: f64,
}

impl LogE {
    /// Records the value after a look.
    pub fn record(&mut self, now: f64) {
        self.now = now;
        self.max = self.max.max(now);
    }

    /// Whether the process has reached 1/α at some look.
    pub fn crossed(&self, alpha: f64) -> bool {
        self.max >= (1.0 / alpha).ln()
    }
}

/// ln Σ exp(v_i), stable for large and very negative values.
pub fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// The factor 1.1^j.
pub fn lattice_factor(j: i32) -> f64 {
    (f64::from(j) * LATTICE_STEP).exp()
}

/// One look's tempering exponent κ = 1 / (1 + τ² · v), v = x θ(1 − θ).
///
/// x θ(1−θ) is the Fisher information of x binomial trials about the log-odds of the
/// share, i.e. about the log ratio; with per-look noise of variance τ² on the log ratio
/// the information actually carried is v / (1 + τ² v).
pub fn temper(events: f64, share: f64, dispersion: f64) -> f64 {
    1.0 / (1.0 + dispersion * dispersion * events * share * (1.0 - share))
}

/// Cumulative tempered log-likelihood of the canary's share at fixed ratios ψ:
/// ℓ(ψ) = Σ_i κ_i [x_c ln θ_i(ψ) + x_p ln(1 − θ_i(ψ))]; a log-likelihood ratio is a
/// difference of two entries.
#[derive(Debug, Clone, PartialEq)]
struct ShareLogLik {
    /// (ψ, ln ψ) per tracked ratio.
    ratios: Vec<(f64, f64)>,
    ll: Vec<f64>,
}

impl ShareLogLik {
    fn new(ratios: impl Iterator<Item = f64>) -> Self {
        let ratios: Vec<(f64, f64)> = ratios.map(|psi| (psi, psi.ln())).collect();
        let ll = vec![0.0; ratios.len()];
        Self { ratios, ll }
    }

    /// Adds one look with canary/primary traffic ratio r = n_c / n_p (> 0).
    ///
    /// With a = r ψ: ln θ = −ln(1 + 1/a) = ln a − ln(1 + a) and ln(1 − θ) = −ln(1 + a),
    /// so each ratio costs one `ln_1p` and nothing cancels for tiny or huge a.
    fn add(&mut self, r: f64, ln_r: f64, x_c: f64, x_p: f64, kappa: f64) {
        let x = x_c + x_p;
        for ((psi, ln_psi), ll) in self.ratios.iter().zip(self.ll.iter_mut()) {
            let ln_a = ln_r + ln_psi;
            *ll += kappa * (x_c * ln_a - x * (r * psi).ln_1p());
        }
    }
}

/// A one-sided mixture test of the share: ℓ at the null (index 0) and at each alternative.
#[derive(Debug, Clone, PartialEq)]
struct ShareTest {
    null: f64,
    /// ln of each alternative's weight.
    log_weights: Vec<f64>,
    loglik: ShareLogLik,
    log_e: LogE,
}

impl ShareTest {
    /// Alternatives null × factor: evidence the ratio exceeds the null.
    fn upward(null: f64, mixture: Mixture) -> Self {
        let alternatives = mixture.factors.iter().map(|f| null * f);
        Self::with(
            null,
            alternatives.zip(mixture.weights.iter().copied()).collect(),
        )
    }

    /// Alternatives the fixed ratios of `mixture` below the null: evidence the ratio is
    /// below it.
    fn downward(null: f64, mixture: Mixture) -> Self {
        let below: Vec<(f64, f64)> = mixture
            .factors
            .iter()
            .copied()
            .zip(mixture.weights.iter().copied())
            .filter(|(ratio, _)| *ratio < null)
            .collect();
        // A limit at or under the smallest alternative: test against half the limit.
        let below = if below.is_empty() {
            vec![(null / 2.0, 1.0)]
        } else {
            below
        };
        Self::with(null, below)
    }

    fn with(null: f64, alternatives: Vec<(f64, f64)>) -> Self {
        let total: f64 = alternatives.iter().map(|(_, w)| w).sum();
        Self {
            null,
            log_weights: alternatives.iter().map(|(_, w)| (w / total).ln()).collect(),
            loglik: ShareLogLik::new(
                std::iter::once(null).chain(alternatives.iter().map(|(r, _)| *r)),
            ),
            log_e: LogE::default(),
        }
    }

    fn add(&mut self, r: f64, ln_r: f64, x_c: f64, x_p: f64, dispersion: f64) {
        let share = r * self.null / (r * self.null + 1.0);
        let kappa = temper(x_c + x_p, share, dispersion);
        self.loglik.add(r, ln_r, x_c, x_p, kappa);
        let ll0 = self.loglik.ll[0];
        self.log_e.record(log_sum_exp(
            self.loglik.ll[1..]
                .iter()
                .zip(&self.log_weights)
                .map(|(l, w)| l - ll0 + w),
        ));
    }
}

/// The ratio tests of one metric (errors, or requests above one latency boundary) with
/// the confidence sequence reported beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioProcess {
    dispersion: f64,
    /// "ratio > 1 + margin": fails the canary.
    fail: ShareTest,
    /// "ratio < 1 + promotion margin": lets it be promoted.
    promotion: ShareTest,
    /// ℓ on the lattice 1.1^k, k ∈ [−LATTICE_HALF, LATTICE_HALF], tempered at ratio 1.
    lattice: ShareLogLik,
    informative_looks: u32,
    /// Σ κ v at ratio 1: the tempered information gathered about the log ratio.
    information: f64,
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
    /// `fail_null` = 1 + margin, `promotion_null` = 1 + promotion margin; `dispersion` = τ,
    /// the sd of per-look noise on the log ratio.
    pub fn new(fail_null: f64, promotion_null: f64, dispersion: f64) -> Self {
        Self {
            dispersion,
            fail: ShareTest::upward(fail_null, FAIL_MIXTURE),
            promotion: ShareTest::downward(promotion_null, PROMOTION_ALTERNATIVES),
            lattice: ShareLogLik::new((-LATTICE_HALF..=LATTICE_HALF).map(lattice_factor)),
            informative_looks: 0,
            information: 0.0,
        }
    }

    /// Adds one look's counts. Looks where either arm served nothing, or with no events in
    /// either arm, carry no information about the share and change nothing.
    pub fn observe(&mut self, n_c: u64, n_p: u64, x_c: u64, x_p: u64) {
        if n_c == 0 || n_p == 0 || x_c + x_p == 0 {
            return;
        }
        let r = n_c as f64 / n_p as f64;
        let ln_r = r.ln();
        let (x_c, x_p) = (x_c as f64, x_p as f64);
        self.fail.add(r, ln_r, x_c, x_p, self.dispersion);
        self.promotion.add(r, ln_r, x_c, x_p, self.dispersion);
        let even = r / (r + 1.0);
        let kappa = temper(x_c + x_p, even, self.dispersion);
        self.lattice.add(r, ln_r, x_c, x_p, kappa);
        self.information += kappa * (x_c + x_p) * even * (1.0 - even);
        self.informative_looks += 1;
    }

    /// The fail test's log e-value ("ratio > 1 + margin").
    pub fn fail(&self) -> LogE {
        self.fail.log_e
    }

    /// The promotion test's log e-value ("ratio < 1 + promotion margin").
    pub fn promotion(&self) -> LogE {
        self.promotion.log_e
    }

    /// The fail test's null ratio 1 + margin.
    pub fn fail_null(&self) -> f64 {
        self.fail.null
    }

    /// The promotion test's null ratio 1 + promotion margin.
    pub fn promotion_null(&self) -> f64 {
        self.promotion.null
    }

    /// τ on the log ratio.
    pub fn dispersion(&self) -> f64 {
        self.dispersion
    }

    /// Looks that carried information.
    pub fn informative_looks(&self) -> u32 {
        self.informative_looks
    }

    /// The tempered information about the log ratio gathered so far (Σ κ x θ(1 − θ)).
    pub fn information(&self) -> f64 {
        self.information
    }

    /// ln of the one-sided lattice e-value at index `k`: mean_j L(ψ0·f_j)/L(ψ0) when
    /// `above`, else mean_j L(ψ0/f_j)/L(ψ0).
    fn one_sided_log_e(&self, k: i32, above: bool) -> f64 {
        let at = |i: i32| self.lattice.ll[(i + LATTICE_HALF) as usize];
        let ll0 = at(k);
        let sign = if above { 1 } else { -1 };
        let weight = -(CS_OFFSETS.len() as f64).ln();
        log_sum_exp(CS_OFFSETS.iter().map(|&j| at(k + sign * j) - ll0)) + weight
    }

    /// Anytime-valid one-sided (1 − α) bounds on the ratio: every lattice ψ0 below `lower`
    /// has an upward e-value ≥ 1/α, every one above `upper` a downward one. Ends are
    /// rounded outwards to the next excluded lattice point.
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
        let lo = ks.clone().find(|&k| self.one_sided_log_e(k, true) < bar);
        let hi = ks.rev().find(|&k| self.one_sided_log_e(k, false) < bar);
        RatioInterval {
            lower: match lo {
                Some(k) if k > -CS_HALF_WIDTH => lattice_factor(k - 1),
                Some(_) => 0.0,
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

/// A one-sample test of one arm's event rate against a fixed rate θ0 on its counts,
/// tempered look by look: "rate < θ0" is the negligible-rate promotion test ("rate > θ0"
/// is kept for comparison; the SLO guard is [`MeanProcess`], see its docs for why).
/// Tempering with the arm's own per-look dispersion keeps it approximately valid when the
/// rate moves from look to look.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProcess {
    theta0: f64,
    dispersion: f64,
    /// ln(θ_j/θ0) and ln((1 − θ_j)/(1 − θ0)) per alternative, and ln of its weight.
    terms: Vec<(f64, f64, f64)>,
    ll: Vec<f64>,
    log_e: LogE,
}

impl RateProcess {
    /// `upward`: alternatives θ0 × factor (rates above θ0 that stay below 1); else θ0 / factor.
    pub fn new(theta0: f64, dispersion: f64, mixture: Mixture, upward: bool) -> Self {
        let picked: Vec<(f64, f64)> = mixture
            .factors
            .iter()
            .zip(mixture.weights)
            .map(|(f, w)| (if upward { theta0 * f } else { theta0 / f }, *w))
            .filter(|(t, _)| *t > 0.0 && *t < 1.0)
            .collect();
        let total: f64 = picked.iter().map(|(_, w)| w).sum();
        let terms: Vec<(f64, f64, f64)> = picked
            .iter()
            .map(|(t, w)| {
                (
                    (t / theta0).ln(),
                    ((1.0 - t) / (1.0 - theta0)).ln(),
                    (w / total).ln(),
                )
            })
            .collect();
        let ll = vec![0.0; terms.len()];
        Self {
            theta0,
            dispersion,
            terms,
            ll,
            log_e: LogE::default(),
        }
    }

    /// Adds one look: `events` of `trials`.
    pub fn observe(&mut self, events: u64, trials: u64) {
        if trials == 0 || self.terms.is_empty() {
            return;
        }
        let (k, rest) = (
            events.min(trials) as f64,
            (trials - events.min(trials)) as f64,
        );
        let kappa = temper(trials as f64, self.theta0, self.dispersion);
        for ((up, down, _), ll) in self.terms.iter().zip(self.ll.iter_mut()) {
            *ll += kappa * (k * up + rest * down);
        }
        self.log_e.record(log_sum_exp(
            self.terms.iter().zip(&self.ll).map(|((_, _, w), l)| l + w),
        ));
    }

    /// The tested rate θ0.
    pub fn theta0(&self) -> f64 {
        self.theta0
    }

    /// The log e-value.
    pub fn log_e(&self) -> LogE {
        self.log_e
    }
}

/// Betting fractions of [`MeanProcess`], as shares of the largest fair bet 1/θ0.
const BETS: [f64; 5] = [0.15, 0.3, 0.5, 0.7, 0.9];

/// A test that the mean of per-look rates exceeds θ0, by betting (Waudby-Smith & Ramdas,
/// JRSS-B 2024): each look's rate X = events/trials ∈ [0, 1] multiplies the wealth of a
/// bet λ by 1 + λ(X − θ0), averaged over a few fixed λ ≤ 1/θ0. Valid for any per-look
/// distribution whose conditional mean is at most θ0, however bursty: the absolute SLO
/// guard, whose null "the canary's mean rate is at the SLO" a count-based test cannot
/// keep under heavy-tailed per-look noise (docs/statistics.md §4). The price: a look
/// adds at most ln(X/θ0) of evidence, however many requests it had.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanProcess {
    theta0: f64,
    /// ln wealth of each bet.
    wealth: [f64; BETS.len()],
    log_e: LogE,
}

impl MeanProcess {
    /// H0: the mean per-look rate is at most `theta0` (in (0, 1)).
    pub fn new(theta0: f64) -> Self {
        Self {
            theta0,
            wealth: [0.0; BETS.len()],
            log_e: LogE::default(),
        }
    }

    /// Adds one look: `events` of `trials` (a look without trials says nothing).
    pub fn observe(&mut self, events: u64, trials: u64) {
        if trials == 0 {
            return;
        }
        let x = events.min(trials) as f64 / trials as f64;
        for (w, c) in self.wealth.iter_mut().zip(BETS) {
            *w += (c * (x / self.theta0 - 1.0)).ln_1p();
        }
        self.log_e
            .record(log_sum_exp(self.wealth.iter().copied()) - (BETS.len() as f64).ln());
    }

    /// The tested rate θ0.
    pub fn theta0(&self) -> f64 {
        self.theta0
    }

    /// The log e-value.
    pub fn log_e(&self) -> LogE {
        self.log_e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixtures_are_distributions_above_one() {
        for m in [FAIL_MIXTURE, NEGLIGIBLE_MIXTURE, PROMOTION_ALTERNATIVES] {
            assert_eq!(m.factors.len(), m.weights.len());
            assert!((m.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(FAIL_MIXTURE.factors.iter().all(|f| *f > 1.0));
        assert!(NEGLIGIBLE_MIXTURE.factors.iter().all(|f| *f > 1.0));
    }

    #[test]
    fn share_loglik_matches_the_direct_formula() {
        let mut l = ShareLogLik::new([0.5, 1.0, 3.0].into_iter());
        l.add(0.25, 0.25_f64.ln(), 3.0, 7.0, 0.7);
        for (psi, got) in [0.5, 1.0, 3.0].iter().zip(&l.ll) {
            let theta = 0.25 * psi / (0.25 * psi + 1.0);
            let want = 0.7 * (3.0 * f64::ln(theta) + 7.0 * f64::ln(1.0 - theta));
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
}
