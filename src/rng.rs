//! The counter-based random generator shared by both backends.
//!
//! Every random number is a pure function of `(seed, stream, step, index)`, so
//! the CPU reference and the WGSL kernels (`shaders/random.wgsl` mirrors this
//! file line for line) draw identical noise, labels, dropout masks and epoch
//! orders without any generator state to carry around or upload.

/// Streams: which use a random number is for. Keep in sync with the shaders.
pub mod stream {
    /// Generator noise for the discriminator's step.
    pub const NOISE_D: u32 = 1;
    /// Generator noise for the generator's step.
    pub const NOISE_G: u32 = 2;
    /// Conditional labels of the fakes in the discriminator's step.
    pub const LABELS_D: u32 = 3;
    /// Conditional labels of the fakes in the generator's step.
    pub const LABELS_G: u32 = 4;
    /// Epoch order (host side; `step` is the epoch number).
    pub const SHUFFLE: u32 = 5;
    /// Fixed noise for the sample grids (host side).
    pub const SAMPLE_NOISE: u32 = 6;
    /// Parameter initialisation (host side; `step` is the tensor number).
    pub const INIT: u32 = 7;
    /// The real images shown beside the generated ones (host side).
    pub const REAL_SAMPLES: u32 = 8;
    /// Dropout masks: `DROPOUT + 64 * pass + layer`, where pass 0 is the
    /// discriminator's step, pass 1 the generator's step, pass 1 + k the
    /// k-th further critic step and pass 2^16 + k critic step k's gradient
    /// penalty.
    pub const DROPOUT: u32 = 64;
    /// Noise and labels of the k-th further critic step (k >= 1):
    /// `CRITIC + 2 k` and `CRITIC + 2 k + 1`, past every dropout stream.
    pub const CRITIC: u32 = 4096;
    /// The gradient penalty's interpolation shares of critic step k:
    /// `PENALTY + k` (one uniform per row).
    pub const PENALTY: u32 = 1 << 20;
}

/// Chris Wellons' `lowbias32` integer hash.
#[inline]
pub fn hash_u32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// A uniformly distributed `u32` for `(seed, stream, step, index)`.
#[inline]
pub fn random_u32(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    hash_u32(stream_key(seed, stream, step) ^ index)
}

/// What [`random_u32`] hashes each index with for one `(seed, stream,
/// step)`: computed once, a loop over indices hashes once per element.
#[inline]
pub fn stream_key(seed: u32, stream: u32, step: u32) -> u32 {
    let mut h = hash_u32(seed ^ 0x9e37_79b9);
    h = hash_u32(h ^ stream);
    hash_u32(h ^ step)
}

/// 2^-24: turns the top 24 bits of a `u32` into a float in [0, 1) exactly.
pub const INV_2_24: f32 = 1.0 / 16_777_216.0;

/// A uniform float in [0, 1) (24 random bits, exactly representable).
#[inline]
pub fn uniform01(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    (random_u32(seed, stream, step, index) >> 8) as f32 * INV_2_24
}

/// A standard normal float by Box-Muller from the uniforms at `2 * index` and
/// `2 * index + 1`. The first uniform is shifted into (0, 1] so `ln` is finite.
#[inline]
pub fn normal(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    let u1 = ((random_u32(seed, stream, step, 2 * index) >> 8) + 1) as f32 * INV_2_24;
    let u2 = (random_u32(seed, stream, step, 2 * index + 1) >> 8) as f32 * INV_2_24;
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Dropout keeps an element when its 24-bit draw is at or above this
/// threshold; comparing integers keeps CPU and GPU masks bit-identical.
#[inline]
pub fn dropout_threshold(p: f32) -> u32 {
    (p.clamp(0.0, 1.0) as f64 * 16_777_216.0).round() as u32
}

/// Whether dropout keeps element `index` of the layer output in this pass.
#[inline]
pub fn dropout_keep(seed: u32, stream: u32, step: u32, index: u32, threshold: u32) -> bool {
    (random_u32(seed, stream, step, index) >> 8) >= threshold
}

/// One pass's dropout mask: [`dropout_keep`] with the stream's key hashed
/// once, for loops over a layer's elements.
#[derive(Clone, Copy, Debug)]
pub struct DropoutMask {
    key: u32,
    threshold: u32,
}

impl DropoutMask {
    pub fn new(seed: u32, stream: u32, step: u32, p: f32) -> Self {
        DropoutMask {
            key: stream_key(seed, stream, step),
            threshold: dropout_threshold(p),
        }
    }

    /// `dropout_keep(seed, stream, step, index, dropout_threshold(p))`.
    #[inline]
    pub fn keeps(self, index: u32) -> bool {
        (hash_u32(self.key ^ index) >> 8) >= self.threshold
    }
}

/// The epoch's visiting order of `n` examples: a Fisher-Yates shuffle driven
/// by the counter generator, so it depends only on `(seed, epoch)`.
pub fn epoch_order(seed: u32, epoch: u32, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = random_u32(seed, stream::SHUFFLE, epoch, i as u32) as usize % (i + 1);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_keeps_what_dropout_keep_keeps() {
        for (seed, stream, step, p) in [(1, 64, 0, 0.3), (42, 70, 9, 0.5), (7, 65, 1234, 0.0)] {
            let mask = DropoutMask::new(seed, stream, step, p);
            let threshold = dropout_threshold(p);
            for index in (0..5000).chain([u32::MAX - 1, u32::MAX]) {
                assert_eq!(
                    mask.keeps(index),
                    dropout_keep(seed, stream, step, index, threshold),
                    "seed {seed} stream {stream} step {step} index {index}"
                );
            }
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(42, 1, 3, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1/sqrt(n) ~ 0.0022; of the variance ~ 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
    }

    #[test]
    fn uniform_is_in_range_and_balanced() {
        let n = 100_000u32;
        let mut below_half = 0;
        for i in 0..n {
            let u = uniform01(7, 2, 0, i);
            assert!((0.0..1.0).contains(&u));
            below_half += (u < 0.5) as u32;
        }
        let share = below_half as f64 / n as f64;
        assert!((share - 0.5).abs() < 0.01, "share below 0.5: {share}");
    }

    #[test]
    fn streams_and_steps_differ() {
        assert_ne!(random_u32(1, 1, 0, 0), random_u32(1, 2, 0, 0));
        assert_ne!(random_u32(1, 1, 0, 0), random_u32(1, 1, 1, 0));
        assert_ne!(random_u32(1, 1, 0, 0), random_u32(2, 1, 0, 0));
        assert_eq!(random_u32(1, 1, 5, 9), random_u32(1, 1, 5, 9));
    }

    #[test]
    fn dropout_keeps_the_expected_share() {
        let t = dropout_threshold(0.3);
        let kept = (0..100_000)
            .filter(|&i| dropout_keep(3, 64, 0, i, t))
            .count();
        let share = kept as f64 / 100_000.0;
        assert!((share - 0.7).abs() < 0.01, "kept {share}");
    }

    #[test]
    fn epoch_order_is_a_permutation_that_changes_per_epoch() {
        let a = epoch_order(5, 0, 1000);
        let b = epoch_order(5, 1, 1000);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, b);
        assert_eq!(a, epoch_order(5, 0, 1000));
    }
}
