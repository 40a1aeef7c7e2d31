//! The uniform parameter structs of the kernels, byte for byte as the WGSL
//! structs at binding 0 of each shader family (all fields 4 bytes, sizes a
//! multiple of 16 as uniform buffers want).

use bytemuck::{Pod, Zeroable};

/// `LinearParams` of `shaders/linear.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LinearParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub act: u32,
    pub a_off: u32,
    pub a_stride: u32,
    pub b_off: u32,
    pub b_stride: u32,
    pub c_off: u32,
    pub c_stride: u32,
    pub bias_off: u32,
    pub slope: f32,
    pub y_off: u32,
    pub y_stride: u32,
    pub out_cols: u32,
    pub dropout: u32,
    pub threshold: u32,
    pub stream: u32,
    pub keep_prob: f32,
    /// The split kernel's K chunks (workgroups along z; 1: none) and the K
    /// length of each.
    pub chunks: u32,
    pub chunk_len: u32,
    pub pad: [u32; 3],
}

/// `BceParams` of `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct BceParams {
    pub n: u32,
    pub split: u32,
    pub target_first: f32,
    pub target_second: f32,
    pub weight: f32,
    pub l_off: u32,
    pub l_stride: u32,
    pub d_off: u32,
    pub d_stride: u32,
    pub loss_slot: u32,
    pub first_slot: u32,
    pub second_slot: u32,
}

/// `CriticParams` of `shaders/loss.wgsl`: the two parts' term kinds
/// ([`ScoreTerm::code`](crate::model::critic_loss::ScoreTerm::code)) and
/// their parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CriticParams {
    pub n: u32,
    pub split: u32,
    pub first_kind: u32,
    pub second_kind: u32,
    pub first_param: f32,
    pub second_param: f32,
    pub weight: f32,
    pub l_off: u32,
    pub l_stride: u32,
    pub d_off: u32,
    pub d_stride: u32,
    pub loss_slot: u32,
    pub first_slot: u32,
    pub second_slot: u32,
    pub pad: [u32; 2],
}

/// `CeParams` of `shaders/classifier.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CeParams {
    pub n: u32,
    pub classes: u32,
    pub l_off: u32,
    pub l_stride: u32,
    pub t_off: u32,
    pub t_stride: u32,
    pub d_off: u32,
    pub d_stride: u32,
    pub weight: f32,
    pub loss_slot: u32,
    pub correct_slot: u32,
    pub pad: u32,
}

/// `AdamParams` of `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AdamParams {
    pub len: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub pad: [u32; 3],
}

/// `RmsParams` of `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct RmsParams {
    pub len: u32,
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
}

/// `ClampParams` of `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ClampParams {
    pub len: u32,
    pub limit: f32,
    pub pad: [u32; 2],
}

/// `EmaParams` of `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EmaParams {
    pub len: u32,
    pub decay: f32,
    pub pad: [u32; 2],
}

/// `FiniteParams` of `shaders/health.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FiniteParams {
    pub len: u32,
    pub slot: u32,
    pub pad: [u32; 2],
}

/// `GatherParams` of `shaders/data.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherParams {
    pub rows: u32,
    pub cols: u32,
    pub x_off: u32,
    pub x_stride: u32,
    pub scale: f32,
    pub shift: f32,
    pub pixels: u32,
    pub has_onehot: u32,
    pub h_off: u32,
    pub h_stride: u32,
    pub classes: u32,
    /// The image chunk this dispatch reads: images `chunk_first ..
    /// chunk_first + chunk_count` of the training set.
    pub chunk_first: u32,
    pub chunk_count: u32,
    pub pad: [u32; 3],
}

/// `NoiseParams` of `shaders/data.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NoiseParams {
    pub rows: u32,
    pub cols: u32,
    pub off: u32,
    pub stride: u32,
    pub stream: u32,
    pub pad: [u32; 3],
}

/// `OnehotParams` of `shaders/data.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OnehotParams {
    pub rows: u32,
    pub cols: u32,
    pub off: u32,
    pub stride: u32,
    pub also_off: u32,
    pub also_stride: u32,
    pub has_also: u32,
    pub stream: u32,
}

