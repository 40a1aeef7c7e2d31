//! The gradient penalty's ops (WGAN-GP, Gulrajani et al. 2017) on the CPU,
//! the reference `shaders/penalty.wgsl` mirrors: the random points between
//! real and generated rows, the penalty of the critic's input gradients and
//! its gradient, and the second-order term of an activation that the
//! penalty's double backward through the critic needs.

use crate::backend::{Clock, Dropout, Mat};
use crate::model::Activation;
use crate::rng;

/// Lanes of the penalty's row sums: the GPU kernel's workgroup size.
pub const LANES: usize = 256;

/// out[r, c] = e_r real[r, c] + (1 - e_r) fake[r, c], with
/// `e_r = rng::uniform01(clock.seed, stream, clock.step, r)`.
#[allow(clippy::too_many_arguments)]
pub fn interpolate_rows(
    (rd, real): (&[f32], Mat),
    (fd, fake): (&[f32], Mat),
    stream: u32,
    clock: Clock,
    od: &mut [f32],
    out: Mat,
) {
    for r in 0..out.rows as usize {
        let e = rng::uniform01(clock.seed, stream, clock.step, r as u32);
        for c in 0..out.cols as usize {
            od[out.at(r, c)] = e * rd[real.at(r, c)] + (1.0 - e) * fd[fake.at(r, c)];
        }
    }
}

/// The sum of squares of one row as the GPU sums it: lane t adds the
/// columns t, t + 256, ... in order, then a fixed tree halves the lanes.
fn row_square_sum(row: impl Fn(usize) -> f32, cols: usize) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for (t, lane) in lanes.iter_mut().enumerate() {
        let mut c = t;
        while c < cols {
            let g = row(c);
            *lane += g * g;
            c += LANES;
        }
    }
    let mut half = LANES / 2;
    while half > 0 {
        for t in 0..half {
            lanes[t] += lanes[t + half];
        }
        half /= 2;
    }
    lanes[0]
}

/// The gradient penalty `weight * sum_r (|grad_r| - 1)^2` of the rows of
/// `grad`, returned, and its gradient `v_r = 2 weight (n_r - 1) / n_r grad_r`
/// (0 for a zero row) written into the view `v` of `vd`. The rows' terms are
/// summed in order, then multiplied by `weight`.
pub fn gradient_penalty((gd, grad): (&[f32], Mat), weight: f32, vd: &mut [f32], v: Mat) -> f32 {
    let mut total = 0.0f32;
    for r in 0..grad.rows as usize {
        let norm = row_square_sum(|c| gd[grad.at(r, c)], grad.cols as usize).sqrt();
        let scale = if norm > 0.0 {
            2.0 * weight * (norm - 1.0) / norm
        } else {
            0.0
        };
        for c in 0..grad.cols as usize {
            vd[v.at(r, c)] = scale * gd[grad.at(r, c)];
        }
        total += (norm - 1.0) * (norm - 1.0);
    }
    weight * total
}

/// out[r, c] = u[r, c] t[r, c] act''(z) / (1 - p) where dropout keeps the
/// element (act(z) = y (1 - p)), 0 where it drops it; without dropout
/// u t act''(y).
#[allow(clippy::too_many_arguments)]
pub fn activation_curvature(
    (ud, u): (&[f32], Mat),
    (td, t): (&[f32], Mat),
    (yd, y): (&[f32], Mat),
    act: Activation,
    dropout: Option<Dropout>,
    clock: Clock,
    od: &mut [f32],
    out: Mat,
) {
    let cols = y.cols as usize;
    let mask = dropout.map(|d| {
        (
            rng::DropoutMask::new(clock.seed, d.stream, clock.step, d.p),
            d.p,
        )
    });
    for r in 0..y.rows as usize {
        for c in 0..cols {
            let out_y = yd[y.at(r, c)];
            let curvature = match mask {
                Some((mask, p)) => {
                    if mask.keeps((r * cols + c) as u32) {
                        act.second_derivative_from_output(out_y * (1.0 - p)) / (1.0 - p)
                    } else {
                        0.0
                    }
                }
                None => act.second_derivative_from_output(out_y),
            };
            od[out.at(r, c)] = ud[u.at(r, c)] * td[t.at(r, c)] * curvature;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_sum_is_the_sum_of_squares() {
        let values: Vec<f32> = (0..700).map(|i| (i as f32 * 0.37).sin()).collect();
        let plain: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let lanes = row_square_sum(|c| values[c], values.len());
        assert!(
            (f64::from(lanes) - plain).abs() < 1e-4 * plain,
            "{lanes} {plain}"
        );
    }

    #[test]
    fn the_penalty_of_a_unit_row_is_zero_and_its_gradient_points_along_the_row() {
        // Row 0 has norm 1 (3-4-5), row 1 norm 2, row 2 is zero.
        let g = [0.6f32, 0.8, 1.2, 1.6, 0.0, 0.0];
        let grad = Mat::dense(crate::backend::Tensor { id: 0, len: 6 }, 3, 2);
        let mut v = [9.0f32; 6];
        let penalty = gradient_penalty((&g, grad), 0.5, &mut v, grad);
        // 0.5 * ((1 - 1)^2 + (2 - 1)^2 + (0 - 1)^2) = 1.
        assert!((penalty - 1.0).abs() < 1e-6, "{penalty}");
        assert!(v[0].abs() < 1e-6 && v[1].abs() < 1e-6);
        // 2 * 0.5 * (2 - 1) / 2 * g.
        assert!(
            (v[2] - 0.6).abs() < 1e-6 && (v[3] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(&v[4..], &[0.0, 0.0]);
    }
}
