// linear_split.wgsl: the split-K variant of linear.wgsl's matrix product, for
// products too small to fill a GPU (every product of the batch-100 models).
// Same operands, modes, epilogues and entry point names with the suffix
// _split; appended after linear.wgsl, whose LinearParams, bindings,
// tile_slot, tile_load and store_output it uses.
//
// Such a product has few 32 x 32 output tiles, so few workgroups, and each
// walks all of K in sequence: its time is the latency of K / TK steps of
// load, barrier, multiply. Here a workgroup of 256 threads splits K into 4
// slices of 64 threads each; every slice computes the workgroup's 32 x 32
// output tile over its quarter of K (8 x 8 threads of 4 x 4 outputs, K steps
// of SK through its own workgroup-memory tiles), then the 4 partial tiles are
// added in slice order and the epilogue runs once. The chain of K steps is
// 4x shorter. Within a slice each output sums over its k in order; the 4
// partial sums are then added, so results differ from the in-order sum by
// rounding only.
//
// When even that leaves a long chain (K long, few tiles), K is also chunked
// over workgroups: workgroup z covers K chunk z (p.chunk_len long), writes
// its raw partial tile to buf_s[z][M][N] (and its partial bias-gradient
// sums to buf_s after the tiles), and a second dispatch of
// linear_*_split_reduce adds the p.chunks partials of each output in chunk
// order and runs the epilogue. With p.chunks == 1 the workgroup runs the
// epilogue itself and buf_s is not touched.

const SK: u32 = 16u;
const SLICES: u32 = 4u;
// One slice's A and B tiles ([SK][32] each), then the next slice's.
const SPLIT_TILE: u32 = 512u;
// The A tiles of all slices, then the B tiles; reused for the 4 partial
// output tiles (4 x 1024) once the products are done.
var<workgroup> split_mem: array<f32, 4096>;
// Each slice's partial bias-gradient sums (backward params), 32 rows each.
var<workgroup> split_db: array<f32, 128>;

