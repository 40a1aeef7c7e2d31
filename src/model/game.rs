//! The adversarial game a model is trained with, beside its networks: the
//! loss (the 2014 paper's BCE, least squares, hinge or Wasserstein), how
//! many critic steps come before each generator step, the optimizer and the
//! discriminator's own learning rate, the Wasserstein critic's weight
//! clipping or gradient penalty, and the generator's moving average
//! (`--ema`). [`GameSettings::for_loss`] gives each loss's usual settings
//! (the WGAN paper's RMSprop at 5e-5, 5 critic steps and clipping at 0.01);
//! [`LossKind::terms`] the score terms the backend's `critic_loss` takes.

use super::critic_loss::ScoreTerm;
use crate::error::{Error, Result};

/// `--loss`: how D's raw output is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Binary cross-entropy from logits, the non-saturating generator loss
    /// (Goodfellow et al. 2014); label smoothing as the model sets it.
    Bce,
    /// Least squares (Mao et al. 2017): D minimises (D(x) - 1)^2 / 2 +
    /// D(G(z))^2 / 2, G minimises (D(G(z)) - 1)^2 / 2.
    Lsgan,
    /// Hinge (SNGAN, SAGAN, BigGAN): D minimises relu(1 - D(x)) +
    /// relu(1 + D(G(z))), G minimises -D(G(z)).
    Hinge,
    /// Wasserstein (Arjovsky et al. 2017): D minimises D(G(z)) - D(x), its
    /// weights clipped after each update; G minimises -D(G(z)).
    Wgan,
    /// Wasserstein with a gradient penalty (Gulrajani et al. 2017): the
    /// Wasserstein critic loss plus lambda (|grad D(x_hat)| - 1)^2 at
    /// x_hat = eps x + (1 - eps) G(z), eps uniform per image.
    WganGp,
}

impl LossKind {
    pub const ALL: [LossKind; 5] = [
        LossKind::Bce,
        LossKind::Lsgan,
        LossKind::Hinge,
        LossKind::Wgan,
        LossKind::WganGp,
    ];

    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Lsgan => "lsgan",
            LossKind::Hinge => "hinge",
            LossKind::Wgan => "wgan",
            LossKind::WganGp => "wgan-gp",
        }
    }

    /// One line about the loss, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            LossKind::Bce => "Binary cross-entropy, the non-saturating generator loss (2014)",
            LossKind::Lsgan => "Least squares (Mao et al. 2017)",
            LossKind::Hinge => "Hinge, as in SNGAN, SAGAN and BigGAN",
            LossKind::Wgan => {
                "Wasserstein with weight clipping (Arjovsky et al. 2017): RMSprop 5e-5, 5 critic steps"
            }
            LossKind::WganGp => {
                "Wasserstein with gradient penalty (Gulrajani et al. 2017): Adam 1e-4, betas (0.5, 0.9), 5 critic steps, --gp-weight 10"
            }
        }
    }

    /// The score terms of a critic loss (every loss but BCE, which has its
    /// own op): D's real rows, D's generated rows, and G's rows. LSGAN's
    /// targets are the model's real and fake targets (1 and 0, or a
    /// smoothed real target).
    pub fn terms(self, real_target: f32, fake_target: f32) -> [ScoreTerm; 3] {
        match self {
            LossKind::Bce | LossKind::Lsgan => [
                ScoreTerm::Square {
                    target: real_target,
                },
                ScoreTerm::Square {
                    target: fake_target,
                },
                ScoreTerm::Square { target: 1.0 },
            ],
            LossKind::Hinge => [
                ScoreTerm::HingeReal,
                ScoreTerm::HingeFake,
                ScoreTerm::Linear { sign: -1.0 },
            ],
            LossKind::Wgan | LossKind::WganGp => [
                ScoreTerm::Linear { sign: -1.0 },
                ScoreTerm::Linear { sign: 1.0 },
                ScoreTerm::Linear { sign: -1.0 },
            ],
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        LossKind::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                Error::config(
                    "--loss",
                    format!("{name:?} is not a loss (expected bce, lsgan, hinge, wgan or wgan-gp)"),
                )
            })
    }
}

/// `--optimizer`: how each network's parameters move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Adam with bias correction (PyTorch's).
    Adam,
    /// RMSprop as PyTorch's default: alpha 0.99, eps 1e-8, no momentum.
    RmsProp,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::RmsProp => "rmsprop",
        }
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "adam" => Ok(OptimizerKind::Adam),
            "rmsprop" => Ok(OptimizerKind::RmsProp),
            _ => Err(Error::config(
                "--optimizer",
                format!("{name:?} is not an optimizer (expected adam or rmsprop)"),
            )),
        }
    }
}

/// The gradient penalty's usual weight lambda (Gulrajani et al. 2017).
pub const GP_WEIGHT: f32 = 10.0;

