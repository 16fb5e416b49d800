//! Percentiles and the min / median / max summaries the report prints.

/// Nearest-rank percentile of unsorted values (`p` in 0..=100).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub n: usize,
}

pub fn summary(values: &[f64]) -> Option<Summary> {
    Some(Summary {
        min: percentile(values, 0.0)?,
        median: percentile(values, 50.0)?,
        max: percentile(values, 100.0)?,
        n: values.len(),
    })
}

/// `median (min–max)` with `digits` decimals, or `-`.
pub fn fmt(values: &[f64], digits: usize) -> String {
    match summary(values) {
        Some(s) if s.n == 1 => format!("{:.*}", digits, s.median),
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            digits, s.median, digits, s.min, digits, s.max
        ),
        None => "-".into(),
    }
}

/// `a / b` as `×r`, or `-` when either side is missing.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("×{:.2}", a / b),
        _ => "-".into(),
    }
}