// The 8 + 8 elements a thread loads per K step are named registers, all
// loaded before any is used, and the next step's are loaded while the
// current step is multiplied: a step then waits for one memory latency,
// not one per element (a load followed at once by its store to workgroup
// memory waits for that load before the next is issued).
fn gemm_split(mode: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let slice = lid.x / 64u;
    let lt = lid.x % 64u;
    let tx = lt % 8u;
    let ty = lt / 8u;
    let m0 = wg.y * TILE;
    let n0 = wg.x * TILE;
    let a_along_k = mode != MODE_BACKWARD_PARAMS;
    let b_along_k = mode == MODE_FORWARD;
    let with_db = mode == MODE_BACKWARD_PARAMS && wg.x == 0u;
    // Every slice runs the same number of K steps (uniform barriers); steps
    // past K load zeros. The host makes chunk_len a multiple of SLICES * SK.
    let chunk = wg.z;
    let chunk_begin = chunk * p.chunk_len;
    let slice_len = p.chunk_len / SLICES;
    let steps = slice_len / SK;
    let k_begin = chunk_begin + slice * slice_len;
    let k_end = min(p.k, k_begin + slice_len);
    let a_base = slice * SPLIT_TILE;
    let b_base = SLICES * SPLIT_TILE + slice * SPLIT_TILE;
    let sa0 = tile_slot(a_along_k, lt + 64u * 0u, SK, TILE);
    let sb0 = tile_slot(b_along_k, lt + 64u * 0u, SK, TILE);
    let sa1 = tile_slot(a_along_k, lt + 64u * 1u, SK, TILE);
    let sb1 = tile_slot(b_along_k, lt + 64u * 1u, SK, TILE);
    let sa2 = tile_slot(a_along_k, lt + 64u * 2u, SK, TILE);
    let sb2 = tile_slot(b_along_k, lt + 64u * 2u, SK, TILE);
    let sa3 = tile_slot(a_along_k, lt + 64u * 3u, SK, TILE);
    let sb3 = tile_slot(b_along_k, lt + 64u * 3u, SK, TILE);
    let sa4 = tile_slot(a_along_k, lt + 64u * 4u, SK, TILE);
    let sb4 = tile_slot(b_along_k, lt + 64u * 4u, SK, TILE);
    let sa5 = tile_slot(a_along_k, lt + 64u * 5u, SK, TILE);
    let sb5 = tile_slot(b_along_k, lt + 64u * 5u, SK, TILE);
    let sa6 = tile_slot(a_along_k, lt + 64u * 6u, SK, TILE);
    let sb6 = tile_slot(b_along_k, lt + 64u * 6u, SK, TILE);
    let sa7 = tile_slot(a_along_k, lt + 64u * 7u, SK, TILE);
    let sb7 = tile_slot(b_along_k, lt + 64u * 7u, SK, TILE);
    var na0 = tile_load(true, mode, m0, k_begin, k_end, sa0);
    var nb0 = tile_load(false, mode, n0, k_begin, k_end, sb0);
    var na1 = tile_load(true, mode, m0, k_begin, k_end, sa1);
    var nb1 = tile_load(false, mode, n0, k_begin, k_end, sb1);
    var na2 = tile_load(true, mode, m0, k_begin, k_end, sa2);
    var nb2 = tile_load(false, mode, n0, k_begin, k_end, sb2);
    var na3 = tile_load(true, mode, m0, k_begin, k_end, sa3);
    var nb3 = tile_load(false, mode, n0, k_begin, k_end, sb3);
    var na4 = tile_load(true, mode, m0, k_begin, k_end, sa4);
    var nb4 = tile_load(false, mode, n0, k_begin, k_end, sb4);
    var na5 = tile_load(true, mode, m0, k_begin, k_end, sa5);
    var nb5 = tile_load(false, mode, n0, k_begin, k_end, sb5);
    var na6 = tile_load(true, mode, m0, k_begin, k_end, sa6);
    var nb6 = tile_load(false, mode, n0, k_begin, k_end, sb6);
    var na7 = tile_load(true, mode, m0, k_begin, k_end, sa7);
    var nb7 = tile_load(false, mode, n0, k_begin, k_end, sb7);
    var c0 = vec4<f32>();
    var c1 = vec4<f32>();
    var c2 = vec4<f32>();
    var c3 = vec4<f32>();
    var db = vec4<f32>();
    for (var st = 0u; st < steps; st++) {
        split_mem[a_base + sa0.x * TILE + sa0.y] = na0;
        split_mem[b_base + sb0.x * TILE + sb0.y] = nb0;
        split_mem[a_base + sa1.x * TILE + sa1.y] = na1;
        split_mem[b_base + sb1.x * TILE + sb1.y] = nb1;
        split_mem[a_base + sa2.x * TILE + sa2.y] = na2;
        split_mem[b_base + sb2.x * TILE + sb2.y] = nb2;
        split_mem[a_base + sa3.x * TILE + sa3.y] = na3;
        split_mem[b_base + sb3.x * TILE + sb3.y] = nb3;
        split_mem[a_base + sa4.x * TILE + sa4.y] = na4;
        split_mem[b_base + sb4.x * TILE + sb4.y] = nb4;
        split_mem[a_base + sa5.x * TILE + sa5.y] = na5;
        split_mem[b_base + sb5.x * TILE + sb5.y] = nb5;
        split_mem[a_base + sa6.x * TILE + sa6.y] = na6;
        split_mem[b_base + sb6.x * TILE + sb6.y] = nb6;
        split_mem[a_base + sa7.x * TILE + sa7.y] = na7;
        split_mem[b_base + sb7.x * TILE + sb7.y] = nb7;
        workgroupBarrier();
        if st + 1u < steps {
            let k0 = k_begin + (st + 1u) * SK;
            na0 = tile_load(true, mode, m0, k0, k_end, sa0);
            nb0 = tile_load(false, mode, n0, k0, k_end, sb0);
            na1 = tile_load(true, mode, m0, k0, k_end, sa1);
            nb1 = tile_load(false, mode, n0, k0, k_end, sb1);
            na2 = tile_load(true, mode, m0, k0, k_end, sa2);
            nb2 = tile_load(false, mode, n0, k0, k_end, sb2);
            na3 = tile_load(true, mode, m0, k0, k_end, sa3);
            nb3 = tile_load(false, mode, n0, k0, k_end, sb3);
            na4 = tile_load(true, mode, m0, k0, k_end, sa4);
            nb4 = tile_load(false, mode, n0, k0, k_end, sb4);
            na5 = tile_load(true, mode, m0, k0, k_end, sa5);
            nb5 = tile_load(false, mode, n0, k0, k_end, sb5);
            na6 = tile_load(true, mode, m0, k0, k_end, sa6);
            nb6 = tile_load(false, mode, n0, k0, k_end, sb6);
            na7 = tile_load(true, mode, m0, k0, k_end, sa7);
            nb7 = tile_load(false, mode, n0, k0, k_end, sb7);
        }
        for (var kk = 0u; kk < SK; kk++) {
            let ra = a_base + kk * TILE + ty;
            let a = vec4<f32>(split_mem[ra], split_mem[ra + 8u], split_mem[ra + 16u], split_mem[ra + 24u]);
            let rb = b_base + kk * TILE + tx;
            let b = vec4<f32>(split_mem[rb], split_mem[rb + 8u], split_mem[rb + 16u], split_mem[rb + 24u]);
            c0 = fma(vec4<f32>(a.x), b, c0);
            c1 = fma(vec4<f32>(a.y), b, c1);
            c2 = fma(vec4<f32>(a.z), b, c2);
            c3 = fma(vec4<f32>(a.w), b, c3);
            if with_db {
                db += a;
            }
        }
        workgroupBarrier();
    }
    // Partial tiles: slice s's output (row, col) at s * 1024 + row * 32 + col.
    let part = slice * 1024u + ty * TILE + tx;
    for (var j = 0u; j < 4u; j++) {
        split_mem[part + 8u * j] = c0[j];
        split_mem[part + 8u * TILE + 8u * j] = c1[j];
        split_mem[part + 16u * TILE + 8u * j] = c2[j];
        split_mem[part + 24u * TILE + 8u * j] = c3[j];
    }
    if with_db && tx == 0u {
        for (var i = 0u; i < 4u; i++) {
            split_db[slice * TILE + ty + 8u * i] = db[i];
        }
    }
    workgroupBarrier();
    let chunked = p.chunks > 1u;
    let outputs = p.m * p.n;
    for (var q = 0u; q < 4u; q++) {
        let o = lid.x + 256u * q;
        let gm = m0 + o / TILE;
        let gn = n0 + o % TILE;
        let v = split_mem[o] + split_mem[1024u + o] + split_mem[2048u + o] + split_mem[3072u + o];
        if !chunked {
            store_output(mode, gm, gn, v);
        } else if gm < p.m && gn < p.n {
            buf_s[chunk * outputs + gm * p.n + gn] = v;
        }
    }
    if with_db && lid.x < TILE && m0 + lid.x < p.m {
        let r = lid.x;
        let d = split_db[r] + split_db[TILE + r] + split_db[2u * TILE + r] + split_db[3u * TILE + r];
        if chunked {
            buf_s[p.chunks * outputs + chunk * p.m + m0 + r] = d;
        } else {
            buf_c[p.bias_off + m0 + r] = d;
        }
    }
}

