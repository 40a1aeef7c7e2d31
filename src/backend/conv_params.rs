//! The parameter structs of the convolution and batch-norm ops, as candle's
//! `ParamsConv2D`: one plain struct per op kind, carrying every size the op
//! needs, with the output shape derived by PyTorch's formulas and a
//! `validate` that turns an impossible shape into a typed error. Both
//! backends take the same struct (`conv2d_forward(&Conv2dParams, ...)` on the
//! CPU, the uniform of the `conv2d_forward` entry point on the GPU).
//!
//! Layouts are PyTorch's: activations NCHW, contiguous; conv weight
//! `[out, in, k, k]`; transposed-conv weight `[in, out, k, k]`; bias `[out]`.

use crate::error::{Error, Result};
use crate::model::layers::{conv_out, conv_transpose_out};

/// A square-kernel 2-D convolution (no dilation, no groups):
/// x `[batch, in_channels, in_h, in_w]` -> y `[batch, out_channels, out_h, out_w]`,
/// weight `[out_channels, in_channels, kernel, kernel]`, bias `[out_channels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// An error unless every named size is positive.
fn positive(what: &str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::config(what, format!("{name} must be at least 1"))),
        None => Ok(()),
    }
}

impl Conv2dParams {
    /// Output height: floor((in_h + 2p - k) / s) + 1 (0 for a shape that
    /// [`validate`](Self::validate) rejects).
    pub fn out_h(&self) -> usize {
        conv_out(self.in_h, self.kernel, self.stride, self.padding).unwrap_or(0)
    }

    /// Output width: floor((in_w + 2p - k) / s) + 1.
    pub fn out_w(&self) -> usize {
        conv_out(self.in_w, self.kernel, self.stride, self.padding).unwrap_or(0)
    }

