//! Numbers in reasons: short, human, never "NaN" or "inf".

/// A rate as a percentage with two significant digits ("1.9%", "0.05%", "12%").
pub fn pct(rate: f64) -> String {
    let p = rate * 100.0;
    if !p.is_finite() {
        return "n/a".into();
    }
    if p == 0.0 {
        return "0%".into();
    }
    format!("{}%", sig2(p))
}

/// A ratio with two significant digits ("2.4", "1.1", "0.85").
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        return "unbounded".into();
    }
    sig2(r)
}

/// A configured limit with up to three significant digits ("1.65", "2", "1.1").
pub fn limit(x: f64) -> String {
    if !x.is_finite() {
        return "unbounded".into();
    }
    let s = format!("{x:.3}");
    let s = if x >= 10.0 { format!("{x:.1}") } else { s };
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An e-value or threshold: integers below a million, scientific above.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x >= 1e6 {
        format!("{x:.1e}")
    } else if x >= 10.0 {
        format!("{}", x.round())
    } else {
        sig2(x)
    }
}

/// A p-value ("0.003", "2.1e-5").
pub fn p_value(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        sig2(p)
    }
}

/// "99%" for α = 0.01, "99.5%" for α = 0.005.
pub fn confidence(alpha: f64) -> String {
    let c = (1.0 - alpha) * 100.0;
    let s = format!("{c:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// A count with thin thousands separators ("12 000").
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// Seconds as "250 ms" or "2.5 s".
pub fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{} ms", sig2(s * 1000.0))
    } else {
        format!("{} s", sig2(s))
    }
}

/// A latency in whole milliseconds from 10 ms up ("139 ms"), else two significant digits.
pub fn millis(s: f64) -> String {
    let ms = s * 1000.0;
    if !ms.is_finite() {
        return "n/a".into();
    }
    if ms >= 10.0 {
        format!("{} ms", ms.round())
    } else {
        format!("{} ms", sig2(ms))
    }
}

/// A relative change as a signed whole percentage ("+30%", "-4%", "+0%").
pub fn signed_pct(change: f64) -> String {
    if !change.is_finite() {
        return "n/a".into();
    }
    let p = (change * 100.0).round();
    if p < 0.0 {
        format!("{p}%")
    } else {
        format!("+{p}%")
    }
}

/// Two significant digits, without trailing zeros.
fn sig2(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = (1 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        assert_eq!(pct(0.019), "1.9%");
        assert_eq!(pct(0.005), "0.5%");
        assert_eq!(pct(0.0005), "0.05%");
        assert_eq!(pct(0.1234), "12%");
        assert_eq!(pct(f64::NAN), "n/a");
        assert_eq!(ratio(2.4375), "2.4");
        assert_eq!(ratio(f64::INFINITY), "unbounded");
        assert_eq!(limit(1.65), "1.65");
        assert_eq!(limit(2.0), "2");
        assert_eq!(limit(0.1 + 1.0), "1.1");
        assert_eq!(num(142.3), "142");
        assert_eq!(num(2.5e7), "2.5e7");
        assert_eq!(confidence(0.01), "99%");
        assert_eq!(confidence(0.005), "99.5%");
        assert_eq!(count(1_234_567), "1 234 567");
        assert_eq!(count(999), "999");
        assert_eq!(seconds(0.25), "250 ms");
        assert_eq!(seconds(2.5), "2.5 s");
        assert_eq!(millis(0.1394), "139 ms");
        assert_eq!(millis(0.0042), "4.2 ms");
        assert_eq!(signed_pct(0.302), "+30%");
        assert_eq!(signed_pct(-0.04), "-4%");
        assert_eq!(signed_pct(f64::NAN), "n/a");
    }
}