/// `ConvParams` of `shaders/conv.wgsl`: the convolution's shape (of the
/// convolution a transposed convolution is the adjoint of), the implicit
/// product's M x N x K, and whether the epilogue adds a bias.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ConvParams {
    pub batch: u32,
    pub in_c: u32,
    pub out_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub ksize: u32,
    pub stride: u32,
    pub padding: u32,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub has_bias: u32,
    pub pad: [u32; 2],
}

/// `BatchNormUniform` of `shaders/batch_norm.wgsl`: the shape, momentum,
/// eps and groups of [`crate::backend::conv_params::BatchNormParams`], and
/// the activation (code of `shaders/activation.wgsl`, LeakyReLU's slope)
/// the normalising kernels apply.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct BatchNormUniform {
    pub batch: u32,
    pub channels: u32,
    pub spatial: u32,
    pub momentum: f32,
    pub eps: f32,
    pub act: u32,
    pub slope: f32,
    /// Groups of rows with their own statistics in training (1 in eval).
    pub groups: u32,
}

/// `ElementwiseParams` of `shaders/elementwise.wgsl`: the R x C views (offset
/// and row stride of a = x or dy, b = y, d = dx), the activation (code,
/// LeakyReLU's slope) and the dropout (flag, threshold, stream, 1 - p).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ElementwiseParams {
    pub rows: u32,
    pub cols: u32,
    pub a_off: u32,
    pub a_stride: u32,
    pub b_off: u32,
    pub b_stride: u32,
    pub d_off: u32,
    pub d_stride: u32,
    pub act: u32,
    pub slope: f32,
    pub dropout: u32,
    pub threshold: u32,
    pub stream: u32,
    pub keep_prob: f32,
    pub pad: [u32; 2],
}

/// `AddScaledParams` of `shaders/adam.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AddScaledParams {
    pub len: u32,
    pub alpha: f32,
    pub pad: [u32; 2],
}

/// `InterpolateParams` of `shaders/penalty.wgsl`: the R x C views (offset
/// and row stride of real, fake and out) and the stream of the row draws.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct InterpolateParams {
    pub rows: u32,
    pub cols: u32,
    pub real_off: u32,
    pub real_stride: u32,
    pub fake_off: u32,
    pub fake_stride: u32,
    pub out_off: u32,
    pub out_stride: u32,
    pub stream: u32,
    pub pad: [u32; 3],
}

/// `PenaltyParams` of `shaders/penalty.wgsl`: the R x C views of grad and
/// v, lambda's share and the stats slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PenaltyParams {
    pub rows: u32,
    pub cols: u32,
    pub g_off: u32,
    pub g_stride: u32,
    pub v_off: u32,
    pub v_stride: u32,
    pub weight: f32,
    pub slot: u32,
}

/// `CurvatureParams` of `shaders/penalty.wgsl`: the views of u, t, y and
/// out, the activation and the dropout as [`ElementwiseParams`] has them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CurvatureParams {
    pub rows: u32,
    pub cols: u32,
    pub u_off: u32,
    pub u_stride: u32,
    pub t_off: u32,
    pub t_stride: u32,
    pub y_off: u32,
    pub y_stride: u32,
    pub o_off: u32,
    pub o_stride: u32,
    pub act: u32,
    pub slope: f32,
    pub dropout: u32,
    pub threshold: u32,
    pub stream: u32,
    pub keep_prob: f32,
}

/// Marks an absent stats slot (`NONE` in the shaders).
pub const NONE: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_multiples_of_16() {
        for size in [
            std::mem::size_of::<LinearParams>(),
            std::mem::size_of::<BceParams>(),
            std::mem::size_of::<CeParams>(),
            std::mem::size_of::<AdamParams>(),
            std::mem::size_of::<FiniteParams>(),
            std::mem::size_of::<GatherParams>(),
            std::mem::size_of::<NoiseParams>(),
            std::mem::size_of::<OnehotParams>(),
            std::mem::size_of::<ConvParams>(),
            std::mem::size_of::<BatchNormUniform>(),
            std::mem::size_of::<ElementwiseParams>(),
            std::mem::size_of::<AddScaledParams>(),
            std::mem::size_of::<InterpolateParams>(),
            std::mem::size_of::<PenaltyParams>(),
            std::mem::size_of::<CurvatureParams>(),
        ] {
            assert_eq!(size % 16, 0, "{size}");
        }
    }
}
