// classifier.wgsl: Softmax cross-entropy for the built-in MNIST classifier (src/eval): for each
// row r of logits l [N, C] and targets t [N, C], with lse = max + ln(sum exp(l - max)),
// dlogits = weight * (softmax(l) - t), loss += weight * sum_c t_c (lse - l_c), and
// correct += 1 when argmax(l) == argmax(t) (first index on ties). Like the BCE,
// one workgroup strides over the rows and a fixed tree reduction sums the
// (loss, correct) pairs, so the result is deterministic.

struct CeParams {
    n: u32,
    classes: u32,
    l_off: u32,
    l_stride: u32,
    t_off: u32,
    t_stride: u32,
    d_off: u32,
    d_stride: u32,
    weight: f32,
    loss_slot: u32,
    // NONE when absent.
    correct_slot: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> ce: CeParams;
@group(0) @binding(1) var<storage, read_write> ce_logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ce_targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> ce_dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> ce_stats: array<f32>;

var<workgroup> ce_partial: array<vec2<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn softmax_cross_entropy(@builtin(local_invocation_index) t: u32) {
    // (loss, correct rows)
    var s = vec2<f32>(0.0, 0.0);
    for (var r = t; r < ce.n; r += 256u) {
        let lrow = ce.l_off + r * ce.l_stride;
        let trow = ce.t_off + r * ce.t_stride;
        var mx = ce_logits[lrow];
        var arg_l = 0u;
        var best_t = ce_targets[trow];
        var arg_t = 0u;
        for (var c = 1u; c < ce.classes; c++) {
            let l = ce_logits[lrow + c];
            if l > mx {
                mx = l;
                arg_l = c;
            }
            let tc = ce_targets[trow + c];
            if tc > best_t {
                best_t = tc;
                arg_t = c;
            }
        }
        var sum = 0.0;
        for (var c = 0u; c < ce.classes; c++) {
            sum += exp(ce_logits[lrow + c] - mx);
        }
        let lse = mx + log(sum);
        var row_loss = 0.0;
        for (var c = 0u; c < ce.classes; c++) {
            let l = ce_logits[lrow + c];
            let tc = ce_targets[trow + c];
            ce_dlogits[ce.d_off + r * ce.d_stride + c] = ce.weight * (exp(l - mx) / sum - tc);
            row_loss += tc * (lse - l);
        }
        s.x += ce.weight * row_loss;
        if arg_l == arg_t {
            s.y += 1.0;
        }
    }
    ce_partial[t] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if t < half {
            ce_partial[t] += ce_partial[t + half];
        }
        workgroupBarrier();
    }
    if t == 0u {
        ce_stats[ce.loss_slot] += ce_partial[0].x;
        if ce.correct_slot != NONE {
            ce_stats[ce.correct_slot] += ce_partial[0].y;
        }
    }
}
