// common.wgsl: definitions shared by every kernel family (prepended to each).

// The per-step state the host never uploads per step (src/backend/mod.rs, `Clock`).
struct Clock {
    seed: u32,
    step: u32,
    cursor: u32,
    pad: u32,
}

// Marks an absent optional stats slot.
const NONE: u32 = 0xffffffffu;

// Threads per workgroup of the one-dimensional kernels.
const WG_1D: u32 = 256u;

// Flat thread index of a one-dimensional kernel launched on a 2-D grid of
// workgroups (x up to 65535, then more rows of y).
fn global_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG_1D + lid;
}
