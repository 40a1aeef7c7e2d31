// random.wgsl: the counter-based random generator, line for line as src/rng.rs.
// Every draw is a pure function of (seed, stream, step, index).

// Chris Wellons' lowbias32 integer hash.
fn hash_u32(x_in: u32) -> u32 {
    var x = x_in;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// A uniformly distributed u32 for (seed, stream, step, index).
fn random_u32(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    var h = hash_u32(seed ^ 0x9e3779b9u);
    h = hash_u32(h ^ stream);
    h = hash_u32(h ^ step);
    return hash_u32(h ^ index);
}

// 2^-24: turns the top 24 bits of a u32 into a float in [0, 1) exactly.
const INV_2_24: f32 = 1.0 / 16777216.0;
const TAU: f32 = 6.28318530717958647692;

// A uniform float in [0, 1) (24 random bits, exactly representable).
fn uniform01(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    return f32(random_u32(seed, stream, step, index) >> 8u) * INV_2_24;
}

// A standard normal float by Box-Muller from the uniforms at 2 * index and
// 2 * index + 1. The first uniform is shifted into (0, 1] so log is finite.
fn normal(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    let u1 = f32((random_u32(seed, stream, step, 2u * index) >> 8u) + 1u) * INV_2_24;
    let u2 = f32(random_u32(seed, stream, step, 2u * index + 1u) >> 8u) * INV_2_24;
    return sqrt(-2.0 * log(u1)) * cos(TAU * u2);
}

// Whether dropout keeps element `index` of the layer output in this pass:
// the 24-bit draw at or above the threshold (rng::dropout_threshold(p)).
fn dropout_keep(seed: u32, stream: u32, step: u32, index: u32, threshold: u32) -> bool {
    return (random_u32(seed, stream, step, index) >> 8u) >= threshold;
}
