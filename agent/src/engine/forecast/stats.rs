//! The distributions forecasts are stated in: the standard normal and Student's t. Policies
//! read forecasts through these; nothing here knows of policies.

/// Standard normal cumulative distribution (Abramowitz–Stegun 7.1.26, error < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(z * z) / 2.0).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// CDF of Student's t with `nu` (≥ 1) degrees of freedom, by the finite series for whole
/// degrees of freedom (Abramowitz–Stegun 26.7.3 and 26.7.4).
pub fn student_t_cdf(t: f64, nu: u32) -> f64 {
    if !t.is_finite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let nu = nu.max(1);
    let theta = (t.abs() / f64::from(nu).sqrt()).atan();
    let (s, c) = theta.sin_cos();
    let c2 = c * c;
    // A(t|ν) = P(|T| <= |t|).
    let a = if nu % 2 == 1 {
        let mut sum = 0.0;
        if nu > 1 {
            let mut term = 1.0;
            sum = 1.0;
            let mut k = 2;
            while k + 1 < nu {
                term *= f64::from(k) / f64::from(k + 1) * c2;
                sum += term;
                k += 2;
            }
        }
        2.0 / std::f64::consts::PI * (theta + s * c * sum)
    } else {
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut k = 1;
        while k + 1 < nu {
            term *= f64::from(k) / f64::from(k + 1) * c2;
            sum += term;
            k += 2;
        }
        s * sum
    };
    let a = a.clamp(0.0, 1.0);
    if t >= 0.0 {
        0.5 + 0.5 * a
    } else {
        0.5 - 0.5 * a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_t_matches_known_values() {
        // Cauchy: P(T <= 1) = 3/4.
        assert!((student_t_cdf(1.0, 1) - 0.75).abs() < 1e-12);
        // Tables: t(0.975; 2) = 4.303, t(0.975; 5) = 2.571, t(0.975; 30) = 2.042.
        assert!((student_t_cdf(4.303, 2) - 0.975).abs() < 1e-4);
        assert!((student_t_cdf(2.571, 5) - 0.975).abs() < 1e-4);
        assert!((student_t_cdf(2.042, 30) - 0.975).abs() < 1e-4);
        assert!((student_t_cdf(-2.571, 5) - 0.025).abs() < 1e-4);
        assert_eq!(student_t_cdf(0.0, 7), 0.5);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-2.053_749) - 0.02).abs() < 1e-6);
    }
}
