// adam.wgsl: the optimizer updates over a network's whole flat buffers, in
// the same order of arithmetic as the CPU reference (src/backend/cpu/ops.rs):
//   adam_update     one bias-corrected Adam step (PyTorch's), t = clock.step + 1;
//   rmsprop_update  one RMSprop step (PyTorch's, no momentum);
//   clamp_values    every value clamped to [-limit, limit] (WGAN's clipping);
//   ema_update      avg = decay avg + (1 - decay) values (the generator's average);
//   add_scaled      dst += alpha src (the gradient penalty's gradient added in).

struct AdamParams {
    len: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(1) var<storage, read_write> clock: Clock;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

// base^e by square-and-multiply, as Rust's f32::powi (compiler-rt __powisf2).
fn powi(base: f32, e_in: u32) -> f32 {
    var a = base;
    var e = e_in;
    var r = 1.0;
    loop {
        if (e & 1u) != 0u {
            r *= a;
        }
        e /= 2u;
        if e == 0u {
            break;
        }
        a *= a;
    }
    return r;
}

@compute @workgroup_size(256, 1, 1)
fn adam_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= p.len {
        return;
    }
    let t = clock.step + 1u;
    let correction1 = 1.0 - powi(p.beta1, t);
    let correction2 = 1.0 - powi(p.beta2, t);
    let g = grads[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let m_hat = mi / correction1;
    let v_hat = vi / correction2;
    params[i] -= p.lr * m_hat / (sqrt(v_hat) + p.eps);
}

// rmsprop_update
struct RmsParams {
    len: u32,
    lr: f32,
    alpha: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> rp: RmsParams;
@group(0) @binding(1) var<storage, read_write> rms_params: array<f32>;
@group(0) @binding(2) var<storage, read_write> rms_grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> rms_sq: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn rmsprop_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= rp.len {
        return;
    }
    let g = rms_grads[i];
    let s = rp.alpha * rms_sq[i] + (1.0 - rp.alpha) * g * g;
    rms_sq[i] = s;
    rms_params[i] -= rp.lr * g / (sqrt(s) + rp.eps);
}

// clamp_values
struct ClampParams {
    len: u32,
    limit: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> kp: ClampParams;
@group(0) @binding(1) var<storage, read_write> clamped: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clamp_values(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= kp.len {
        return;
    }
    clamped[i] = clamp(clamped[i], -kp.limit, kp.limit);
}

// ema_update
struct EmaParams {
    len: u32,
    decay: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> ep: EmaParams;
// ema_update's and add_scaled's: the buffer updated, and the one read.
@group(0) @binding(1) var<storage, read_write> into_values: array<f32>;
@group(0) @binding(2) var<storage, read_write> from_values: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn ema_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= ep.len {
        return;
    }
    into_values[i] = ep.decay * into_values[i] + (1.0 - ep.decay) * from_values[i];
}

// add_scaled
struct AddScaledParams {
    len: u32,
    alpha: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> asp: AddScaledParams;

@compute @workgroup_size(256, 1, 1)
fn add_scaled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= asp.len {
        return;
    }
    into_values[i] += asp.alpha * from_values[i];
}
