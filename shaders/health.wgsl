// health.wgsl: the training run's health check. finite_check sets
// stats[slot] = 1.0 when any element of a tensor is NaN or infinite (the CPU
// reference is `all_finite` in src/backend/cpu/ops.rs). The test is on the
// bits (exponent all ones), so no fast-math assumption can fold it away.
// Every thread that finds a bad element writes the same value: no atomics.

struct FiniteParams {
    len: u32,
    slot: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: FiniteParams;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn finite_check(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    if (bitcast<u32>(values[i]) & 0x7f800000u) == 0x7f800000u {
        stats[p.slot] = 1.0;
    }
}
