// conv.wgsl: the 2-D convolution (square kernel, no dilation, no groups) as
// an implicit GEMM, C[M, N] = sum_k A(m, k) B(k, n), where the operand loads
// compute the im2col index on the fly: there is no im2col buffer. Layouts
// are PyTorch's: x [B, in_c, in_h, in_w], y [B, out_c, out_h, out_w], both
// NCHW and dense; w [out_c, in_c, ks, ks]. With P = out_h * out_w and
// KK = ks * ks, the entry points (named like the CPU functions of
// src/backend/cpu/conv.rs) are
//
//   conv2d_forward          M = B * P (rows (b, oh, ow)), N = out_c,
//                           K = in_c * KK (columns (c, ki, kj));
//                           A = im2col(x) from buf_a, B = w^T from buf_b,
//                           C = y in buf_c; epilogue: + bias[n] (buf_bias).
//   conv2d_backward_input   M = B * in_h * in_w (rows (b, ih, iw)), N = in_c,
//                           K = out_c * KK (columns (o, ki, kj));
//                           A(m, (o, ki, kj)) = dy[b, o, oh, ow] where
//                           oh * stride + ki - padding = ih (and the same for
//                           w), else 0, from buf_a; B = w[o, n, ki, kj] from
//                           buf_b; C = dx in buf_c; epilogue: + bias[n] when
//                           asked (the transposed convolution's forward).
//   conv2d_backward_params  M = out_c, N = in_c * KK, K = B * P;
//                           A = dy [o, (b, q)] from buf_a, B = im2col(x)^T
//                           from buf_b; C = dw [out_c, in_c * KK] in buf_c.
//   conv2d_bias_grad        dbias[c] = sum over b and positions of
//                           buf_a [batch, channels, spatial] (p.batch,
//                           p.n channels, p.k positions), into buf_c: one
//                           workgroup per channel, a tree sum in workgroup
//                           memory.
//
// The transposed convolution (src/backend/gpu/conv.rs) runs on the same
// entry points with the shapes of the convolution it is the adjoint of.
//
// Tiling as linear.wgsl's tiled kernel: a workgroup is 16 x 16 threads
// computing a 32 x 32 tile of C, 2 x 2 elements per thread; K advances 32 at
// a time through 2 x 4 KiB of workgroup memory. Every load and store is
// bounds-checked, so any M, N, K work. Workgroup (x, y, z) computes column
// tile x and row tile y + z * num_workgroups.y (the host folds long M into z).
// On CPU adapters (the backend's matmul variant `direct`) the registry builds
// the *_direct entry points at the end of this file instead: the same tiles
// and loads without workgroup memory or barriers.