/// WGAN-GP's usual Adam betas (Gulrajani et al. 2017, Algorithm 1).
pub const GP_BETAS: (f32, f32) = (0.5, 0.9);

/// RMSprop's smoothing constant (PyTorch's default alpha).
pub const RMSPROP_ALPHA: f32 = 0.99;

/// RMSprop's settings (PyTorch's formulation: no momentum, not centred).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropSettings {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
}

/// The game's settings of a model; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GameSettings {
    pub loss: LossKind,
    /// Discriminator steps per generator step, each on a fresh real batch.
    pub n_critic: usize,
    pub optimizer: OptimizerKind,
    /// The generator's learning rate and the discriminator's.
    pub lr_g: f32,
    pub lr_d: f32,
    /// Clip every discriminator weight to [-clip, clip] after each of its
    /// updates (WGAN only).
    pub clip: Option<f32>,
    /// Keep an exponential moving average of the generator's weights with
    /// this decay, updated after each generator step (`--ema`); the grids,
    /// `sample` and `eval` draw from it.
    pub ema: Option<f32>,
    /// The gradient penalty's weight lambda (`wgan-gp` only).
    pub gp_weight: Option<f32>,
}

/// `--loss`, `--n-critic`, `--optimizer`, `--lr`, `--lr-g`, `--lr-d`,
/// `--clip`, `--ema` and `--gp-weight` as given (None: the loss's or the model's default;
/// no average).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GameFlags {
    pub loss: Option<LossKind>,
    pub n_critic: Option<usize>,
    pub optimizer: Option<OptimizerKind>,
    pub lr: Option<f32>,
    pub lr_g: Option<f32>,
    pub lr_d: Option<f32>,
    pub clip: Option<f32>,
    pub ema: Option<f32>,
    pub gp_weight: Option<f32>,
}

impl GameSettings {
    /// The settings of `flags` for a model whose own learning rate is
    /// `model_lr`: the loss's usual ones where a flag is not given (WGAN:
    /// RMSprop, lr 5e-5, 5 critic steps, clip 0.01; WGAN-GP: Adam, lr 1e-4,
    /// 5 critic steps, lambda 10, and [`GP_BETAS`] (set by
    /// `ModelSpec`); the others: the model's Adam and learning rate, 1
    /// critic step). `--lr` sets both rates,
    /// `--lr-g` and `--lr-d` one each.
    pub fn for_loss(flags: &GameFlags, model_lr: f32) -> GameSettings {
        let loss = flags.loss.unwrap_or(LossKind::Bce);
        let (optimizer, lr, n_critic, clip) = match loss {
            LossKind::Wgan => (OptimizerKind::RmsProp, 5e-5, 5, Some(0.01)),
            LossKind::WganGp => (OptimizerKind::Adam, 1e-4, 5, None),
            _ => (OptimizerKind::Adam, model_lr, 1, None),
        };
        let lr = flags.lr.unwrap_or(lr);
        GameSettings {
            loss,
            n_critic: flags.n_critic.unwrap_or(n_critic),
            optimizer: flags.optimizer.unwrap_or(optimizer),
            lr_g: flags.lr_g.unwrap_or(lr),
            lr_d: flags.lr_d.unwrap_or(lr),
            clip: flags.clip.or(clip),
            ema: flags.ema,
            gp_weight: match loss {
                LossKind::WganGp => Some(flags.gp_weight.unwrap_or(GP_WEIGHT)),
                _ => flags.gp_weight,
            },
        }
    }

    /// The settings of the 2014 game for a model whose learning rate is
    /// `lr`: BCE, one critic step, Adam, no clipping.
    pub fn bce(lr: f32) -> GameSettings {
        GameSettings::for_loss(&GameFlags::default(), lr)
    }

