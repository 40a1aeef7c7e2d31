// elementwise.wgsl: the activation (and dropout) of a layer as an op of its
// own, for the layers whose product has no epilogue (convolutions, batch
// norm's backward), one thread per element of an R x C view:
//
//   activation_forward   y[r, c] = dropout(act(x[r, c]))        (a = x, b = y)
//   activation_backward  dx[r, c] = dy[r, c] * dact(r, c)        (a = dy, b = y, d = dx)
//
// exactly as the epilogue and fn dz of linear.wgsl: element (r, c) is kept
// when dropout_keep(seed, stream, step, r * C + c, threshold), kept values
// are divided by keep_prob = 1 - p, and dact = act'(y * keep_prob) / keep_prob
// where kept (0 where dropped), act'(y) without dropout.

struct ElementwiseParams {
    rows: u32,
    cols: u32,
    // Each operand's view: offset and row stride.
    a_off: u32,
    a_stride: u32,
    b_off: u32,
    b_stride: u32,
    d_off: u32,
    d_stride: u32,
    act: u32,
    slope: f32,
    dropout: u32,
    threshold: u32,
    stream: u32,
    // 1 - p.
    keep_prob: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read_write> clock: Clock;
@group(0) @binding(2) var<storage, read_write> buf_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf_b: array<f32>;
// Bound only by the backward (the forward binds y twice).
@group(0) @binding(4) var<storage, read_write> buf_d: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn activation_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= p.rows * p.cols {
        return;
    }
    let r = i / p.cols;
    let c = i % p.cols;
    var v = act_apply(p.act, p.slope, buf_a[p.a_off + r * p.a_stride + c]);
    if p.dropout != 0u {
        let keep = dropout_keep(clock.seed, p.stream, clock.step, i, p.threshold);
        v = select(0.0, v / p.keep_prob, keep);
    }
    buf_b[p.b_off + r * p.b_stride + c] = v;
}

@compute @workgroup_size(256, 1, 1)
fn activation_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= p.rows * p.cols {
        return;
    }
    let r = i / p.cols;
    let c = i % p.cols;
    let y = buf_b[p.b_off + r * p.b_stride + c];
    var dact: f32;
    if p.dropout == 0u {
        dact = act_derivative_from_output(p.act, p.slope, y);
    } else {
        let keep = dropout_keep(clock.seed, p.stream, clock.step, i, p.threshold);
        if keep {
            dact = act_derivative_from_output(p.act, p.slope, y * p.keep_prob) / p.keep_prob;
        } else {
            dact = 0.0;
        }
    }
    buf_d[p.d_off + r * p.d_stride + c] = buf_a[p.a_off + r * p.a_stride + c] * dact;
}
