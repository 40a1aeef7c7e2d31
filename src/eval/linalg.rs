//! The small dense linear algebra the FID needs, in f64: a symmetric
//! eigendecomposition by the cyclic Jacobi method, and matrix products.
//! Matrices are row-major `n x n` slices. Jacobi is slow for large `n` but
//! exact to a few ulps of the matrix norm and simple to check; the feature
//! covariances are 256 x 256, where a decomposition takes well under a second.

use crate::error::{Error, Result};

/// Sweeps after which a decomposition that has not converged is an error
/// (Jacobi converges quadratically; 256 x 256 covariances need about 10).
const MAX_SWEEPS: usize = 100;

/// Eigenvalues (unsorted) and, if asked for, eigenvectors (the columns of a
/// row-major `n x n` matrix) of the symmetric matrix `a`. Only the symmetric
/// part of `a` is used.
pub fn symmetric_eigen(a: &[f64], n: usize, vectors: bool) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.len() != n * n {
        return Err(Error::Eval(format!(
            "eigendecomposition: {} values do not make a {n} x {n} matrix",
            a.len()
        )));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Eval(
            "eigendecomposition: the matrix holds NaN or infinite values".into(),
        ));
    }
    // Work on the symmetric part, so rounding in the caller's product cannot
    // make the iteration chase an asymmetry.
    let mut m = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    let mut v = if vectors { identity(n) } else { Vec::new() };
    let norm = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _ in 0..MAX_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|p| (p + 1..n).map(move |q| (p, q)))
            .map(|(p, q)| m[p * n + q] * m[p * n + q])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * norm || norm == 0.0 {
            let values = (0..n).map(|i| m[i * n + i]).collect();
            return Ok((values, v));
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // The rotation that zeroes (p, q) (Numerical Recipes' `jacobi`):
                // theta = cot(2 phi), t = tan(phi), the smaller root.
                let theta = (aqq - app) / (2.0 * apq);
                let t = if theta.abs() > 1e150 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // M <- M P (columns p, q), then M <- P^T M (rows p, q).
                for k in 0..n {
                    let (kp, kq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * kp - s * kq;
                    m[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * pk - s * qk;
                    m[q * n + k] = s * pk + c * qk;
                }
                m[p * n + q] = 0.0;
                m[q * n + p] = 0.0;
                if vectors {
                    for k in 0..n {
                        let (kp, kq) = (v[k * n + p], v[k * n + q]);
                        v[k * n + p] = c * kp - s * kq;
                        v[k * n + q] = s * kp + c * kq;
                    }
                }
            }
        }
    }
    Err(Error::Eval(format!(
        "eigendecomposition of a {n} x {n} matrix did not converge in {MAX_SWEEPS} sweeps"
    )))
}

/// The `n x n` identity.
pub fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// `a b` for row-major `n x n` matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            let row = &b[k * n..(k + 1) * n];
            for (cij, bkj) in c[i * n..(i + 1) * n].iter_mut().zip(row) {
                *cij += aik * bkj;
            }
        }
    }
    c
}

/// The square root of a symmetric positive semi-definite matrix,
/// `V diag(sqrt(max(lambda, 0))) V^T`; tiny negative eigenvalues (rounding)
/// are clamped to 0.
pub fn sqrt_psd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let (values, v) = symmetric_eigen(a, n, true)?;
    let roots: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| v[i * n + k] * roots[k] * v[j * n + k]).sum();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, v) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2, true).unwrap();
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-14 && (values[1] - 3.0).abs() < 1e-14);
        // V is orthogonal.
        let vt: Vec<f64> = (0..4).map(|i| v[(i % 2) * 2 + i / 2]).collect();
        let i2 = matmul(&v, &vt, 2);
        for (x, y) in i2.iter().zip(identity(2)) {
            assert!((x - y).abs() < 1e-14);
        }
    }

    #[test]
    fn reconstructs_a_random_symmetric_matrix() {
        let n = 20;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = crate::rng::normal(5, 1, i as u32, j as u32) as f64;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (values, v) = symmetric_eigen(&a, n, true).unwrap();
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n)
                    .map(|k| v[i * n + k] * values[k] * v[j * n + k])
                    .sum();
                assert!((r - a[i * n + j]).abs() < 1e-12, "({i}, {j}): {r}");
            }
        }
        // sqrt of A^T A squared back.
        let ata = matmul(&a, &a, n);
        let root = sqrt_psd(&ata, n).unwrap();
        let back = matmul(&root, &root, n);
        for (x, y) in back.iter().zip(&ata) {
            assert!((x - y).abs() < 1e-10 * (1.0 + y.abs()));
        }
    }
}
