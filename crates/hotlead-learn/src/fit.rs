//! L2-regularised logistic regression (linfa-logistic) on standardised features at a
//! given strength, with the covariance of the weights from the Fisher information; the
//! seeded shuffles and stratified folds the rule choice cross-validates on.

use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis, ShapeBuilder};
use serde::{Deserialize, Serialize};

/// A deterministic shuffle source (SplitMix64): the same seed gives the same splits.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A cross-validation split: (training rows, validation rows).
pub type CvSplit = (Vec<usize>, Vec<usize>);

/// Stratified k-fold: each fold validates once, trained on the others.
pub fn stratified_splits(y: &[bool], k: usize, seed: u64) -> Vec<CvSplit> {
    let folds = stratified_folds(y, k, seed);
    (0..folds.len())
        .map(|k| {
            let train = folds
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != k)
                .flat_map(|(_, f)| f.iter().copied())
                .collect::<Vec<_>>();
            let mut train = train;
            train.sort_unstable();
            (train, folds[k].clone())
        })
        .collect()
}

/// Splits indices into `k` folds, each with about the same share of each class.
pub fn stratified_folds(y: &[bool], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SplitMix::new(seed);
    let k = k.max(1);
    let mut folds = vec![Vec::new(); k];
    for class in [true, false] {
        let mut members: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        rng.shuffle(&mut members);
        for (n, i) in members.into_iter().enumerate() {
            folds[n % k].push(i);
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("every training row has the same outcome; both won and lost deals are needed")]
    OneClass,
    #[error("no usable feature: every column is constant on the training rows")]
    NoFeatures,
    #[error("the solver failed: {0}")]
    Solver(String),
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// The inverse regularisation strength (scikit-learn's `C`; alpha = 1/C).
    pub c: f64,
    /// Cross-validation folds (of the rule choice).
    pub folds: usize,
    pub seed: u64,
    pub max_iterations: u64,
    /// Stop when the gradient of the mean loss is below this.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            c: 1.0,
            folds: 5,
            seed: 0,
            max_iterations: 300,
            tolerance: 1e-4,
        }
    }
}

/// A fitted model in the features' own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Per input column: the weight per unit of the feature (0 for a dropped column).
    pub coef: Vec<f64>,
    /// Per input column: the standard error of `coef` (`None` for a dropped column).
    pub se: Vec<Option<f64>>,
    pub intercept: f64,
    /// Columns with one value on the training rows: they carry no information.
    pub constant: Vec<usize>,
    /// The `C` it was fitted with.
    pub c: f64,
    /// The covariance of `coef` (input columns × input columns; 0 for a dropped
    /// column), `None` where the information matrix is singular.
    #[serde(skip)]
    pub covariance: Option<Array2<f64>>,
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Column means and standard deviations; a column whose deviation is (near) zero is
/// constant.
fn moments(x: ArrayView2<f64>) -> (Array1<f64>, Array1<f64>) {
    let n = x.nrows().max(1) as f64;
    let mean = x.sum_axis(Axis(0)) / n;
    let mut var = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        for ((v, &value), &m) in var.iter_mut().zip(row.iter()).zip(mean.iter()) {
            *v += (value - m) * (value - m);
        }
    }
    (mean, (var / n).mapv(f64::sqrt))
}

/// Fits once on standardised features with a fixed alpha; returns (weights, intercept)
/// for P(won).
fn fit_standardised(
    z: &Array2<f64>,
    y: &[bool],
    alpha: f64,
    options: &FitOptions,
) -> Result<(Array1<f64>, f64), FitError> {
    // linfa models the probability of the more frequent class (on a tie, the first seen).
    let won = y.iter().filter(|&&w| w).count();
    let lost = y.len() - won;
    let sign = if won > lost || (won == lost && y.first() == Some(&true)) {
        1.0
    } else {
        -1.0
    };
    let targets = Array1::from(y.to_vec());
    let dataset = linfa::DatasetBase::new(z.view(), targets);
    let n = z.nrows().max(1) as f64;
    let model = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(options.max_iterations)
        .gradient_tolerance(options.tolerance * n)
        .fit(&dataset)
        .map_err(|e| FitError::Solver(e.to_string()))?;
    Ok((model.params() * sign, model.intercept() * sign))
}

/// Fits the model at `options.c`: drops constant columns, standardises the others, and
/// gives weights and their covariance in the columns' own units.
pub fn fit(x: ArrayView2<f64>, y: &[bool], options: &FitOptions) -> Result<Model, FitError> {
    if y.iter().all(|&w| w) || y.iter().all(|&w| !w) {
        return Err(FitError::OneClass);
    }
    let (mean, sd) = moments(x);
    let kept: Vec<usize> = (0..x.ncols()).filter(|&j| sd[j] > 1e-12).collect();
    let constant: Vec<usize> = (0..x.ncols()).filter(|&j| sd[j] <= 1e-12).collect();
    if kept.is_empty() {
        return Err(FitError::NoFeatures);
    }
    let mean_k = mean.select(Axis(0), &kept);
    let sd_k = sd.select(Axis(0), &kept);
    // One copy: the kept columns, standardised, column-major: linfa's gradient
    // (Xᵀ·r) and the loss (X·w) run about twice as fast on it as on rows.
    let z = Array2::from_shape_fn((x.nrows(), kept.len()).f(), |(i, k)| {
        (x[[i, kept[k]]] - mean_k[k]) / sd_k[k]
    });

    let c = options.c;
    let alpha = 1.0 / c;
    let (w, b) = fit_standardised(&z, y, alpha, options)?;
    let cov_std = covariance_std(&z, &w, b, alpha);
    let se_std: Vec<Option<f64>> = match &cov_std {
        Some(cov) => (0..kept.len())
            .map(|k| Some(cov[[k, k]].max(0.0).sqrt()))
            .collect(),
        None => vec![None; kept.len()],
    };
    let covariance = cov_std.map(|cov| {
        let mut out = Array2::<f64>::zeros((x.ncols(), x.ncols()));
        for (a, &ja) in kept.iter().enumerate() {
            for (b, &jb) in kept.iter().enumerate() {
                out[[ja, jb]] = cov[[a, b]] / (sd_k[a] * sd_k[b]);
            }
        }
        out
    });

    let mut coef = vec![0.0; x.ncols()];
    let mut se = vec![None; x.ncols()];
    let mut intercept = b;
    for (k, &j) in kept.iter().enumerate() {
        coef[j] = w[k] / sd_k[k];
        se[j] = se_std.get(k).copied().flatten().map(|s| s / sd_k[k]);
        intercept -= w[k] * mean_k[k] / sd_k[k];
    }
    Ok(Model {
        coef,
        se,
        intercept,
        constant,
        c,
        covariance,
    })
}

