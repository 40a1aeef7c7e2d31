//! Parsers that hold: thousands of mutated and truncated inputs fed to every
//! reader (IDX images and labels, raw and gzip; checkpoints; NPY; the eval
//! classifier cache). Each case must return Ok or a one-line error, never
//! panic, and never allocate more than the input justifies.
//!
//! The allocation bound: one allocation of at most `64 * input length + 1 MiB`.
//! A reader legitimately holds a few copies of what the file holds (the
//! bytes, the decoded values, a checkpoint's three flat buffers), each at
//! most the file's size: far below 64x. The 1 MiB covers fixed costs: the
//! IDX reader's first buffer for a gzip stream of unknown length (1 MiB),
//! small headers and messages. A reader that trusts a declared size (2^32
//! images, a header length near u64::MAX) would break it by gigabytes.
//!
//! Deterministic: every mutation comes from `gan_gpu::rng`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use gan_gpu::backend::Clock;
use gan_gpu::checkpoint::{Checkpoint, NetworkState, RunSettings};
use gan_gpu::data::{idx, npy};
use gan_gpu::eval::cache;
use gan_gpu::eval::classifier::{Classifier, ClassifierConfig};
use gan_gpu::model::{ModelKind, ModelSpec, NetworkLayout, Overrides};
use gan_gpu::rng;

/// Tracks the largest single allocation request of the current thread while armed.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

fn bound(len: usize) -> usize {
    64 * len + MIB
}

/// Runs `parse` on `input`: no panic, a one-line error, allocations in bound.
/// Returns whether it parsed.
fn check_case(
    reader: &str,
    case: &str,
    input: &[u8],
    parse: &dyn Fn(&[u8]) -> Result<(), String>,
) -> bool {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| parse(input)));
    ARMED.with(|a| a.set(false));
    let largest = LARGEST.with(Cell::get);
    let result = result.unwrap_or_else(|_| {
        panic!(
            "{reader}: {case}: the reader panicked on this input ({} bytes): {:02x?}",
            input.len(),
            &input[..input.len().min(64)]
        )
    });
    assert!(
        largest <= bound(input.len()),
        "{reader}: {case}: allocated {largest} bytes for a {}-byte input (bound {})",
        input.len(),
        bound(input.len())
    );
    match result {
        Ok(()) => true,
        Err(message) => {
            assert!(
                !message.contains('\n') && !message.is_empty(),
                "{reader}: {case}: the error is not one line: {message:?}"
            );
            false
        }
    }
}

/// A deterministic stream of u32s.
struct Draw {
    seed: u32,
    n: u32,
}

