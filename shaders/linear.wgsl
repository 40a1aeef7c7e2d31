// linear.wgsl: the fully connected layer, forward and backward, as one tiled
// matrix product C[M, N] = sum_k A(m, k) B(k, n). Operands are read in place
// through offsets and strides (A, A^T, B, B^T: no transposed copies). Each
// entry point differs only in how it loads A and B and in its epilogue:
//
//   linear_forward          A = x [B, in], B = W^T (W [out, in]), C = y [B, out];
//                           epilogue: + bias, activation, dropout.
//   linear_backward_input   A = dz [B, out], B = W [out, in], C = dx [B, dx.cols].
//   linear_backward_params  A = dz^T [out, B], B = x [B, in], C = dW [out, in];
//                           db [out] = row sums of A, in the same dispatch.
//
// dz = dy * act'(y), with the dropout mask regenerated from the random
// generator (fn dz). The tiled, direct and split kernels compute it while
// loading A and never store it. Before a blocked backward product the host
// runs a dz pass instead, linear_backward_input_dz or
// linear_backward_params_dz (one thread per element, fn write_dz), which
// writes dz densely into buf_s; the blocked kernel then reads it as a plain
// A (tile_load_plain). Those two entry points are built only for variants
// that include a blocked kernel.
//
// The matmul kernels, chosen per product by the host's MatmulVariant
// (src/backend/gpu/matmul.rs: direct on CPU adapters; on GPUs `auto` picks
// per product shape among tiled, split, blocked 64 and blocked 128):
//
//   tiled (this file): a workgroup is 16 x 16 threads computing a 32 x 32
//   tile of C, 2 x 2 elements per thread; K advances 32 at a time through
//   2 x 4 KiB of workgroup memory. Every load and store is bounds-checked,
//   so any M, N, K work. Entry points linear_forward, linear_backward_input,
//   linear_backward_params.
//
//   direct (this file, CPU adapters): the same 32 x 32 output tile per
//   workgroup, 8 x 8 threads of 4 x 4 elements, no workgroup memory and no
//   barriers (see gemm_direct). Entry points with the suffix _direct.
//
//   split-K (linear_split.wgsl, appended to this file): 32 x 32 output
//   tiles with K split over 4 slices of a workgroup and, for long K, also
//   chunked over workgroups; the chunks' partial sums go to buf_s and a
//   second dispatch, linear_*_split_reduce, adds them and runs the epilogue.
//   Suffix _split.
//
//   blocked (linear_blocked.wgsl, appended after its BM/BK constants, plus a
//   gemm_blocked body generated in src/backend/gpu/blocked.rs): register-
//   blocked 64 x 64 or 128 x 128 output tiles, one module per tile size.
//   Suffix _blocked.
//
// The shared pieces below (LinearParams, the bindings, dz, load_a/load_b,
// tile_slot, tile_load, tile_load_plain, store_output) serve every kernel.

struct LinearParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    // A's buffer (x forward, dy backward): offset and row stride.
    a_off: u32,
    a_stride: u32,
    // B's buffer (params forward / backward input, x backward params).
    b_off: u32,
    b_stride: u32,
    // C: offset and row stride.
    c_off: u32,
    c_stride: u32,
    // The bias: read forward (in buf_b), written backward params (in buf_c).
    bias_off: u32,
    slope: f32,
    // The layer output y (backward only).
    y_off: u32,
    y_stride: u32,
    // Columns of the layer output (the dropout index is row * out_cols + col).
    out_cols: u32,
    dropout: u32,
    threshold: u32,
    stream: u32,
    // 1 - p.
    keep_prob: f32,
    // The split kernel's K chunks, one per workgroup z (1: no chunking), and
    // the K length of each (a multiple of its slices' K steps).
    chunks: u32,
    chunk_len: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read_write> clock: Clock;
@group(0) @binding(2) var<storage, read_write> buf_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> buf_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> buf_c: array<f32>;
// The split kernel's partial sums when K is chunked over workgroups.
@group(0) @binding(6) var<storage, read_write> buf_s: array<f32>;

const MODE_FORWARD: u32 = 0u;
const MODE_BACKWARD_INPUT: u32 = 1u;
const MODE_BACKWARD_PARAMS: u32 = 2u;

const TILE: u32 = 32u;
const TK: u32 = 32u;
const THREADS: u32 = 256u;
// The direct variant: threads per side of a workgroup, elements per thread per side.
const DWG: u32 = 8u;
const DR: u32 = 4u;

// [TK][TILE] each: tile_a[kk * TILE + mm], tile_b[kk * TILE + nn].
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

