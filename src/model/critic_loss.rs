//! The GAN losses since 2017 as terms of D's raw output, one per row: least
//! squares (LSGAN), hinge (SNGAN, SAGAN, BigGAN) and Wasserstein (WGAN,
//! WGAN-GP). A call scores rows `..split` with one term and rows `split..`
//! with another ([`CriticLossParams`]), so the discriminator's real and
//! generated rows, or the generator's rows, take one op each. The CPU
//! evaluates [`ScoreTerm::loss_and_grad`]; `shaders/loss.wgsl`'s
//! `critic_loss` mirrors it; the backends' `critic_loss` op takes it.

/// What one row with raw output `l` adds to the loss, and its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreTerm {
    /// `(l - target)^2 / 2`, gradient `l - target` (least squares).
    Square { target: f32 },
    /// `max(0, 1 - l)`, gradient -1 where `l < 1`, else 0 (hinge, real rows).
    HingeReal,
    /// `max(0, 1 + l)`, gradient 1 where `l > -1`, else 0 (hinge, generated rows).
    HingeFake,
    /// `sign * l`, gradient `sign` (Wasserstein; the hinge generator's `-l`).
    Linear { sign: f32 },
}

impl ScoreTerm {
    /// The row's loss and its gradient with respect to `l`. At a hinge's
    /// kink (`l` = 1 or -1) the gradient is 0, the one-sided derivative from
    /// the flat side, as PyTorch's `relu` backward gives.
    pub fn loss_and_grad(self, l: f32) -> (f32, f32) {
        match self {
            ScoreTerm::Square { target } => {
                let d = l - target;
                (0.5 * d * d, d)
            }
            ScoreTerm::HingeReal => {
                if l < 1.0 {
                    (1.0 - l, -1.0)
                } else {
                    (0.0, 0.0)
                }
            }
            ScoreTerm::HingeFake => {
                if l > -1.0 {
                    (1.0 + l, 1.0)
                } else {
                    (0.0, 0.0)
                }
            }
            ScoreTerm::Linear { sign } => (sign * l, sign),
        }
    }

    /// The term as the GPU kernel reads it: a kind code and its parameter.
    pub fn code(self) -> (u32, f32) {
        match self {
            ScoreTerm::Square { target } => (0, target),
            ScoreTerm::HingeReal => (1, 0.0),
            ScoreTerm::HingeFake => (2, 0.0),
            ScoreTerm::Linear { sign } => (3, sign),
        }
    }
}

/// A critic loss call: rows `..split` take `first`, rows `split..` take
/// `second`; every row's loss and gradient are scaled by `weight` (1 /
/// batch: the mean over each part).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CriticLossParams {
    pub split: u32,
    pub first: ScoreTerm,
    pub second: ScoreTerm,
    pub weight: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_term_is_its_formula_and_its_gradient_the_derivative() {
        let terms = [
            ScoreTerm::Square { target: 1.0 },
            ScoreTerm::Square { target: 0.0 },
            ScoreTerm::HingeReal,
            ScoreTerm::HingeFake,
            ScoreTerm::Linear { sign: -1.0 },
            ScoreTerm::Linear { sign: 1.0 },
        ];
        for term in terms {
            // Away from the hinges' kinks at -1 and 1.
            for l in [-2.5f32, -0.4, 0.0, 0.3, 1.7] {
                let h = 1e-2f32;
                let (up, _) = term.loss_and_grad(l + h);
                let (down, _) = term.loss_and_grad(l - h);
                let (_, grad) = term.loss_and_grad(l);
                let numeric = (up - down) / (2.0 * h);
                // Every term is at most quadratic: the central difference
                // is exact up to rounding (a few ulps of 1 / h).
                assert!(
                    (numeric - grad).abs() < 1e-4,
                    "{term:?} at {l}: {numeric} vs {grad}"
                );
            }
        }
        assert_eq!(
            ScoreTerm::Square { target: 1.0 }.loss_and_grad(3.0),
            (2.0, 2.0)
        );
        assert_eq!(ScoreTerm::HingeReal.loss_and_grad(0.25), (0.75, -1.0));
        assert_eq!(ScoreTerm::HingeReal.loss_and_grad(1.5), (0.0, 0.0));
        assert_eq!(ScoreTerm::HingeFake.loss_and_grad(-0.5), (0.5, 1.0));
        assert_eq!(ScoreTerm::HingeFake.loss_and_grad(-1.5), (0.0, 0.0));
        assert_eq!(
            ScoreTerm::Linear { sign: -1.0 }.loss_and_grad(2.0),
            (-2.0, -1.0)
        );
    }
}
