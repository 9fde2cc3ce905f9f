//! Timing as a security property: recovery for a known and for an unknown address
//! must take the same time over HTTP. A probe that samples both, interleaved in
//! random order, and the two-sample Kolmogorov–Smirnov test that compares them.

use std::time::Instant;

use host_harness::storage::NewUser;
use serde_json::json;

use crate::TestServer;

/// The two-sample Kolmogorov–Smirnov statistic `D` of `a` and `b` and its
/// asymptotic p-value (with the usual small-sample correction of the argument).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let ne = n * m / (n + m);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    (d, kolmogorov_q(lambda))
}

/// `Q(λ) = 2 Σ (-1)^(k-1) e^(-2 k² λ²)`: the probability that the statistic of two
/// samples from one distribution is at least as large.
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u64 % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Times of recovery requests, microseconds.
#[derive(Debug, Default)]
pub struct RecoveryTimes {
    /// The identification POST and the redirected GET that sends, known address.
    pub send_known: Vec<f64>,
    /// The same for an unknown address.
    pub send_unknown: Vec<f64>,
    /// A resend POST, known address.
    pub resend_known: Vec<f64>,
    /// A resend POST, unknown address.
    pub resend_unknown: Vec<f64>,
}

/// A small deterministic generator for the order of the samples.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn micros(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e6
}

/// Runs `n` recoveries for known and `n` for unknown addresses against `s`, in a
/// random interleaved order (seed `seed`), after `warmup` untimed ones. Each
/// recovery is a new browser: identification, then the GET that sends (timed
/// together with the identification POST that leads to it), then one resend
/// (timed). `tag` keeps the addresses of several runs on one store apart.
pub fn recovery_times(
    s: &TestServer,
    n: usize,
    warmup: usize,
    seed: u64,
    tag: &str,
) -> RecoveryTimes {
    for i in 0..n + warmup {
        s.store
            .create_user(&NewUser {
                username: format!("{tag}known{i}"),
                email: format!("{tag}known{i}@example.com"),
                is_active: true,
                ..Default::default()
            })
            .expect("create user");
    }
    let mut order: Vec<(bool, usize)> = (0..n).flat_map(|i| [(true, i), (false, i)]).collect();
    let mut rng = SplitMix(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let warm: Vec<(bool, usize)> = (0..warmup).map(|i| (i % 2 == 0, n + i)).collect();
    let api = s.url(&host_harness::flow::executor_url("recover", ""));
    let mut out = RecoveryTimes::default();
    for (k, (known, i)) in warm.iter().chain(order.iter()).enumerate() {
        let uid = if *known {
            format!("{tag}known{i}@example.com")
        } else {
            format!("{tag}unknown{i}@example.com")
        };
        let a = ureq::AgentBuilder::new().redirects(4).build();
        a.get(&api).call().expect("identification");
        let t = Instant::now();
        let v: serde_json::Value = a
            .post(&api)
            .send_json(json!({"uid_field": uid}))
            .expect("send")
            .into_json()
            .expect("json");
        let send = micros(t);
        assert_eq!(v["component"], "ak-stage-email", "{v}");
        let t = Instant::now();
        let v: serde_json::Value = a
            .post(&api)
            .send_json(json!({"component": "ak-stage-email"}))
            .expect("resend")
            .into_json()
            .expect("json");
        let resend = micros(t);
        assert_eq!(
            v["messages"][0]["message"], "Email Successfully sent.",
            "{v}"
        );
        if k < warm.len() {
            continue;
        }
        if *known {
            out.send_known.push(send);
            out.resend_known.push(resend);
        } else {
            out.send_unknown.push(send);
            out.resend_unknown.push(resend);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_tells_shifted_samples_apart_and_not_equal_ones() {
        let a: Vec<f64> = (0..500).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..500).map(|i| i as f64 + 0.5).collect();
        let (d, p) = ks_two_sample(&a, &b);
        assert!(d < 0.01 && p > 0.99, "{d} {p}");
        let c: Vec<f64> = (0..500).map(|i| i as f64 + 250.0).collect();
        let (d, p) = ks_two_sample(&a, &c);
        assert!((d - 0.5).abs() < 1e-9 && p < 1e-20, "{d} {p}");
        assert_eq!(quantile(&a, 0.5), 249.0);
        assert_eq!(quantile(&a, 0.9), 449.0);
    }
}
