//! The Fréchet distance between Gaussian fits of two feature sets (the FID,
//! here on the built-in classifier's penultimate features rather than
//! Inception's): `||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`, in f64.
//!
//! `Tr((S1 S2)^(1/2))` is computed as `Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`: the
//! two matrices are similar, and the second is symmetric positive
//! semi-definite, so both square roots come from symmetric eigendecompositions
//! ([`super::linalg`]) with tiny negative eigenvalues clamped to 0.

use super::linalg::{matmul, sqrt_psd, symmetric_eigen};
use crate::error::{Error, Result};

/// The mean and covariance of a set of feature vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub dim: usize,
    /// How many vectors the fit is of.
    pub count: usize,
    pub mean: Vec<f64>,
    /// Row-major `dim x dim`, the unbiased estimate (divided by `count - 1`).
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Fits `features` (`count x dim`, row-major). Needs at least 2 vectors.
    pub fn fit(features: &[f32], dim: usize) -> Result<Gaussian> {
        if dim == 0 || !features.len().is_multiple_of(dim) {
            return Err(Error::Eval(format!(
                "{} feature values do not make vectors of {dim}",
                features.len()
            )));
        }
        let count = features.len() / dim;
        if count < 2 {
            return Err(Error::Eval(format!(
                "a Gaussian fit needs at least 2 feature vectors, got {count}"
            )));
        }
        let mut mean = vec![0.0f64; dim];
        for row in features.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= count as f64);
        // Centred data, then S = X^T X / (count - 1) through dgemm.
        let centred: Vec<f64> = features
            .chunks_exact(dim)
            .flat_map(|row| row.iter().zip(&mean).map(|(&x, m)| x as f64 - m))
            .collect();
        let mut cov = vec![0.0f64; dim * dim];
        // SAFETY: X^T is dim x count with row stride 1 and column stride dim,
        // X is count x dim with strides (dim, 1), cov is dim x dim; all three
        // slices hold exactly the elements these strides reach.
        unsafe {
            matrixmultiply::dgemm(
                dim,
                count,
                dim,
                1.0 / (count - 1) as f64,
                centred.as_ptr(),
                1,
                dim as isize,
                centred.as_ptr(),
                dim as isize,
                1,
                0.0,
                cov.as_mut_ptr(),
                dim as isize,
                1,
            );
        }
        Ok(Gaussian {
            dim,
            count,
            mean,
            cov,
        })
    }
}

/// `||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.dim != b.dim {
        return Err(Error::Eval(format!(
            "Gaussians of {} and {} dimensions cannot be compared",
            a.dim, b.dim
        )));
    }
    let n = a.dim;
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |m: &[f64]| (0..n).map(|i| m[i * n + i]).sum::<f64>();
    let root_a = sqrt_psd(&a.cov, n)?;
    let inner = matmul(&matmul(&root_a, &b.cov, n), &root_a, n);
    let (values, _) = symmetric_eigen(&inner, n, false)?;
    let trace_root: f64 = values.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok(mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * trace_root)
}