// dz of layer-output element (row, col): dy * act'(y), dropout folded in.
fn dz(row: u32, col: u32) -> f32 {
    let dy = buf_a[p.a_off + row * p.a_stride + col];
    let y = buf_y[p.y_off + row * p.y_stride + col];
    var dact: f32;
    if p.dropout == 0u {
        dact = act_derivative_from_output(p.act, p.slope, y);
    } else {
        let keep = dropout_keep(clock.seed, p.stream, clock.step, row * p.out_cols + col, p.threshold);
        if keep {
            dact = act_derivative_from_output(p.act, p.slope, y * p.keep_prob) / p.keep_prob;
        } else {
            dact = 0.0;
        }
    }
    return dy * dact;
}

fn load_a(mode: u32, m: u32, k: u32) -> f32 {
    switch mode {
        case 0u: {
            return buf_a[p.a_off + m * p.a_stride + k];
        }
        case 1u: {
            return dz(m, k);
        }
        default: {
            return dz(k, m);
        }
    }
}

fn load_b(mode: u32, k: u32, n: u32) -> f32 {
    if mode == MODE_FORWARD {
        // W^T[k, n] = W[n, k].
        return buf_b[p.b_off + n * p.b_stride + k];
    }
    return buf_b[p.b_off + k * p.b_stride + n];
}

// Where flat element idx of a [depth][width] operand tile goes, (k, m):
// consecutive indices walk the operand's contiguous dimension in memory
// (k when `along_k`, else m). Used by the split and blocked kernels.
fn tile_slot(along_k: bool, idx: u32, depth: u32, width: u32) -> vec2<u32> {
    if along_k {
        return vec2<u32>(idx % depth, idx / depth);
    }
    return vec2<u32>(idx / width, idx % width);
}

// The operand element for tile slot (k, m) of a tile at (m0, k0): A's
// (m0 + m, k0 + k) when `is_a`, else B's (k0 + k, m0 + m); zero outside the
// product or at k0 + k >= k_end.
//
// Forward, where both operands are plain loads, the element at the clamped
// position is always loaded and discarded if outside: no branch around the
// load. Backward, where A's element is dz (two loads and the activation's
// derivative), the work is guarded and runs only inside the product. On the
// H100 (benches/results/h100-2026-11-22/run7) the clamped form made the
// blocked forward kernels ~8 % faster and the backward ones 20-30 % slower;
// the split kernel did not care either way.
fn tile_load(is_a: bool, mode: u32, m0: u32, k0: u32, k_end: u32, slot: vec2<u32>) -> f32 {
    let k = k0 + slot.x;
    let m = m0 + slot.y;
    if mode == MODE_FORWARD {
        let rows = select(p.n, p.m, is_a);
        let inside = k < k_end && m < rows;
        let kc = min(k, p.k - 1u);
        let mc = min(m, rows - 1u);
        var v: f32;
        if is_a {
            v = load_a(mode, mc, kc);
        } else {
            v = load_b(mode, kc, mc);
        }
        return select(0.0, v, inside);
    }
    if k >= k_end {
        return 0.0;
    }
    if is_a {
        if m < p.m {
            return load_a(mode, m, k);
        }
    } else if m < p.n {
        return load_b(mode, k, m);
    }
    return 0.0;
}

// tile_load for operands that are plain loads in every mode: A is x
// forward and a dz written beforehand backward (linear_*_dz), never computed on
// the fly. Branch-free: the element at the clamped position is always
// loaded and discarded if outside. The blocked kernels use it; the host runs
// a dz pass before every blocked backward product.
fn tile_load_plain(is_a: bool, mode: u32, m0: u32, k0: u32, k_end: u32, slot: vec2<u32>) -> f32 {
    let k = k0 + slot.x;
    let m = m0 + slot.y;
    let rows = select(p.n, p.m, is_a);
    let inside = k < k_end && m < rows;
    let kc = min(k, p.k - 1u);
    let mc = min(m, rows - 1u);
    var v: f32;
    if !is_a {
        v = load_b(mode, kc, mc);
    } else if mode == MODE_BACKWARD_PARAMS {
        v = buf_a[p.a_off + kc * p.a_stride + mc];
    } else {
        v = buf_a[p.a_off + mc * p.a_stride + kc];
    }
    return select(0.0, v, inside);
}

// The epilogue of every variant: output (gm, gn) = v if inside C, forward
// with + bias, the activation and dropout.
fn store_output(mode: u32, gm: u32, gn: u32, v: f32) {
    if gm >= p.m || gn >= p.n {
        return;
    }
    var x = v;
    if mode == MODE_FORWARD {
        x = act_apply(p.act, p.slope, x + buf_b[p.bias_off + gn]);
        if p.dropout != 0u {
            let keep = dropout_keep(clock.seed, p.stream, clock.step, gm * p.out_cols + gn, p.threshold);
            x = select(0.0, x / p.keep_prob, keep);
        }
    }
    buf_c[p.c_off + gm * p.c_stride + gn] = x;
}