// The second dispatch of a chunked product, one thread per output (and per
// bias-gradient row): the chunks' partials added in chunk order, then the
// epilogue.
fn split_reduce(mode: u32, i: u32) {
    let outputs = p.m * p.n;
    if i < outputs {
        var v = 0.0;
        for (var z = 0u; z < p.chunks; z++) {
            v += buf_s[z * outputs + i];
        }
        store_output(mode, i / p.n, i % p.n, v);
    }
    if mode == MODE_BACKWARD_PARAMS && i < p.m {
        var d = 0.0;
        for (var z = 0u; z < p.chunks; z++) {
            d += buf_s[p.chunks * outputs + z * p.m + i];
        }
        buf_c[p.bias_off + i] = d;
    }
}

@compute @workgroup_size(256, 1, 1)
fn linear_forward_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_split(MODE_FORWARD, wg, lid);
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_input_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_split(MODE_BACKWARD_INPUT, wg, lid);
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_params_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    gemm_split(MODE_BACKWARD_PARAMS, wg, lid);
}

@compute @workgroup_size(256, 1, 1)
fn linear_forward_split_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    split_reduce(MODE_FORWARD, gid.x);
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_input_split_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    split_reduce(MODE_BACKWARD_INPUT, gid.x);
}

@compute @workgroup_size(256, 1, 1)
fn linear_backward_params_split_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    split_reduce(MODE_BACKWARD_PARAMS, gid.x);
}
