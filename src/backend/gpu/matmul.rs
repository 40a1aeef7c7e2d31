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

    /// The kernel this variant runs for a product with an M x N output and
    /// inner dimension K.
    pub fn kernel_for(self, m: u32, n: u32, k: u32) -> MatmulKernel {
        match self {
            MatmulVariant::Auto => MatmulKernel::for_product(m, n, k),
            MatmulVariant::Tiled => MatmulKernel::Tiled,
            MatmulVariant::Split => MatmulKernel::Split,
            MatmulVariant::Blocked64 => MatmulKernel::Blocked64,
            MatmulVariant::Blocked128 => MatmulKernel::Blocked128,
            MatmulVariant::Direct => MatmulKernel::Direct,
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

/// The split kernel's K granularity: its 4 slices times its K step of 16
/// (`SLICES * SK` in `linear_split.wgsl`).
pub const SPLIT_K_GRAIN: u32 = 64;
/// Chunking K stops at this many workgroups for a product: about one per
/// SM of a large GPU (the H100 has 132); smaller GPUs run them in waves.
pub const SPLIT_TARGET_WORKGROUPS: u32 = 128;
/// At most this many K chunks (partials the reduce adds per output).
pub const SPLIT_MAX_CHUNKS: u32 = 16;

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
    /// Whether this is a register-blocked kernel (its backward products read
    /// a dz written by a dz pass beforehand).
    pub fn is_blocked(self) -> bool {
        matches!(self, MatmulKernel::Blocked64 | MatmulKernel::Blocked128)
    }

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

    /// How the split kernel divides K for an M x N x K product: `(chunks,
    /// chunk_len)`, K in `chunks` pieces of `chunk_len` (a multiple of
    /// [`SPLIT_K_GRAIN`]), one workgroup per output tile and chunk. Chunks
    /// are added while the workgroups stay within
    /// [`SPLIT_TARGET_WORKGROUPS`] (at most [`SPLIT_MAX_CHUNKS`], never a
    /// chunk shorter than one K step per slice); chunked products need a
    /// second, reducing dispatch. On the H100, chunking a product that
    /// already had about 100 or more tiles did not make its kernel faster,
    /// so the reduce was pure cost (benches/results/h100-2026-11-22/run6).
    pub fn split_chunks(m: u32, n: u32, k: u32) -> (u32, u32) {
        let tiles = m.div_ceil(32).max(1) * n.div_ceil(32).max(1);
        let wanted = (SPLIT_TARGET_WORKGROUPS / tiles)
            .min(k / SPLIT_K_GRAIN)
            .clamp(1, SPLIT_MAX_CHUNKS);
        let chunk_len = k.div_ceil(wanted).div_ceil(SPLIT_K_GRAIN) * SPLIT_K_GRAIN;
        (k.div_ceil(chunk_len).max(1), chunk_len.max(SPLIT_K_GRAIN))
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
    fn split_chunks_cover_k_in_whole_slices() {
        for (m, n, k) in [
            (200, 256, 784),
            (100, 256, 784),
            (100, 784, 256),
            (200, 1, 256),
            (1, 256, 200),
            (100, 256, 100),
            (1, 1024, 2048),
            (4096, 4096, 4096),
            (3, 5, 1),
            (7, 9, 65),
        ] {
            let (chunks, len) = MatmulKernel::split_chunks(m, n, k);
            assert!((1..=SPLIT_MAX_CHUNKS).contains(&chunks), "{m}x{n}x{k}");
            assert_eq!(len % SPLIT_K_GRAIN, 0, "{m}x{n}x{k}");
            // Every chunk starts inside K, and together they cover it.
            assert!((chunks - 1) * len < k && chunks * len >= k, "{m}x{n}x{k}");
        }
        // Few tiles, long K: chunked. Many tiles or short K: not.
        // Vanilla, batch 100: D's first layer on real + fake (56 tiles), on
        // fakes (32 tiles), and G's output layer (100 tiles: not chunked).
        assert_eq!(MatmulKernel::split_chunks(200, 256, 784), (2, 448));
        assert_eq!(MatmulKernel::split_chunks(100, 256, 784), (4, 256));
        assert_eq!(MatmulKernel::split_chunks(100, 784, 256).0, 1);
        assert_eq!(MatmulKernel::split_chunks(4096, 4096, 4096).0, 1);
        assert_eq!(MatmulKernel::split_chunks(100, 256, 100).0, 1);
    }

    #[test]
    fn variants_parse_by_name() {
        for v in MatmulVariant::ALL {
            assert_eq!(MatmulVariant::parse(v.name()).unwrap(), v);
        }
        assert!(MatmulVariant::parse("fast").is_err());
    }
}
