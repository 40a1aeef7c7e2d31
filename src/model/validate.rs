//! Which models a run can use: [`ModelSpec::validate`] rejects impossible
//! flag values, naming the flag, and models over the memory limit.

use super::{MemoryEstimate, ModelSpec, NetSpec, StepPlan};
use crate::error::{Error, Result};

impl ModelSpec {
    /// Rejects settings no run can use, naming the flag. `dataset_len` is the
    /// number of training images (a batch may not exceed it).
    pub fn validate(&self, dataset_len: usize) -> Result<()> {
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(Error::config(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("--epochs", self.epochs)?;
        positive("--batch-size", self.batch_size)?;
        positive("--noise-dim", self.noise_dim)?;
        if self.batch_size > dataset_len {
            return Err(Error::config(
                "--batch-size",
                format!(
                    "{} is larger than the data set ({} images)",
                    self.batch_size, dataset_len
                ),
            ));
        }
        self.game.validate(self.real_target, self.kind.name())?;
        let batch_norm = |l: &super::Layer| matches!(l, super::Layer::BatchNorm { .. });
        if self.game.loss == super::LossKind::WganGp
            && self.discriminator.stack().layers.iter().any(batch_norm)
        {
            return Err(Error::config(
                "--loss",
                format!(
                    "wgan-gp penalises each image's gradient, and the discriminator of --model {} has batch norm, which ties a batch's images together; use a model whose critic has none (dcgan, vanilla, conditional) or another loss",
                    self.kind.name()
                ),
            ));
        }
        if self.batch_size * self.game.n_critic > dataset_len {
            return Err(Error::config(
                "--n-critic",
                format!(
                    "{} critic steps of {} images each need more than the data set's {dataset_len} images in one step",
                    self.game.n_critic, self.batch_size
                ),
            ));
        }
        // Sizes are u32 on the GPU; keep every tensor and every index well inside that.
        const MAX_WIDTH: usize = 1 << 16;
        const MAX_BATCH: usize = 1 << 16;
        if self.batch_size > MAX_BATCH {
            return Err(Error::config(
                "--batch-size",
                format!("{} is above the limit of {MAX_BATCH}", self.batch_size),
            ));
        }
        if self.noise_dim > MAX_WIDTH {
            return Err(Error::config(
                "--noise-dim",
                format!("{} is above the limit of {MAX_WIDTH}", self.noise_dim),
            ));
        }
        for (flag, net) in [
            ("--g-hidden", &self.generator),
            ("--d-hidden", &self.discriminator),
        ] {
            // An MLP's layer widths, or a layer list's channel counts.
            let widths = match net.mlp() {
                Some(mlp) => mlp.layers.iter().map(|l| l.out_dim).collect(),
                None => net.hidden(),
            };
            for width in widths {
                if width == 0 {
                    return Err(Error::config(flag, "layer widths must be at least 1"));
                }
                if width > MAX_WIDTH {
                    return Err(Error::config(
                        flag,
                        format!("width {width} is above the limit of {MAX_WIDTH}"),
                    ));
                }
            }
        }
        for (name, net) in [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ] {
            if let NetSpec::Layers(stack) = net {
                let flag = if name == "generator" {
                    "--noise-dim"
                } else {
                    "--model"
                };
                stack
                    .shapes()
                    .map_err(|e| Error::config(flag, format!("the {name} does not fit: {e}")))?;
            }
        }
        self.check_image_shape()?;
        self.check_memory()?;
        let a = self.adam;
        if !(a.lr.is_finite() && a.lr > 0.0) {
            return Err(Error::config(
                "--lr",
                format!("{} must be a finite number above 0", a.lr),
            ));
        }
        for (flag, b) in [("--beta1", a.beta1), ("--beta2", a.beta2)] {
            if !(b.is_finite() && (0.0..1.0).contains(&b)) {
                return Err(Error::config(flag, format!("{b} must be in [0, 1)")));
            }
        }
        Ok(())
    }

    /// Rejects data whose images the generator does not draw: the
    /// convolutional models draw one size (dcgan 28x28, dcgan64 64x64), and
    /// the data's must match it.
    fn check_image_shape(&self) -> Result<()> {
        let NetSpec::Layers(stack) = &self.generator else {
            return Ok(());
        };
        // shapes() passed above.
        let drawn = stack.output()?;
        let data = self.image_shape();
        if (drawn.channels, drawn.height, drawn.width) == (data.channels, data.rows, data.cols) {
            return Ok(());
        }
        let size = drawn.height;
        Err(Error::config(
            "--image-size",
            format!(
                "the {} model draws {size}x{size} images with the data's channels, but the data's images are {data}: pass --image-size {size} (folders of images are scaled and cropped to it)",
                self.kind.name(),
            ),
        ))
    }

    /// Bytes a training run holds for this model (see
    /// [`StepPlan::memory`]): each network's parameters, gradients and two
    /// Adam moments, and the step's activations and their gradients on the
    /// generator's `max(batch, 100)` rows and the discriminator's `2 batch`.
    pub fn memory_bytes(&self) -> MemoryEstimate {
        StepPlan::new(self).memory()
    }

    /// Rejects a model whose [`memory_bytes`](Self::memory_bytes) exceed
    /// [`MAX_MODEL_BYTES`], naming the flag that contributes most.
    fn check_memory(&self) -> Result<()> {
        let m = self.memory_bytes();
        if m.total() <= MAX_MODEL_BYTES as u128 {
            return Ok(());
        }
        let flag = if m.activations >= m.generator.max(m.discriminator) {
            "--batch-size"
        } else if m.generator >= m.discriminator {
            "--g-hidden"
        } else {
            "--d-hidden"
        };
        Err(Error::config(
            flag,
            format!(
                "the model needs about {} of memory (generator {}, discriminator {} for \
                 parameters, gradients and Adam moments; activations {}; the generator's \
                 average {}; the gradient penalty {}), over the {} limit; use smaller widths or batches",
                gib(m.total()),
                gib(m.generator),
                gib(m.discriminator),
                gib(m.activations),
                gib(m.generator_average),
                gib(m.gradient_penalty),
                gib(MAX_MODEL_BYTES as u128)
            ),
        ))
    }
}

/// The most memory a model may need (see [`ModelSpec::memory_bytes`]):
/// 4 GiB, room for the `dcgan` at batch 1024 (about 2 GiB; 0.5 GiB at its
/// batch of 256), so a mistyped width or batch is a clear error instead of
/// an allocation failure.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

fn gib(bytes: u128) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::super::{ModelKind, Overrides};
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let mut s = ModelSpec::preset(ModelKind::Vanilla);
        s.adam.lr = f32::NAN;
        assert!(s.validate(60000).unwrap_err().to_string().contains("--lr"));
        let s = ModelSpec::build(
            ModelKind::Vanilla,
            &Overrides {
                batch_size: Some(70000),
                ..Default::default()
            },
        );
        assert!(s
            .validate(60000)
            .unwrap_err()
            .to_string()
            .contains("--batch-size"));
    }
}
