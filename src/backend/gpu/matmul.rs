//! Which matmul kernel runs a product: the variants a backend can be built
//! with (`--matmul`), the concrete kernels behind them, and the rule by
//! which `auto` picks a kernel per product from its shape.

use crate::error::{Error, Result};

/// Which matmul kernels the linear ops run: chosen once per backend, by the
/// adapter's type unless forced (`--matmul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// GPUs: per product, a register-blocked kernel where the output is large
    /// enough to fill the GPU with its bigger tiles, else split-K or tiled
    /// ([`MatmulKernel::for_product`]).
    Auto,
    /// Workgroup-memory tiles, 16 x 16 threads of 2 x 2 outputs, for every product.
    Tiled,
    /// The tiled kernel's 32 x 32 output tiles with K split over 4 slices of
    /// a workgroup, for every product.
    Split,
    /// Register-blocked 64 x 64 tiles (4 x 4 outputs a thread), for every product.
    Blocked64,
    /// Register-blocked 128 x 128 tiles (8 x 8 outputs a thread), for every product.
    Blocked128,
    /// No workgroup memory and no barriers, 8 x 8 threads of 4 x 4 outputs:
    /// for adapters that are CPUs (lavapipe, llvmpipe), where workgroup
    /// memory is plain memory and barriers switch between invocations.
    Direct,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 6] = [
        MatmulVariant::Auto,
        MatmulVariant::Tiled,
        MatmulVariant::Split,
        MatmulVariant::Blocked64,
        MatmulVariant::Blocked128,
        MatmulVariant::Direct,
    ];

    /// The variant for an adapter of this type: direct on CPUs, auto elsewhere.
    pub fn for_device(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            MatmulVariant::Direct
        } else {
            MatmulVariant::Auto
        }
    }

    /// Parses a variant's [`name`](Self::name).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                Error::config(
                    "--matmul",
                    format!(
                        "unknown matmul variant {s:?} (expected auto, tiled, split, \
                         blocked64, blocked128 or direct)"
                    ),
                )
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Auto => "auto",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Split => "split",
            MatmulVariant::Blocked64 => "blocked64",
            MatmulVariant::Blocked128 => "blocked128",
            MatmulVariant::Direct => "direct",
        }
    }

    /// The kernels this variant dispatches, so the ones to build.
    pub fn kernels(self) -> &'static [MatmulKernel] {
        match self {
            MatmulVariant::Auto => &[
                MatmulKernel::Tiled,
                MatmulKernel::Split,
                MatmulKernel::Blocked64,
                MatmulKernel::Blocked128,
            ],
            MatmulVariant::Tiled => &[MatmulKernel::Tiled],
            MatmulVariant::Split => &[MatmulKernel::Split],
            MatmulVariant::Blocked64 => &[MatmulKernel::Blocked64],
            MatmulVariant::Blocked128 => &[MatmulKernel::Blocked128],
            MatmulVariant::Direct => &[MatmulKernel::Direct],
        }
    }
}

/// One concrete matmul kernel: an entry point suffix and its output tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    Tiled,
    Split,
    Blocked64,
    Blocked128,
    Direct,
}

impl MatmulKernel {
    /// The side of the square output tile one workgroup computes.
    pub fn tile(self) -> u32 {
        match self {
            MatmulKernel::Tiled | MatmulKernel::Split | MatmulKernel::Direct => 32,
            MatmulKernel::Blocked64 => 64,
            MatmulKernel::Blocked128 => 128,
        }
    }

    /// The K step of the blocked kernels (`BK` in `linear_blocked.wgsl`).
    pub(super) fn k_step(self) -> u32 {
        match self {
            MatmulKernel::Blocked128 => 8,
            _ => 16,
        }
    }

    /// Workgroup memory the kernel declares, in bytes.
    pub fn workgroup_bytes(self) -> u32 {
        match self {
            MatmulKernel::Tiled => 2 * 1024 * 4,
            MatmulKernel::Direct => 0,
            MatmulKernel::Split => (4096 + 128) * 4,
            _ => 2 * self.k_step() * (self.tile() + 4) * 4,
        }
    }

    /// The kernel [`MatmulVariant::Auto`] runs for a product with an M x N
    /// output and inner dimension K: the largest blocked tile that still
    /// gives at least 256 (128 x 128) or 128 (64 x 64) workgroups, enough to
    /// fill a large GPU; else the 32 x 32 tiles, with K split when there are
    /// fewer than 256 of them and K is long enough to split (every product
    /// of the batch-100 models but the smallest).
    pub fn for_product(m: u32, n: u32, k: u32) -> Self {
        let tiles = |t: u32| u64::from(m.div_ceil(t)) * u64::from(n.div_ceil(t));
        if tiles(128) >= 256 {
            MatmulKernel::Blocked128
        } else if tiles(64) >= 128 {
            MatmulKernel::Blocked64
        } else if tiles(32) < 256 && k >= 64 {
            MatmulKernel::Split
        } else {
            MatmulKernel::Tiled
        }
    }

    /// How messages and profiles name it.
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Split => "split",
            MatmulKernel::Direct => "direct",
            MatmulKernel::Blocked64 => "blocked64",
            MatmulKernel::Blocked128 => "blocked128",
        }
    }

    pub(super) fn suffix(self) -> &'static str {
        match self {
            MatmulKernel::Tiled => "",
            MatmulKernel::Direct => "_direct",
            MatmulKernel::Split => "_split",
            MatmulKernel::Blocked64 | MatmulKernel::Blocked128 => "_blocked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_by_output_size_and_depth() {
        // Vanilla, batch 100: D's first layer on real+fake (M = 200), G's output layer.
        assert_eq!(
            MatmulKernel::for_product(200, 256, 784),
            MatmulKernel::Split
        );
        assert_eq!(
            MatmulKernel::for_product(100, 784, 256),
            MatmulKernel::Split
        );
        // D's output layer backward to its input is short in K: tiled.
        assert_eq!(MatmulKernel::for_product(200, 256, 1), MatmulKernel::Tiled);
        // Deep, batch 1024: D's first layer (M = 2048, N = 1024).
        assert_eq!(
            MatmulKernel::for_product(2048, 1024, 784),
            MatmulKernel::Blocked64
        );
        assert_eq!(
            MatmulKernel::for_product(4096, 4096, 4096),
            MatmulKernel::Blocked128
        );
    }

    #[test]
    fn variants_parse_by_name() {
        for v in MatmulVariant::ALL {
            assert_eq!(MatmulVariant::parse(v.name()).unwrap(), v);
        }
        assert!(MatmulVariant::parse("fast").is_err());
    }
}