impl Draw {
    fn new(seed: u32) -> Self {
        Draw { seed, n: 0 }
    }
    fn next(&mut self) -> u32 {
        self.n += 1;
        rng::random_u32(self.seed, 77, 0, self.n)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
}

/// Truncations (every position, or `max_cuts` spread evenly), byte flips
/// (half in the first `header` bytes), and the `extra` crafted inputs.
/// Returns the number of cases.
fn mutate_all(
    reader: &str,
    valid: &[u8],
    header: usize,
    max_cuts: usize,
    flips: usize,
    extra: &[(String, Vec<u8>)],
    parse: &dyn Fn(&[u8]) -> Result<(), String>,
) -> usize {
    let mut cases = 0;
    assert!(
        check_case(reader, "the valid input", valid, parse),
        "{reader}: the valid input does not parse"
    );
    // The allocator does see the reader's allocations.
    assert!(
        LARGEST.with(Cell::get) > 0,
        "{reader}: no allocation counted"
    );
    cases += 1;
    let step = valid.len().div_ceil(max_cuts).max(1);
    for cut in (0..valid.len())
        .step_by(step)
        .chain(0..header.min(valid.len()))
    {
        check_case(reader, &format!("cut at {cut}"), &valid[..cut], parse);
        cases += 1;
    }
    let mut draw = Draw::new(valid.len() as u32 ^ reader.len() as u32);
    for i in 0..flips {
        let mut bytes = valid.to_vec();
        let at = if i % 2 == 0 {
            draw.below(header.min(bytes.len()))
        } else {
            draw.below(bytes.len())
        };
        let flips_here = 1 + draw.below(3);
        for k in 0..flips_here {
            let pos = (at + k * draw.below(8)) % bytes.len();
            bytes[pos] ^= (1 + draw.below(255)) as u8;
        }
        check_case(reader, &format!("flip {i} at {at}"), &bytes, parse);
        cases += 1;
    }
    for (name, bytes) in extra {
        check_case(reader, name, bytes, parse);
        cases += 1;
    }
    cases
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(count: u32, side: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [count, side, side] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let mut draw = Draw::new(5);
    b.extend((0..count * side * side).map(|_| draw.next() as u8));
    b
}

fn idx_labels(count: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&count.to_be_bytes());
    b.extend((0..count).map(|i| (i % 10) as u8));
    b
}

/// The header with dimension `dim` replaced by `value`, data unchanged.
fn with_dim(valid: &[u8], dim: usize, value: u32) -> Vec<u8> {
    let mut b = valid.to_vec();
    b[4 + 4 * dim..8 + 4 * dim].copy_from_slice(&value.to_be_bytes());
    b
}

fn ok_or_line<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn idx_readers_hold() {
    let started = Instant::now();
    let path = Path::new("mutated-idx");
    let images = idx_images(20, 6);
    let labels = idx_labels(50);
    let parse_images = |b: &[u8]| ok_or_line(idx::parse_images(path, b));
    let parse_labels = |b: &[u8]| ok_or_line(idx::parse_labels(path, b));
    let mut extra = Vec::new();
    for (dim, value) in [
        (0, u32::MAX),
        (0, 1 << 31),
        (1, u32::MAX),
        (2, 1 << 16),
        (0, 0),
    ] {
        extra.push((
            format!("images dim {dim} = {value}"),
            with_dim(&images, dim, value),
        ));
        extra.push((
            format!("gzip images dim {dim} = {value}"),
            gzip(&with_dim(&images, dim, value)),
        ));
    }
    let mut cases = mutate_all("idx images", &images, 16, 4000, 1500, &extra, &parse_images);
    cases += mutate_all(
        "idx images (gzip)",
        &gzip(&images),
        24,
        4000,
        1500,
        &[],
        &parse_images,
    );
    let extra = vec![
        (
            "labels count 2^32-1".to_string(),
            with_dim(&labels, 0, u32::MAX),
        ),
        (
            "gzip labels count 2^32-1".to_string(),
            gzip(&with_dim(&labels, 0, u32::MAX)),
        ),
    ];
    cases += mutate_all("idx labels", &labels, 8, 4000, 1000, &extra, &parse_labels);
    cases += mutate_all(
        "idx labels (gzip)",
        &gzip(&labels),
        24,
        4000,
        1000,
        &[],
        &parse_labels,
    );
    eprintln!("idx: {cases} cases in {:.2?}", started.elapsed());
    assert!(cases > 4000);
}

fn tiny_checkpoint() -> Vec<u8> {
    let spec = ModelSpec::build(
        ModelKind::Vanilla,
        &Overrides {
            noise_dim: Some(4),
            g_hidden: Some(vec![3]),
            d_hidden: Some(vec![3]),
            batch_size: Some(10),
            epochs: Some(2),
            ..Default::default()
        },
    );
    let net = |n: &gan_gpu::model::NetSpec, k: f32| {
        let len = NetworkLayout::new(n.mlp().unwrap()).len;
        let values: Vec<f32> = (0..len).map(|i| (i as f32 * 0.01 + k).sin()).collect();
        NetworkState {
            params: values.clone(),
            adam_m: values.iter().map(|v| v * 0.1).collect(),
            adam_v: values.iter().map(|v| v * v).collect(),
            ..NetworkState::default()
        }
    };
    let checkpoint = Checkpoint {
        settings: RunSettings::new(&spec, 1, 10, 10, 100),
        clock: Clock {
            seed: 1,
            step: 13,
            cursor: 3,
        },
        epoch: 1,
        stats: vec![1.0, 2.0, 0.5, 0.25],
        generator: net(&spec.generator, 0.0),
        discriminator: net(&spec.discriminator, 1.0),
        generator_ema: None,
    };
    checkpoint.to_bytes().unwrap()
}

#[test]
fn checkpoint_reader_holds() {
    let started = Instant::now();
    let path = Path::new("mutated.safetensors");
    let valid = tiny_checkpoint();
    let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize + 8;
    let parse = |b: &[u8]| ok_or_line(Checkpoint::from_bytes(path, b));
    let mut extra = Vec::new();
    for declared in [u64::MAX, u64::MAX - 7, 1 << 32, 1 << 62, valid.len() as u64] {
        let mut b = valid.clone();
        b[..8].copy_from_slice(&declared.to_le_bytes());
        extra.push((format!("header length {declared}"), b));
    }
    // Absurd widths in the settings: validation must come before any allocation.
    let text = String::from_utf8_lossy(&valid[8..header_len]).into_owned();
    for (from, to) in [
        (
            "\\\"g_hidden\\\":[3]",
            "\\\"g_hidden\\\":[65536,65536,65536]",
        ),
        ("\\\"batch_size\\\":10", "\\\"batch_size\\\":4294967296"),
    ] {
        if text.contains(from) {
            let header = text.replace(from, to);
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&valid[header_len..]);
            extra.push((format!("settings {to}"), b));
        } else {
            panic!("the header has no {from}: {text}");
        }
    }
    let cases = mutate_all("checkpoint", &valid, header_len, 2500, 2000, &extra, &parse);
    eprintln!(
        "checkpoint: {cases} cases ({} bytes) in {:.2?}",
        valid.len(),
        started.elapsed()
    );
    assert!(cases > 4000);
}

