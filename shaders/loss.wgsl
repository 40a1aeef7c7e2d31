// loss.wgsl: binary cross-entropy from logits in the stable form
// bce(l, t) = max(l, 0) - l t + ln(1 + exp(-|l|)), and its gradient.
// One workgroup handles all N rows: each thread takes rows t, t + 256, ...,
// then a fixed tree reduction sums the loss and the two probability sums,
// so the result is deterministic (no float atomics). Thread 0 adds the loss
// and the mean probabilities into the stats slots.

struct BceParams {
    n: u32,
    split: u32,
    target_first: f32,
    target_second: f32,
    weight: f32,
    l_off: u32,
    l_stride: u32,
    d_off: u32,
    d_stride: u32,
    loss_slot: u32,
    // NONE when absent.
    first_slot: u32,
    second_slot: u32,
}

@group(0) @binding(0) var<uniform> p: BceParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;

var<workgroup> partial: array<vec3<f32>, 256>;

// ln(1 + x), accurate for small x (Goldberg's trick: the rounding of 1 + x
// is corrected by x / ((1 + x) - 1)).
fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    return log(u) * (x / (u - 1.0));
}

@compute @workgroup_size(256, 1, 1)
fn bce_with_logits(@builtin(local_invocation_index) t: u32) {
    // (loss, sum of probabilities of rows ..split, of rows split..)
    var s = vec3<f32>(0.0, 0.0, 0.0);
    for (var r = t; r < p.n; r += 256u) {
        let l = logits[p.l_off + r * p.l_stride];
        let first = r < p.split;
        let tgt = select(p.target_second, p.target_first, first);
        let prob = act_apply(ACT_SIGMOID, 0.0, l);
        s.x += p.weight * (max(l, 0.0) - l * tgt + log1p(exp(-abs(l))));
        dlogits[p.d_off + r * p.d_stride] = p.weight * (prob - tgt);
        if first {
            s.y += prob;
        } else {
            s.z += prob;
        }
    }
    partial[t] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if t < half {
            partial[t] += partial[t + half];
        }
        workgroupBarrier();
    }
    if t == 0u {
        let total = partial[0];
        stats[p.loss_slot] += total.x;
        if p.first_slot != NONE && p.split > 0u {
            stats[p.first_slot] += total.y / f32(p.split);
        }
        if p.second_slot != NONE && p.n > p.split {
            stats[p.second_slot] += total.z / f32(p.n - p.split);
        }
    }
}
