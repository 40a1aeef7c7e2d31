//! A training set larger than one storage binding: the GPU backend splits
//! it into chunks of whole images, one buffer each, and gathers a batch with
//! one dispatch per chunk. Forced here with a tiny chunk limit
//! (`GpuOptions::data_chunk_bytes`) on Vulkan and GL: the gathered batches
//! and whole training steps are bit for bit those of one buffer (a gather
//! copies bytes; nothing is summed), and the gathered batch is the CPU's.

mod common;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::gpu::{GpuBackend, GpuOptions};
use gan_gpu::backend::{Backend, Clock, Mat};
use gan_gpu::bench::StepRunner;
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::nn::Net;
use gan_gpu::rng;

/// 7 images and a few bytes a chunk (not a multiple of 4): 29 chunks of
/// the 200 images, the last one shorter.
const CHUNK_BYTES: u64 = 7 * 784 + 3;
const BATCH: usize = 16;

fn data() -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(200)
}

/// Batches 0..3 of the epoch order, gathered with their one-hot labels.
fn gathered<B: Backend>(backend: &mut B, data: &Dataset) -> Vec<f32> {
    backend
        .upload_dataset(&data.images, &data.labels, 784)
        .unwrap();
    backend
        .set_epoch_order(&rng::epoch_order(3, 0, data.count))
        .unwrap();
    let x = backend.alloc(BATCH * 794).unwrap();
    let mut out = Vec::new();
    for cursor in 0..3 {
        backend
            .set_clock(Clock {
                seed: 3,
                step: cursor,
                cursor,
            })
            .unwrap();
        let m = Mat::dense(x, BATCH, 794);
        backend.gather_batch(m.cols(0, 784), Some(m.cols(784, 10)), 1.0 / 255.0, 0.0);
        out.extend(backend.read(x).unwrap());
    }
    out
}

/// The conditional model's generator and discriminator after 3 steps.
fn trained<B: Backend>(backend: &mut B, data: &Dataset) -> Vec<f32> {
    let overrides = Overrides {
        batch_size: Some(BATCH),
        g_hidden: Some(vec![32]),
        d_hidden: Some(vec![32]),
        ..Default::default()
    };
    let spec = ModelSpec::build(ModelKind::Conditional, &overrides);
    let mut runner = StepRunner::new(backend, &spec, data).unwrap();
    runner.run(backend, 3).unwrap();
    let mut values = Vec::new();
    for net in [&runner.state.generator, &runner.state.discriminator] {
        let Net::Mlp(mlp) = net else {
            panic!("an MLP model")
        };
        values.extend(backend.read(mlp.params).unwrap());
    }
    values
}

/// Errors unless `a` and `b` are equal bit for bit, naming the first
/// difference.
fn same(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!("{what}: value {i} is {} and {}", a[i], b[i]);
    }
}

fn chunked(api: gan_gpu::backend::gpu::GpuApi, bytes: u64) -> gan_gpu::error::Result<GpuBackend> {
    GpuBackend::new(&GpuOptions {
        data_chunk_bytes: Some(bytes),
        ..GpuOptions::with_api(api)
    })
}

#[test]
fn a_training_set_split_over_many_bindings_trains_as_one() {
    let _lock = common::gpu_test_lock();
    let data = data();
    let on_cpu = gathered(&mut CpuBackend::new(), &data);
    for (api, mut whole) in common::gpu_backends() {
        let mut split = chunked(api, CHUNK_BYTES).unwrap();
        let (one, many) = (gathered(&mut whole, &data), gathered(&mut split, &data));
        same(
            &one,
            &on_cpu,
            &format!("{api:?}: one buffer against the CPU"),
        );
        same(
            &many,
            &on_cpu,
            &format!("{api:?}: 29 chunks against the CPU"),
        );
        let (one, many) = (trained(&mut whole, &data), trained(&mut split, &data));
        same(
            &one,
            &many,
            &format!("{api:?}: 3 steps, one buffer against 29 chunks"),
        );
        // Less than one image a binding is a clear error.
        let mut tiny = chunked(api, 700).unwrap();
        let err = tiny
            .upload_dataset(&data.images, &data.labels, 784)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one training image (784 bytes)"), "{err}");
    }
}