#[test]
fn npy_reader_holds() {
    let started = Instant::now();
    let mut draw = Draw::new(9);
    let data: Vec<u8> = (0..20 * 6 * 6).map(|_| draw.next() as u8).collect();
    let valid = npy::encode_u8(&[20, 6, 6], &data);
    let header_len = 10 + u16::from_le_bytes([valid[8], valid[9]]) as usize;
    let parse = |b: &[u8]| ok_or_line(npy::parse_u8(b));
    let text = String::from_utf8_lossy(&valid[10..header_len]).into_owned();
    let mut extra = Vec::new();
    for shape in [
        "(4294967296, 28, 28)",
        "(18446744073709551615,)",
        "(4294967296, 4294967296, 4294967296)",
        "(-1, 6, 6)",
        "()",
    ] {
        let header = text.replace("(20, 6, 6)", shape);
        let mut b = valid[..8].to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&data);
        extra.push((format!("shape {shape}"), b));
    }
    for declared in [u16::MAX as u32, u32::MAX] {
        let mut b = valid.clone();
        b[6] = 2;
        b.splice(8..10, declared.to_le_bytes());
        extra.push((format!("v2 header length {declared}"), b));
    }
    let cases = mutate_all("npy", &valid, header_len, 5000, 4000, &extra, &parse);
    eprintln!("npy: {cases} cases in {:.2?}", started.elapsed());
    assert!(cases > 4000);
}

#[test]
fn classifier_cache_reader_holds() {
    let started = Instant::now();
    let config = ClassifierConfig {
        input: 784,
        classes: 10,
        hidden: vec![4],
        epochs: 1,
        batch_size: 10,
        lr: 1e-3,
        lr_decay: 0.7,
        seed: 1,
        train_limit: None,
    };
    let len = NetworkLayout::new(&config.spec()).len;
    let classifier = Classifier {
        config: config.clone(),
        params: (0..len).map(|i| (i as f32).cos()).collect(),
        test_accuracy: 0.5,
    };
    let valid = cache::encode(&classifier, 42);
    let parse = |b: &[u8]| cache::decode(b, &config, 42).map(|_| ());
    let mut extra = Vec::new();
    let mut b = valid.clone();
    b[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
    extra.push(("layer count 2^32-1".to_string(), b));
    let cases = mutate_all("classifier cache", &valid, 64, 3000, 2000, &extra, &parse);
    eprintln!(
        "classifier cache: {cases} cases in {:.2?}",
        started.elapsed()
    );
    assert!(cases > 4000);
}
