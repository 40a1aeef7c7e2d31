// data.wgsl: what a step draws or gathers on the GPU, and the clock tick.
//   gather_batch   the real batch from the resident training set (bytes packed
//                  4 per u32, unpacked here) in the epoch's order, plus one-hot labels;
//                  the set is split into chunks of whole images, one binding each,
//                  and one dispatch per chunk writes the rows whose image it holds;
//   normal_noise   N(0, 1) noise from the counter generator;
//   random_onehot  random one-hot labels (into one or two matrices);
//   end_step       clock.step += 1, clock.cursor += 1.

struct GatherParams {
    rows: u32,
    cols: u32,
    x_off: u32,
    x_stride: u32,
    scale: f32,
    shift: f32,
    pixels: u32,
    has_onehot: u32,
    h_off: u32,
    h_stride: u32,
    classes: u32,
    chunk_first: u32,
    chunk_count: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

struct NoiseParams {
    rows: u32,
    cols: u32,
    off: u32,
    stride: u32,
    stream: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

struct OnehotParams {
    rows: u32,
    cols: u32,
    off: u32,
    stride: u32,
    also_off: u32,
    also_stride: u32,
    has_also: u32,
    stream: u32,
}

@group(0) @binding(1) var<storage, read_write> clock: Clock;

// gather_batch
@group(0) @binding(0) var<uniform> gp: GatherParams;
@group(0) @binding(2) var<storage, read_write> images: array<u32>;
@group(0) @binding(3) var<storage, read_write> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> order: array<u32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@group(0) @binding(6) var<storage, read_write> gh: array<f32>;

// Byte `i` of a buffer of bytes packed 4 per u32, little-endian.
fn byte_at_images(i: u32) -> u32 {
    return (images[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

fn byte_at_labels(i: u32) -> u32 {
    return (labels[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

@compute @workgroup_size(256, 1, 1)
fn gather_batch(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    let first = clock.cursor * gp.rows;
    let pixels_total = gp.rows * gp.cols;
    if i < pixels_total {
        let r = i / gp.cols;
        let c = i % gp.cols;
        let image = order[first + r];
        if image < gp.chunk_first || image - gp.chunk_first >= gp.chunk_count {
            return;
        }
        let value = f32(byte_at_images((image - gp.chunk_first) * gp.pixels + c));
        gx[gp.x_off + r * gp.x_stride + c] = value * gp.scale + gp.shift;
        return;
    }
    let j = i - pixels_total;
    if gp.has_onehot != 0u && j < gp.rows * gp.classes {
        let r = j / gp.classes;
        let c = j % gp.classes;
        let label = byte_at_labels(order[first + r]);
        gh[gp.h_off + r * gp.h_stride + c] = select(0.0, 1.0, c == label);
    }
}

// normal_noise
@group(0) @binding(0) var<uniform> np: NoiseParams;
@group(0) @binding(2) var<storage, read_write> noise_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn normal_noise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= np.rows * np.cols {
        return;
    }
    let r = i / np.cols;
    let c = i % np.cols;
    noise_out[np.off + r * np.stride + c] = normal(clock.seed, np.stream, clock.step, i);
}

// random_onehot
@group(0) @binding(0) var<uniform> op: OnehotParams;
@group(0) @binding(2) var<storage, read_write> onehot_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> onehot_also: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn random_onehot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = global_index(wid, nwg, lid);
    if i >= op.rows * op.cols {
        return;
    }
    let r = i / op.cols;
    let c = i % op.cols;
    let label = random_u32(clock.seed, op.stream, clock.step, r) % op.cols;
    let value = select(0.0, 1.0, c == label);
    onehot_out[op.off + r * op.stride + c] = value;
    if op.has_also != 0u {
        onehot_also[op.also_off + r * op.also_stride + c] = value;
    }
}

// end_step
@compute @workgroup_size(1, 1, 1)
fn end_step() {
    clock.step += 1u;
    clock.cursor += 1u;
}
