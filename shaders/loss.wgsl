// loss.wgsl: binary cross-entropy from logits in the stable form
// bce(l, t) = max(l, 0) - l t + ln(1 + exp(-|l|)), and its gradient
// (bce_with_logits); the critic losses of raw outputs, least squares, hinge
// and Wasserstein, term by term as src/model/critic_loss.rs (critic_loss).
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

// Sums each thread's (loss, first part's sum, second part's sum) in a fixed
// tree (deterministic, no float atomics); thread 0 adds the loss and each
// part's mean into the stats slots. Called by all 256 threads.
fn add_row_sums(t: u32, s: vec3<f32>, n: u32, split: u32, loss_slot: u32, first_slot: u32, second_slot: u32) {
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
        stats[loss_slot] += total.x;
        if first_slot != NONE && split > 0u {
            stats[first_slot] += total.y / f32(split);
        }
        if second_slot != NONE && n > split {
            stats[second_slot] += total.z / f32(n - split);
        }
    }
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
    add_row_sums(t, s, p.n, p.split, p.loss_slot, p.first_slot, p.second_slot);
}

// critic_loss
struct CriticParams {
    n: u32,
    split: u32,
    first_kind: u32,
    second_kind: u32,
    first_param: f32,
    second_param: f32,
    weight: f32,
    l_off: u32,
    l_stride: u32,
    d_off: u32,
    d_stride: u32,
    loss_slot: u32,
    first_slot: u32,
    second_slot: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> cp: CriticParams;

// (loss, gradient) of one row with raw output l: ScoreTerm::loss_and_grad.
// kind 0: (l - a)^2 / 2; 1: max(0, 1 - l); 2: max(0, 1 + l); 3: a l.
fn score_term(kind: u32, a: f32, l: f32) -> vec2<f32> {
    if kind == 0u {
        let d = l - a;
        return vec2<f32>(0.5 * d * d, d);
    }
    if kind == 1u {
        return select(vec2<f32>(0.0, 0.0), vec2<f32>(1.0 - l, -1.0), l < 1.0);
    }
    if kind == 2u {
        return select(vec2<f32>(0.0, 0.0), vec2<f32>(1.0 + l, 1.0), l > -1.0);
    }
    return vec2<f32>(a * l, a);
}

@compute @workgroup_size(256, 1, 1)
fn critic_loss(@builtin(local_invocation_index) t: u32) {
    // (loss, sum of raw outputs of rows ..split, of rows split..)
    var s = vec3<f32>(0.0, 0.0, 0.0);
    for (var r = t; r < cp.n; r += 256u) {
        let l = logits[cp.l_off + r * cp.l_stride];
        let first = r < cp.split;
        let kind = select(cp.second_kind, cp.first_kind, first);
        let a = select(cp.second_param, cp.first_param, first);
        let term = score_term(kind, a, l);
        s.x += cp.weight * term.x;
        dlogits[cp.d_off + r * cp.d_stride] = cp.weight * term.y;
        if first {
            s.y += l;
        } else {
            s.z += l;
        }
    }
    add_row_sums(t, s, cp.n, cp.split, cp.loss_slot, cp.first_slot, cp.second_slot);
}