    /// Rejects settings no run can use, naming the flag; `real_target` is
    /// the model's (below 1 where it smooths BCE's labels).
    pub fn validate(&self, real_target: f32, model: &str) -> Result<()> {
        if self.n_critic == 0 {
            return Err(Error::config("--n-critic", "must be at least 1"));
        }
        if self.n_critic > 100 {
            return Err(Error::config(
                "--n-critic",
                format!("{} is above the limit of 100", self.n_critic),
            ));
        }
        for (flag, lr) in [("--lr-g", self.lr_g), ("--lr-d", self.lr_d)] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::config(
                    flag,
                    format!("{lr} must be a finite number above 0"),
                ));
            }
        }
        match (self.clip, self.loss) {
            (Some(c), LossKind::Wgan) if !(c.is_finite() && c > 0.0) => {
                return Err(Error::config(
                    "--clip",
                    format!("{c} must be a finite number above 0"),
                ))
            }
            (Some(_), loss) if loss != LossKind::Wgan => {
                return Err(Error::config(
                    "--clip",
                    format!(
                        "clips the Wasserstein critic's weights (--loss wgan), not a {} discriminator's",
                        loss.name()
                    ),
                ))
            }
            _ => {}
        }
        match (self.gp_weight, self.loss) {
            (Some(w), LossKind::WganGp) if !(w.is_finite() && w > 0.0) => {
                return Err(Error::config(
                    "--gp-weight",
                    format!("{w} must be a finite number above 0"),
                ))
            }
            (Some(_), loss) if loss != LossKind::WganGp => {
                return Err(Error::config(
                    "--gp-weight",
                    format!(
                        "weighs the gradient penalty of --loss wgan-gp, not of {}",
                        loss.name()
                    ),
                ))
            }
            _ => {}
        }
        if let Some(decay) = self.ema {
            if !(decay > 0.0 && decay < 1.0) {
                return Err(Error::config(
                    "--ema",
                    format!("{decay} is not a decay between 0 and 1 (e.g. 0.999)"),
                ));
            }
        }
        if real_target != 1.0
            && matches!(
                self.loss,
                LossKind::Hinge | LossKind::Wgan | LossKind::WganGp
            )
        {
            return Err(Error::config(
                "--loss",
                format!(
                    "{} scores D's raw output and has no label to smooth, but --model {model} smooths BCE's real label to {real_target}: use --loss bce or lsgan with it",
                    self.loss.name()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loss_takes_its_usual_settings_and_flags_override_them() {
        let wgan = GameSettings::for_loss(
            &GameFlags {
                loss: Some(LossKind::Wgan),
                ..Default::default()
            },
            2e-4,
        );
        assert_eq!(
            (
                wgan.optimizer,
                wgan.lr_g,
                wgan.lr_d,
                wgan.n_critic,
                wgan.clip
            ),
            (OptimizerKind::RmsProp, 5e-5, 5e-5, 5, Some(0.01))
        );
        let hinge = GameSettings::for_loss(
            &GameFlags {
                loss: Some(LossKind::Hinge),
                lr: Some(1e-3),
                lr_d: Some(4e-4),
                n_critic: Some(2),
                ..Default::default()
            },
            2e-4,
        );
        assert_eq!(
            (
                hinge.optimizer,
                hinge.lr_g,
                hinge.lr_d,
                hinge.n_critic,
                hinge.clip
            ),
            (OptimizerKind::Adam, 1e-3, 4e-4, 2, None)
        );
        assert_eq!(GameSettings::bce(2e-4).loss, LossKind::Bce);
        assert_eq!(GameSettings::bce(2e-4).n_critic, 1);
    }

    #[test]
    fn contradictions_are_errors_naming_the_flags() {
        let game = |loss, clip| GameSettings {
            clip,
            ..GameSettings::for_loss(
                &GameFlags {
                    loss: Some(loss),
                    ..Default::default()
                },
                2e-4,
            )
        };
        let err = game(LossKind::Hinge, None)
            .validate(0.9, "deep")
            .unwrap_err();
        assert!(err.to_string().contains("--loss") && err.to_string().contains("--model deep"));
        assert!(game(LossKind::Lsgan, None).validate(0.9, "deep").is_ok());
        let err = game(LossKind::Hinge, Some(0.01))
            .validate(1.0, "dcgan")
            .unwrap_err();
        assert!(err.to_string().contains("--clip"));
        let err = game(LossKind::Wgan, Some(-1.0))
            .validate(1.0, "dcgan")
            .unwrap_err();
        assert!(err.to_string().contains("--clip"));
        for bad in [0.0, 1.0, -0.5, f32::NAN] {
            let with_ema = GameSettings {
                ema: Some(bad),
                ..game(LossKind::Bce, None)
            };
            let err = with_ema.validate(1.0, "dcgan").unwrap_err();
            assert!(err.to_string().contains("--ema"), "{err}");
        }
        let with_ema = GameSettings {
            ema: Some(0.999),
            ..game(LossKind::Bce, None)
        };
        assert!(with_ema.validate(1.0, "dcgan").is_ok());
        assert_eq!("wgan-gp".parse::<LossKind>().unwrap(), LossKind::WganGp);
        let err = game(LossKind::Hinge, None);
        let err = GameSettings {
            gp_weight: Some(10.0),
            ..err
        }
        .validate(1.0, "dcgan")
        .unwrap_err();
        assert!(err.to_string().contains("--gp-weight"), "{err}");
        let gp = game(LossKind::WganGp, None);
        assert_eq!(
            (gp.optimizer, gp.lr_g, gp.n_critic, gp.gp_weight),
            (OptimizerKind::Adam, 1e-4, 5, Some(GP_WEIGHT))
        );
        let err = GameSettings {
            gp_weight: Some(0.0),
            ..gp
        }
        .validate(1.0, "dcgan")
        .unwrap_err();
        assert!(err.to_string().contains("--gp-weight"), "{err}");
        assert_eq!("hinge".parse::<LossKind>().unwrap(), LossKind::Hinge);
    }
}