/// The covariance of the standardised weights: the inverse of the (penalised) Fisher
/// information `Zᵀ W Z + alpha I`, with the intercept as an unpenalised column (dropped
/// from the result). `None` where the matrix is not positive definite.
fn covariance_std(z: &Array2<f64>, w: &Array1<f64>, b: f64, alpha: f64) -> Option<Array2<f64>> {
    let n = z.nrows();
    let p = z.ncols();
    let mut design = Array2::<f64>::ones((n, p + 1));
    for (mut row, source) in design.rows_mut().into_iter().zip(z.rows()) {
        for (target, value) in row.iter_mut().zip(source.iter()) {
            *target = *value;
        }
    }
    let probabilities = (z.dot(w) + b).mapv(sigmoid);
    for (mut row, &pi) in design.rows_mut().into_iter().zip(probabilities.iter()) {
        let weight = (pi * (1.0 - pi)).sqrt();
        row.mapv_inplace(|v| v * weight);
    }
    let mut information = design.t().dot(&design);
    for j in 0..p {
        information[[j, j]] += alpha;
    }
    cholesky_inverse(&information)
        .map(|inverse| Array2::from_shape_fn((p, p), |(a, b)| inverse[[a, b]]))
}

/// The inverse of a symmetric positive-definite matrix, by Cholesky.
fn cholesky_inverse(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let l = cholesky(a)?;
    // Solve L X = I, then A⁻¹ = Xᵀ X.
    let mut x = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for k in i..n {
            let mut sum = if k == i { 1.0 } else { 0.0 };
            for m in i..k {
                sum -= l[[k, m]] * x[[m, i]];
            }
            x[[k, i]] = sum / l[[k, k]];
        }
    }
    Some(x.t().dot(&x))
}

fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[[i, j]];
            for k in 0..j {
                sum -= l[[i, k]] * l[[j, k]];
            }
            if i == j {
                if sum <= 1e-12 * a[[i, i]].abs().max(1e-300) {
                    return None;
                }
                l[[i, i]] = sum.sqrt();
            } else {
                l[[i, j]] = sum / l[[j, j]];
            }
        }
    }
    Some(l)
}

/// Fits `P(won) = sigmoid(a + b·score)` on one column of scores (Platt scaling), so that a
/// points-based score can be read as a probability. Scores with no spread give the base
/// rate.
pub fn calibrate(scores: &[f64], y: &[bool]) -> (f64, f64) {
    let n = y.len().max(1) as f64;
    let rate = (y.iter().filter(|&&w| w).count() as f64 / n).clamp(1e-6, 1.0 - 1e-6);
    let base = (rate / (1.0 - rate)).ln();
    let mean = scores.iter().sum::<f64>() / n;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
    if sd < 1e-12 {
        return (base, 0.0);
    }
    let z = Array2::from_shape_fn((scores.len(), 1), |(i, _)| (scores[i] - mean) / sd);
    // Practically unregularised: one feature, plenty of rows.
    match fit_standardised(&z, y, 1e-6, &FitOptions::default()) {
        Ok((w, b)) => (b - w[0] * mean / sd, w[0] / sd),
        Err(_) => (base, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_inverse_matches_a_known_inverse() {
        let a = ndarray::array![[4.0, 2.0], [2.0, 3.0]];
        // inverse = 1/8 [[3, -2], [-2, 4]]
        let inverse = cholesky_inverse(&a).unwrap();
        let expected = ndarray::array![[3.0, -2.0], [-2.0, 4.0]] / 8.0;
        for (got, want) in inverse.iter().zip(expected.iter()) {
            assert!((got - want).abs() < 1e-12, "{inverse}");
        }
        assert!(cholesky_inverse(&ndarray::array![[1.0, 1.0], [1.0, 1.0]]).is_none());
    }

    #[test]
    fn folds_keep_class_shares_and_depend_only_on_the_seed() {
        let y: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect();
        let folds = stratified_folds(&y, 5, 7);
        assert_eq!(folds, stratified_folds(&y, 5, 7));
        assert_ne!(folds, stratified_folds(&y, 5, 8));
        for fold in &folds {
            assert_eq!(fold.len(), 20);
            assert_eq!(fold.iter().filter(|&&i| y[i]).count(), 5);
        }
    }
}