// dz of a backward op, written once into buf_s ([rows][out_cols], dense)
// before a large (blocked) backward product reads it as A (the product would
// otherwise recompute it in every tile that loads it); rows is the batch:
// p.m backward-input, p.k backward-params. One thread per element.
fn write_dz(rows: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let i = global_index(wid, nwg, lid);
    if i < rows * p.out_cols {
        buf_s[i] = dz(i / p.out_cols, i % p.out_cols);
    }
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_input_dz(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    write_dz(p.m, wid, nwg, lid);
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_params_dz(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    write_dz(p.k, wid, nwg, lid);
}

fn gemm(mode: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * TILE;
    let n0 = wg.x * TILE;
    var c00 = 0.0;
    var c01 = 0.0;
    var c10 = 0.0;
    var c11 = 0.0;
    var db0 = 0.0;
    var db1 = 0.0;
    let ktiles = (p.k + TK - 1u) / TK;
    for (var kt = 0u; kt < ktiles; kt++) {
        let k0 = kt * TK;
        for (var e = 0u; e < 4u; e++) {
            let idx = t + THREADS * e;
            // Consecutive threads walk the operand's contiguous dimension.
            var mm: u32;
            var ka: u32;
            if mode == MODE_BACKWARD_PARAMS {
                mm = idx % TILE;
                ka = idx / TILE;
            } else {
                ka = idx % TK;
                mm = idx / TK;
            }
            var va = 0.0;
            if m0 + mm < p.m && k0 + ka < p.k {
                va = load_a(mode, m0 + mm, k0 + ka);
            }
            tile_a[ka * TILE + mm] = va;
            var nn: u32;
            var kb: u32;
            if mode == MODE_FORWARD {
                kb = idx % TK;
                nn = idx / TK;
            } else {
                nn = idx % TILE;
                kb = idx / TILE;
            }
            var vb = 0.0;
            if n0 + nn < p.n && k0 + kb < p.k {
                vb = load_b(mode, k0 + kb, n0 + nn);
            }
            tile_b[kb * TILE + nn] = vb;
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
        if mode == MODE_BACKWARD_PARAMS && wg.x == 0u && tx == 0u {
            for (var kk = 0u; kk < TK; kk++) {
                db0 += tile_a[kk * TILE + ty];
                db1 += tile_a[kk * TILE + ty + 16u];
            }
        }
        workgroupBarrier();
    }
    let acc = array<f32, 4>(c00, c01, c10, c11);
    for (var i = 0u; i < 2u; i++) {
        let gm = m0 + ty + 16u * i;
        for (var j = 0u; j < 2u; j++) {
            let gn = n0 + tx + 16u * j;
            store_output(mode, gm, gn, acc[i * 2u + j]);
        }
    }
    if mode == MODE_BACKWARD_PARAMS && wg.x == 0u && tx == 0u {
        if m0 + ty < p.m {
            buf_c[p.bias_off + m0 + ty] = db0;
        }
        if m0 + ty + 16u < p.m {
            buf_c[p.bias_off + m0 + ty + 16u] = db1;
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn linear_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm(MODE_FORWARD, wg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn linear_backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm(MODE_BACKWARD_INPUT, wg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn linear_backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm(MODE_BACKWARD_PARAMS, wg, lid);
}

// The direct variant, for adapters that are CPUs (lavapipe, llvmpipe, WARP),
// where workgroup memory is ordinary memory and every barrier switches
// between the invocations of a workgroup: no workgroup memory, no barriers.
// A workgroup is DWG x DWG threads computing the same TILE x TILE tile of C;
// thread (tx, ty) owns rows m0 + ty + DWG i and columns n0 + tx + DWG j
// (DR x DR elements), reading its operands straight from the buffers.
// Out-of-range rows and columns read the last valid one (clamped) and are
// not stored, so any M, N, K work. Sums run over k in order, as in gemm.
fn gemm_direct(mode: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let m0 = wg.y * TILE;
    let n0 = wg.x * TILE;
    var acc: array<f32, 16>;
    var db: array<f32, 4>;
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
        if mode == MODE_BACKWARD_PARAMS {
            for (var i = 0u; i < DR; i++) {
                db[i] += a[i];
            }
        }
    }
    for (var i = 0u; i < DR; i++) {
        let gm = m0 + ty + DWG * i;
        for (var j = 0u; j < DR; j++) {
            let gn = n0 + tx + DWG * j;
            store_output(mode, gm, gn, acc[i * DR + j]);
        }
    }
    if mode == MODE_BACKWARD_PARAMS && wg.x == 0u && tx == 0u {
        for (var i = 0u; i < DR; i++) {
            if m0 + ty + DWG * i < p.m {
                buf_c[p.bias_off + m0 + ty + DWG * i] = db[i];
            }
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn linear_forward_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_direct(MODE_FORWARD, wg, lid);
}

@compute @workgroup_size(8, 8, 1)
fn linear_backward_input_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_direct(MODE_BACKWARD_INPUT, wg, lid);
}

@compute @workgroup_size(8, 8, 1)
fn linear_backward_params_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_direct(MODE_BACKWARD_PARAMS, wg, lid);
}
