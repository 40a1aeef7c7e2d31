// linear_blocked.wgsl: the register-blocked variant of linear.wgsl's matrix
// product, for products large enough to fill a GPU (the deep model at large
// batches, the 4096^3 benchmark). Same operands, modes, epilogues and entry
// point names with the suffix _blocked; appended after linear.wgsl, whose
// LinearParams, bindings, dz, load_a and load_b it uses.
//
// The host prefixes two constants, one module per tile size:
//   BM: the output tile, BM x BM (64 or 128);
//   BK: the K step (16 for BM = 64, 8 for BM = 128: 2 x BK x (BM + 4) floats
//       of workgroup memory, 8.4 KiB either way).
//
// A workgroup is 16 x 16 threads; each computes TM x TM outputs (TM = BM/16)
// as groups of 4 consecutive rows times groups of 4 consecutive columns, the
// groups 64 apart, so a thread reads its operands from workgroup memory as
// vec4s (4 loads of 16 bytes for 64 multiply-adds at BM = 128). The next K
// step's operands are loaded from memory into registers while the current
// one is multiplied (one barrier pair per K step). Each output sums over k in
// order, one fused multiply-add at a time, like the other variants.

const BTM: u32 = BM / 16u;
// vec4 groups per thread per side.
const BG: u32 = BTM / 4u;
// A row of a [BK][BM] tile in vec4s, padded by one so that the transposing
// stores spread over the banks.
const BROW: u32 = BM / 4u + 1u;
// Elements of each operand one thread loads per K step.
const BLOADS: u32 = BK * BM / 256u;

var<workgroup> blk_a: array<vec4<f32>, BK * BROW>;
var<workgroup> blk_b: array<vec4<f32>, BK * BROW>;

// Where element e of thread t goes in a [BK][BM] tile: (k, m). Consecutive
// threads walk the operand's contiguous dimension in memory.
fn blk_slot(k_contiguous: bool, t: u32, e: u32) -> vec2<u32> {
    let idx = t + 256u * e;
    if k_contiguous {
        return vec2<u32>(idx % BK, idx / BK);
    }
    return vec2<u32>(idx / BM, idx % BM);
}

fn blk_store(is_a: bool, k: u32, m: u32, v: f32) {
    let i = k * BROW + m / 4u;
    if is_a {
        blk_a[i][m % 4u] = v;
    } else {
        blk_b[i][m % 4u] = v;
    }
}

fn gemm_blocked(mode: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * BM;
    let n0 = wg.x * BM;
    // A is contiguous along k except for dz^T (backward params); B along k
    // only forward (W^T).
    let a_along_k = mode != MODE_BACKWARD_PARAMS;
    let b_along_k = mode == MODE_FORWARD;
    let with_db = mode == MODE_BACKWARD_PARAMS && wg.x == 0u;

    var acc: array<vec4<f32>, BTM * BG>;
    var db: array<f32, BTM>;
    var next_a: array<f32, BLOADS>;
    var next_b: array<f32, BLOADS>;

    let ktiles = (p.k + BK - 1u) / BK;
    // Operands of the first K step.
    for (var e = 0u; e < BLOADS; e++) {
        let sa = blk_slot(a_along_k, t, e);
        var va = 0.0;
        if m0 + sa.y < p.m && sa.x < p.k {
            va = load_a(mode, m0 + sa.y, sa.x);
        }
        next_a[e] = va;
        let sb = blk_slot(b_along_k, t, e);
        var vb = 0.0;
        if n0 + sb.y < p.n && sb.x < p.k {
            vb = load_b(mode, sb.x, n0 + sb.y);
        }
        next_b[e] = vb;
    }
    for (var kt = 0u; kt < ktiles; kt++) {
        for (var e = 0u; e < BLOADS; e++) {
            let sa = blk_slot(a_along_k, t, e);
            blk_store(true, sa.x, sa.y, next_a[e]);
            let sb = blk_slot(b_along_k, t, e);
            blk_store(false, sb.x, sb.y, next_b[e]);
        }
        workgroupBarrier();
        // The next K step's operands, in flight during the products below.
        if kt + 1u < ktiles {
            let k0 = (kt + 1u) * BK;
            for (var e = 0u; e < BLOADS; e++) {
                let sa = blk_slot(a_along_k, t, e);
                var va = 0.0;
                if m0 + sa.y < p.m && k0 + sa.x < p.k {
                    va = load_a(mode, m0 + sa.y, k0 + sa.x);
                }
                next_a[e] = va;
                let sb = blk_slot(b_along_k, t, e);
                var vb = 0.0;
                if n0 + sb.y < p.n && k0 + sb.x < p.k {
                    vb = load_b(mode, k0 + sb.x, n0 + sb.y);
                }
                next_b[e] = vb;
            }
        }
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<vec4<f32>, BG>;
            var b: array<vec4<f32>, BG>;
            for (var g = 0u; g < BG; g++) {
                a[g] = blk_a[kk * BROW + g * 16u + ty];
                b[g] = blk_b[kk * BROW + g * 16u + tx];
            }
            for (var r = 0u; r < BTM; r++) {
                let ar = a[r / 4u][r % 4u];
                for (var g = 0u; g < BG; g++) {
                    acc[r * BG + g] = fma(vec4<f32>(ar), b[g], acc[r * BG + g]);
                }
                if with_db {
                    db[r] += ar;
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < BTM; r++) {
        let gm = m0 + (r / 4u) * 64u + ty * 4u + r % 4u;
        if gm >= p.m {
            continue;
        }
        for (var g = 0u; g < BG; g++) {
            for (var j = 0u; j < 4u; j++) {
                let gn = n0 + g * 64u + tx * 4u + j;
                if gn < p.n {
                    var v = acc[r * BG + g][j];
                    if mode == MODE_FORWARD {
                        v = act_apply(p.act, p.slope, v + buf_b[p.bias_off + gn]);
                        if p.dropout != 0u {
                            let keep = dropout_keep(clock.seed, p.stream, clock.step, gm * p.out_cols + gn, p.threshold);
                            v = select(0.0, v / p.keep_prob, keep);
                        }
                    }
                    buf_c[p.c_off + gm * p.c_stride + gn] = v;
                }
            }
        }
        if with_db && tx == 0u {
            buf_c[p.bias_off + gm] = db[r];
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn linear_forward_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_blocked(MODE_FORWARD, wg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn linear_backward_input_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_blocked(MODE_BACKWARD_INPUT, wg, lid);
}

@compute @workgroup_size(16, 16, 1)
fn linear_backward_params_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_blocked(MODE_BACKWARD_PARAMS, wg, lid);
}