    /// Elements of x: batch * in_channels * in_h * in_w.
    pub fn x_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }

    /// Elements of y: batch * out_channels * out_h * out_w.
    pub fn y_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Elements of the weight: out_channels * in_channels * kernel^2.
    pub fn w_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel * self.kernel
    }

    /// An error for a shape PyTorch's `Conv2d` would reject: a zero size, or
    /// a padded input smaller than the kernel.
    pub fn validate(&self) -> Result<()> {
        positive(
            "conv2d",
            &[
                ("batch", self.batch),
                ("in_channels", self.in_channels),
                ("out_channels", self.out_channels),
                ("in_h", self.in_h),
                ("in_w", self.in_w),
                ("kernel", self.kernel),
                ("stride", self.stride),
            ],
        )?;
        for (name, input) in [("in_h", self.in_h), ("in_w", self.in_w)] {
            if conv_out(input, self.kernel, self.stride, self.padding).is_none() {
                return Err(Error::config(
                    "conv2d",
                    format!(
                        "{name} {input} with padding {} is smaller than the kernel {}",
                        self.padding, self.kernel
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A square-kernel 2-D transposed convolution (PyTorch's `ConvTranspose2d`,
/// no dilation, no groups): x `[batch, in_channels, in_h, in_w]` ->
/// y `[batch, out_channels, out_h, out_w]`, weight
/// `[in_channels, out_channels, kernel, kernel]`, bias `[out_channels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTranspose2dParams {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Extra rows and columns at the bottom and right of the output, so that
    /// one input size can map to each of the `stride` sizes a convolution
    /// maps back onto it. Must be below `stride`.
    pub output_padding: usize,
}

impl ConvTranspose2dParams {
    /// (in - 1) * s - 2p + k + output_padding ([`conv_transpose_out`]).
    fn out(&self, input: usize) -> Option<usize> {
        conv_transpose_out(
            input,
            self.kernel,
            self.stride,
            self.padding,
            self.output_padding,
        )
    }

    /// Output height: (in_h - 1) * s - 2p + k + output_padding (0 for a
    /// shape that [`validate`](Self::validate) rejects).
    pub fn out_h(&self) -> usize {
        self.out(self.in_h).unwrap_or(0)
    }

    /// Output width: (in_w - 1) * s - 2p + k + output_padding.
    pub fn out_w(&self) -> usize {
        self.out(self.in_w).unwrap_or(0)
    }

    /// Elements of x: batch * in_channels * in_h * in_w.
    pub fn x_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }

    /// Elements of y: batch * out_channels * out_h * out_w.
    pub fn y_len(&self) -> usize {
        self.batch * self.out_channels * self.out_h() * self.out_w()
    }

    /// Elements of the weight: in_channels * out_channels * kernel^2.
    pub fn w_len(&self) -> usize {
        self.in_channels * self.out_channels * self.kernel * self.kernel
    }

    /// The convolution this op is the adjoint of: it maps this op's output
    /// shape back onto its input shape (`as_conv().out_h() == in_h`) with the
    /// same weight tensor (`[in, out, k, k]` here is `[out, in, k, k]` there).
    /// This op's forward is that convolution's backward-input, and the
    /// reverse. Meaningful only for parameters that pass
    /// [`validate`](Self::validate).
    pub fn as_conv(&self) -> Conv2dParams {
        Conv2dParams {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            in_h: self.out_h(),
            in_w: self.out_w(),
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// An error for a shape PyTorch's `ConvTranspose2d` would reject: a zero
    /// size, `output_padding >= stride`, or an output smaller than 1x1.
    pub fn validate(&self) -> Result<()> {
        positive(
            "conv_transpose2d",
            &[
                ("batch", self.batch),
                ("in_channels", self.in_channels),
                ("out_channels", self.out_channels),
                ("in_h", self.in_h),
                ("in_w", self.in_w),
                ("kernel", self.kernel),
                ("stride", self.stride),
            ],
        )?;
        if self.output_padding >= self.stride {
            return Err(Error::config(
                "conv_transpose2d",
                format!(
                    "output_padding {} must be smaller than the stride {}",
                    self.output_padding, self.stride
                ),
            ));
        }
        for (name, input) in [("in_h", self.in_h), ("in_w", self.in_w)] {
            if self.out(input).is_none() {
                return Err(Error::config(
                    "conv_transpose2d",
                    format!(
                        "{name} {input} with kernel {}, stride {}, padding {} and output_padding {} gives no output",
                        self.kernel, self.stride, self.padding, self.output_padding
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Batch norm over `channels` (PyTorch's `BatchNorm1d` with `spatial` 1, or
/// `BatchNorm2d` with `spatial` = h * w): x and y `[batch, channels, spatial]`,
/// gamma, beta and the running statistics `[channels]`, the saved
/// statistics of training `[groups, channels]`. In training each channel of
/// each group of rows is normalised over its `(batch / groups) * spatial`
/// values; in evaluation every value by the running statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormParams {
    pub batch: usize,
    pub channels: usize,
    /// h * w for 2-D batch norm, 1 for 1-D.
    pub spatial: usize,
    /// In training, the batch's rows split into `groups` equal consecutive
    /// groups (rows `g * batch / groups ..` `(g + 1) * batch / groups`), each
    /// normalised by its own statistics, exactly as `groups` separate
    /// PyTorch training calls in order: the running statistics are updated
    /// once a group, group 0 first. The D of a GAN sees [real; fake] as one
    /// pass with `groups` 2. At least 1, and `batch` must be a multiple of
    /// it; evaluation ignores it.
    pub groups: usize,
    /// Weight of the batch statistic in the running estimate (PyTorch's
    /// default 0.1): running = (1 - momentum) * running + momentum * batch.
    pub momentum: f32,
    /// Added to the variance before the square root (PyTorch's default 1e-5).
    pub eps: f32,
}

impl BatchNormParams {
    /// Values per channel: batch * spatial.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    /// Rows of a group: batch / groups (groups 0 counts as 1 here; `validate`
    /// rejects it).
    pub fn group_rows(&self) -> usize {
        self.batch / self.groups.max(1)
    }

    /// Values per channel of a group, the count its statistics are over:
    /// (batch / groups) * spatial.
    pub fn group_count(&self) -> usize {
        self.group_rows() * self.spatial
    }

    /// Elements of the saved statistics: groups * channels.
    pub fn stats_len(&self) -> usize {
        self.groups * self.channels
    }

    /// Elements of x and y: batch * channels * spatial.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Whether x is empty (never, for parameters that pass `validate`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An error for a zero size or groups, a batch that is not a multiple
    /// of groups, a momentum outside [0, 1] or an eps that is not positive.
    /// Training also needs [`validate_train`](Self::validate_train).
    pub fn validate(&self) -> Result<()> {
        positive(
            "batch_norm",
            &[
                ("batch", self.batch),
                ("channels", self.channels),
                ("spatial", self.spatial),
                ("groups", self.groups),
            ],
        )?;
        if !self.batch.is_multiple_of(self.groups) {
            return Err(Error::config(
                "batch_norm",
                format!(
                    "batch {} is not a multiple of groups {}",
                    self.batch, self.groups
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::config(
                "batch_norm",
                format!("momentum {} must be in [0, 1]", self.momentum),
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::config(
                "batch_norm",
                format!("eps {} must be positive", self.eps),
            ));
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and more than one value per channel of
    /// each group, as PyTorch requires in training: one value has no
    /// variance (and the unbiased estimate of the running variance divides
    /// by count - 1).
    pub fn validate_train(&self) -> Result<()> {
        self.validate()?;
        if self.group_count() < 2 {
            return Err(Error::config(
                "batch_norm",
                format!(
                    "training needs more than 1 value per channel of a group (batch {} / groups {} x spatial {})",
                    self.batch, self.groups, self.spatial
                ),
            ));
        }
        Ok(())
    }
}