struct ConvParams {
    batch: u32,
    in_c: u32,
    out_c: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    ksize: u32,
    stride: u32,
    padding: u32,
    // The product's sizes (see above; conv2d_bias_grad: channels in n,
    // positions per image in k).
    m: u32,
    n: u32,
    k: u32,
    // Add buf_bias[n] in the epilogue (forward and backward input).
    has_bias: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read_write> buf_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf_c: array<f32>;

const MODE_FORWARD: u32 = 0u;
const MODE_BACKWARD_INPUT: u32 = 1u;
const MODE_BACKWARD_PARAMS: u32 = 2u;

const TILE: u32 = 32u;
const TK: u32 = 32u;
const THREADS: u32 = 256u;

// [TK][TILE] each: tile_a[kk * TILE + mm], tile_b[kk * TILE + nn].
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;
// conv2d_bias_grad's partial sums.
var<workgroup> partial: array<f32, 256>;

// The helpers below have no branch around a load: positions outside the
// product or in the padding load a clamped element and select 0.

// The im2col element: x[b, c, oh * stride + ki - padding, ow * stride + kj -
// padding], or 0 where that lies in the padding. x is buf_a when `from_a`,
// else buf_b.
fn im2col(from_a: bool, b: u32, c: u32, oh: u32, ow: u32, ki: u32, kj: u32) -> f32 {
    let ih = i32(oh * p.stride + ki) - i32(p.padding);
    let iw = i32(ow * p.stride + kj) - i32(p.padding);
    let inside = ih >= 0 && iw >= 0 && ih < i32(p.in_h) && iw < i32(p.in_w);
    let hc = min(u32(max(ih, 0)), p.in_h - 1u);
    let wc = min(u32(max(iw, 0)), p.in_w - 1u);
    let i = ((b * p.in_c + c) * p.in_h + hc) * p.in_w + wc;
    var v: f32;
    if from_a {
        v = buf_a[i];
    } else {
        v = buf_b[i];
    }
    return select(0.0, v, inside);
}

// The output coordinate that input coordinate `i` meets at kernel offset
// `kk`: (o, 1) with o * stride + kk - padding = i and o < size, else (0, 0)
// (or an o < size with flag 0).
fn output_at(i: u32, kk: u32, size: u32) -> vec2<u32> {
    let t = i32(i + p.padding) - i32(kk);
    let d = u32(max(t, 0));
    let o = d / p.stride;
    let hit = t >= 0 && d % p.stride == 0u && o < size;
    return vec2<u32>(min(o, size - 1u), u32(hit));
}

// A(m, k) for m < p.m, k < p.k.
fn load_a(mode: u32, m: u32, k: u32) -> f32 {
    let kk2 = p.ksize * p.ksize;
    let positions = p.out_h * p.out_w;
    var v: f32;
    if mode == MODE_FORWARD {
        // m = (b, oh, ow), k = (c, ki, kj).
        let q = m % positions;
        let r = k % kk2;
        v = im2col(true, m / positions, k / kk2, q / p.out_w, q % p.out_w, r / p.ksize, r % p.ksize);
    } else if mode == MODE_BACKWARD_INPUT {
        // m = (b, ih, iw), k = (o, ki, kj): dy[b, o, oh, ow] where the
        // kernel offset (ki, kj) at output (oh, ow) lands on (ih, iw).
        let pixels = p.in_h * p.in_w;
        let s = m % pixels;
        let r = k % kk2;
        let oh = output_at(s / p.in_w, r / p.ksize, p.out_h);
        let ow = output_at(s % p.in_w, r % p.ksize, p.out_w);
        let i = (((m / pixels) * p.out_c + k / kk2) * p.out_h + oh.x) * p.out_w + ow.x;
        v = select(0.0, buf_a[i], oh.y * ow.y != 0u);
    } else {
        // m = o, k = (b, q): dy[b, o, q].
        v = buf_a[((k / positions) * p.out_c + m) * positions + k % positions];
    }
    return v;
}

// B(k, n) for k < p.k, n < p.n.
fn load_b(mode: u32, k: u32, n: u32) -> f32 {
    let kk2 = p.ksize * p.ksize;
    var v: f32;
    if mode == MODE_FORWARD {
        // w^T[(c, ki, kj), o] = w[o, c, ki, kj].
        v = buf_b[n * p.k + k];
    } else if mode == MODE_BACKWARD_INPUT {
        // k = (o, ki, kj): w[o, n, ki, kj].
        v = buf_b[((k / kk2) * p.in_c + n) * kk2 + k % kk2];
    } else {
        // k = (b, oh, ow), n = (c, ki, kj): im2col(x).
        let positions = p.out_h * p.out_w;
        let q = k % positions;
        let r = n % kk2;
        v = im2col(false, k / positions, n / kk2, q / p.out_w, q % p.out_w, r / p.ksize, r % p.ksize);
    }
    return v;
}

// The epilogue: C(m, n) = v (+ bias[n]) where inside the product.
fn store_output(mode: u32, m: u32, n: u32, v: f32) {
    if m < p.m && n < p.n {
        var x = v;
        if mode != MODE_BACKWARD_PARAMS && p.has_bias != 0u {
            x += buf_bias[n];
        }
        var i: u32;
        if mode == MODE_FORWARD {
            // y[b, n, oh, ow].
            let positions = p.out_h * p.out_w;
            i = ((m / positions) * p.out_c + n) * positions + m % positions;
        } else if mode == MODE_BACKWARD_INPUT {
            // dx[b, n, ih, iw].
            let pixels = p.in_h * p.in_w;
            i = ((m / pixels) * p.in_c + n) * pixels + m % pixels;
        } else {
            // dw[o, (c, ki, kj)], dense.
            i = m * p.n + n;
        }
        buf_c[i] = x;
    }
}

fn conv_gemm(mode: u32, wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = (wg.z * nwg.y + wg.y) * TILE;
    let n0 = wg.x * TILE;
    var c00 = 0.0;
    var c01 = 0.0;
    var c10 = 0.0;
    var c11 = 0.0;
    let ktiles = (p.k + TK - 1u) / TK;
    for (var kt = 0u; kt < ktiles; kt++) {
        let k0 = kt * TK;
        for (var e = 0u; e < 4u; e++) {
            let idx = t + THREADS * e;
            // Consecutive threads walk the operand's contiguous dimension:
            // A's m (ow or iw) forward and backward-input, k (positions)
            // backward-params; B's k (kj, or ow) in every mode.
            var mm: u32;
            var ka: u32;
            if mode == MODE_BACKWARD_PARAMS {
                ka = idx % TK;
                mm = idx / TK;
            } else {
                mm = idx % TILE;
                ka = idx / TILE;
            }
            // Outside the product: the clamped element, discarded.
            let am = m0 + mm;
            let ak = k0 + ka;
            let va = load_a(mode, min(am, p.m - 1u), min(ak, p.k - 1u));
            tile_a[ka * TILE + mm] = select(0.0, va, am < p.m && ak < p.k);
            let kb = idx % TK;
            let nn = idx / TK;
            let bk = k0 + kb;
            let bn = n0 + nn;
            let vb = load_b(mode, min(bk, p.k - 1u), min(bn, p.n - 1u));
            tile_b[kb * TILE + nn] = select(0.0, vb, bn < p.n && bk < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a0 = tile_a[kk * TILE + ty];
            let a1 = tile_a[kk * TILE + ty + 16u];
            let b0 = tile_b[kk * TILE + tx];
            let b1 = tile_b[kk * TILE + tx + 16u];
            c00 += a0 * b0;
            c01 += a0 * b1;
            c10 += a1 * b0;
            c11 += a1 * b1;
        }
        workgroupBarrier();
    }
    store_output(mode, m0 + ty, n0 + tx, c00);
    store_output(mode, m0 + ty, n0 + tx + 16u, c01);
    store_output(mode, m0 + ty + 16u, n0 + tx, c10);
    store_output(mode, m0 + ty + 16u, n0 + tx + 16u, c11);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm(MODE_FORWARD, wg, nwg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm(MODE_BACKWARD_INPUT, wg, nwg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_params(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm(MODE_BACKWARD_PARAMS, wg, nwg, lid);
}

// dbias[c] (buf_c) = sum of buf_a [p.batch, p.n, p.k] over batch and
// positions. Workgroup x sums channels x, x + num_workgroups.x, ...
@compute @workgroup_size(256, 1, 1)
fn conv2d_bias_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let count = p.batch * p.k;
    for (var c = wg.x; c < p.n; c += nwg.x) {
        var s = 0.0;
        for (var i = lid; i < count; i += THREADS) {
            s += buf_a[((i / p.k) * p.n + c) * p.k + i % p.k];
        }
        partial[lid] = s;
        workgroupBarrier();
        for (var half = THREADS / 2u; half > 0u; half /= 2u) {
            if lid < half {
                partial[lid] += partial[lid + half];
            }
            workgroupBarrier();
        }
        if lid == 0u {
            buf_c[c] = partial[0];
        }
        workgroupBarrier();
    }
}

// The direct variant, for adapters that are CPUs (lavapipe, llvmpipe, WARP),
// built instead of the tiled entry points when the backend's matmul variant
// is `direct` (as linear.wgsl's gemm_direct): no workgroup memory and no
// barriers, which on a CPU are ordinary memory and a switch between the
// invocations of a workgroup (and which cost llvmpipe on GL tens of seconds
// of compilation per entry point). A workgroup is DWG x DWG threads computing
// the same TILE x TILE tile of C; thread (tx, ty) owns rows m0 + ty + DWG i
// and columns n0 + tx + DWG j (DR x DR elements), reading its operands
// straight from the buffers. Out-of-range rows and columns read the last
// valid one (clamped) and are not stored. Sums run over k in order.
const DWG: u32 = 8u;
const DR: u32 = 4u;

fn conv_gemm_direct(mode: u32, wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let m0 = (wg.z * nwg.y + wg.y) * TILE;
    let n0 = wg.x * TILE;
    var acc: array<f32, 16>;
    var rows: array<u32, 4>;
    var cols: array<u32, 4>;
    for (var i = 0u; i < DR; i++) {
        rows[i] = min(m0 + ty + DWG * i, p.m - 1u);
        cols[i] = min(n0 + tx + DWG * i, p.n - 1u);
    }
    for (var k = 0u; k < p.k; k++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < DR; i++) {
            a[i] = load_a(mode, rows[i], k);
            b[i] = load_b(mode, k, cols[i]);
        }
        for (var i = 0u; i < DR; i++) {
            for (var j = 0u; j < DR; j++) {
                acc[i * DR + j] += a[i] * b[j];
            }
        }
    }
    for (var i = 0u; i < DR; i++) {
        for (var j = 0u; j < DR; j++) {
            store_output(mode, m0 + ty + DWG * i, n0 + tx + DWG * j, acc[i * DR + j]);
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn conv2d_forward_direct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm_direct(MODE_FORWARD, wg, nwg, lid);
}

@compute @workgroup_size(8, 8, 1)
fn conv2d_backward_input_direct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm_direct(MODE_BACKWARD_INPUT, wg, nwg, lid);
}

@compute @workgroup_size(8, 8, 1)
fn conv2d_backward_params_direct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    conv_gemm_direct(MODE_BACKWARD_PARAMS, wg, nwg, lid);
}
