// penalty.wgsl: the gradient penalty's ops (WGAN-GP), in the same order of
// arithmetic as src/backend/cpu/penalty.rs:
//
//   interpolate_rows      out[r, c] = e_r real[r, c] + (1 - e_r) fake[r, c],
//                         e_r = uniform01(seed, stream, step, r)   (a, b -> c)
//   gradient_penalty      n_r = |grad_r|; v_r = 2 weight (n_r - 1) / n_r grad_r
//                         (0 for a zero row); stats[slot] += weight sum_r (n_r - 1)^2
//                         (a = grad -> b = v, c = stats)
//   activation_curvature  out[r, c] = u t act''(z) / keep_prob where kept, 0 where
//                         dropped; act''(z) from y keep_prob (a = u, b = t, c = y -> d)
//
// gradient_penalty runs as one workgroup: each row's sum of squares in 256
// strided lanes and a fixed tree, the rows in order, so the penalty is
// deterministic (no float atomics). The other two take one thread an element.

@group(0) @binding(1) var<storage, read_write> clock: Clock;
@group(0) @binding(2) var<storage, read_write> buf_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf_c: array<f32>;
// Bound by activation_curvature only.
@group(0) @binding(5) var<storage, read_write> buf_d: array<f32>;

// interpolate_rows
struct InterpolateParams {
    rows: u32,
    cols: u32,
    real_off: u32,
    real_stride: u32,
    fake_off: u32,
    fake_stride: u32,
    out_off: u32,
    out_stride: u32,
    stream: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> ip: InterpolateParams;

@compute @workgroup_size(256, 1, 1)
fn interpolate_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= ip.rows * ip.cols {
        return;
    }
    let r = i / ip.cols;
    let c = i % ip.cols;
    let e = uniform01(clock.seed, ip.stream, clock.step, r);
    let real = buf_a[ip.real_off + r * ip.real_stride + c];
    let fake = buf_b[ip.fake_off + r * ip.fake_stride + c];
    buf_c[ip.out_off + r * ip.out_stride + c] = e * real + (1.0 - e) * fake;
}

// gradient_penalty
struct PenaltyParams {
    rows: u32,
    cols: u32,
    g_off: u32,
    g_stride: u32,
    v_off: u32,
    v_stride: u32,
    weight: f32,
    slot: u32,
}

@group(0) @binding(0) var<uniform> gp: PenaltyParams;

var<workgroup> lanes: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn gradient_penalty(@builtin(local_invocation_index) t: u32) {
    var total = 0.0;
    for (var r = 0u; r < gp.rows; r += 1u) {
        var s = 0.0;
        for (var c = t; c < gp.cols; c += 256u) {
            let g = buf_a[gp.g_off + r * gp.g_stride + c];
            s += g * g;
        }
        lanes[t] = s;
        workgroupBarrier();
        for (var half = 128u; half > 0u; half >>= 1u) {
            if t < half {
                lanes[t] += lanes[t + half];
            }
            workgroupBarrier();
        }
        let norm = sqrt(lanes[0]);
        var scale = 0.0;
        if norm > 0.0 {
            scale = 2.0 * gp.weight * (norm - 1.0) / norm;
        }
        for (var c = t; c < gp.cols; c += 256u) {
            buf_b[gp.v_off + r * gp.v_stride + c] = scale * buf_a[gp.g_off + r * gp.g_stride + c];
        }
        total += (norm - 1.0) * (norm - 1.0);
        // Every lane has read lanes[0] before the next row overwrites it.
        workgroupBarrier();
    }
    if t == 0u {
        buf_c[gp.slot] += gp.weight * total;
    }
}

// activation_curvature
struct CurvatureParams {
    rows: u32,
    cols: u32,
    u_off: u32,
    u_stride: u32,
    t_off: u32,
    t_stride: u32,
    y_off: u32,
    y_stride: u32,
    o_off: u32,
    o_stride: u32,
    act: u32,
    slope: f32,
    dropout: u32,
    threshold: u32,
    stream: u32,
    // 1 - p.
    keep_prob: f32,
}

@group(0) @binding(0) var<uniform> cv: CurvatureParams;

@compute @workgroup_size(256, 1, 1)
fn activation_curvature(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= cv.rows * cv.cols {
        return;
    }
    let r = i / cv.cols;
    let c = i % cv.cols;
    let y = buf_c[cv.y_off + r * cv.y_stride + c];
    var curvature: f32;
    if cv.dropout == 0u {
        curvature = act_second_derivative_from_output(cv.act, y);
    } else {
        let keep = dropout_keep(clock.seed, cv.stream, clock.step, i, cv.threshold);
        if keep {
            curvature = act_second_derivative_from_output(cv.act, y * cv.keep_prob) / cv.keep_prob;
        } else {
            curvature = 0.0;
        }
    }
    let u = buf_a[cv.u_off + r * cv.u_stride + c];
    let tangent = buf_b[cv.t_off + r * cv.t_stride + c];
    buf_d[cv.o_off + r * cv.o_stride + c] = u * tangent * curvature;
}
