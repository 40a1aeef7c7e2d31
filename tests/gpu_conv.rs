//! The GPU convolutions (`GpuBackend::conv2d_*`, `conv_transpose2d_*`, the
//! implicit-GEMM kernels of `shaders/conv.wgsl`) against their CPU twins in
//! `backend::cpu::conv`, on awkward shapes: channels 1, 3, 7 and 40 (more
//! than one 32-wide tile), sizes 1, 5, 7, 14 and 28, non-square inputs,
//! kernels 3, 4 and 5, strides 1 and 2, paddings 0-2, output padding 0 and
//! 1, batches 1, 2, 3 and 5, with and without bias. Each case runs every op
//! of its kind on every API under test (see `common`), prints its largest
//! difference and compares with `|gpu - cpu| <= atol + rtol * |cpu|`.
//! Outputs start as a sentinel, so an element the kernel never writes fails.
//! The cases run twice: with the kernels the backend picks (the direct ones
//! on lavapipe and llvmpipe, which are CPUs), on Vulkan and GL; and with the
//! tiled workgroup-memory kernels forced, which GPUs run, on Vulkan (see
//! `on_tiled`). The sizes are small: lavapipe and llvmpipe run each dispatch
//! on one thread.

mod common;

use gan_gpu::backend::conv_params::{Conv2dParams, ConvTranspose2dParams};
use gan_gpu::backend::cpu::conv as cpu;
use gan_gpu::backend::gpu::{GpuApi, GpuBackend, GpuOptions, MatmulVariant};
use gan_gpu::backend::{Backend, Tensor};
use gan_gpu::error::Error;
use gan_gpu::rng;

/// Relative part of every tolerance: 1e-5 is about 84 ulps of f32, room for
/// a fused multiply-add where the CPU rounds twice.
const RTOL: f32 = 1e-5;

/// Absolute tolerance of a sum of `k` products of values in [-1, 1], summed
/// in a different order on the two backends (32-long K tiles on the GPU;
/// the `gemm` crate's blocking, then row2im's scatter-add or the bias added
/// after the product, on the CPU). Each rounding is at most eps/2 of the
/// running partial sum, which for random signs stays near sqrt(k) / 2; over
/// k additions that is about k * eps * sqrt(k) / 4 in the worst alignment,
/// 3e-4 at k = 1568, the longest sum here. We allow 2e-6 per term plus one
/// (the bias): 3e-3 at k = 1568, 4e-6 at k = 1; still far below what any
/// indexing bug gives (a whole product missing or doubled, ~0.1 or more).
fn sum_atol(k: usize) -> f32 {
    2e-6 * (k + 1) as f32
}

/// Written into every output before an op: an unwritten element fails.
const SENTINEL: f32 = 1.0e6;

/// Deterministic test data in [-1, 1].
fn data(len: usize, key: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| rng::uniform01(91, 2000 + key, len as u32, i) * 2.0 - 1.0)
        .collect()
}

/// The largest |gpu - cpu| over all checks, relative to its tolerance.
#[derive(Default)]
struct Worst {
    diff: f32,
    of_tolerance: f32,
}

/// One GPU backend and the worst difference seen on it.
struct Gpu {
    gpu: GpuBackend,
    api: GpuApi,
    worst: Worst,
}

impl Gpu {
    fn tensor(&mut self, data: &[f32]) -> Tensor {
        let t = self.gpu.alloc(data.len()).unwrap();
        self.gpu.write(t, data).unwrap();
        t
    }

    fn output(&mut self, len: usize) -> Tensor {
        self.tensor(&vec![SENTINEL; len])
    }

    /// Reads `t` and compares it with the CPU's `cpu` within tolerance.
    fn check(&mut self, name: &str, t: Tensor, cpu: &[f32], k: usize) {
        let gpu = self.gpu.read(t).unwrap();
        let name = format!("[{}] {name}", self.api);
        let (diff, of_tolerance) = compare(&name, &gpu, cpu, sum_atol(k), RTOL);
        if of_tolerance > self.worst.of_tolerance {
            self.worst.of_tolerance = of_tolerance;
        }
        self.worst.diff = self.worst.diff.max(diff);
    }
}

/// `|gpu - cpu| <= atol + rtol * |cpu|` everywhere; prints the largest
/// difference and returns it with the largest difference / tolerance.
fn compare(name: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) -> (f32, f32) {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    let mut of_tolerance = 0.0f32;
    let mut failures = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let diff = (g - c).abs();
        let tolerance = atol + rtol * c.abs();
        if !diff.is_finite() || diff > tolerance {
            failures.push(i);
            continue;
        }
        if diff > worst.0 {
            worst = (diff, i);
        }
        of_tolerance = of_tolerance.max(diff / tolerance);
    }
    println!(
        "{name}: {} values, largest |gpu - cpu| = {:.3e} (at {}, cpu {}), atol {atol:.1e}, rtol {rtol:.0e}",
        gpu.len(),
        worst.0,
        worst.1,
        cpu.get(worst.1).copied().unwrap_or(0.0)
    );
    if let Some(&i) = failures.first() {
        panic!(
            "{name}: {} of {} values out of tolerance; first at {i}: gpu {} cpu {}",
            failures.len(),
            gpu.len(),
            gpu[i],
            cpu[i]
        );
    }
    (worst.0, of_tolerance)
}

/// Runs `body` on every API under test, one at a time, with the kernels the
/// backend picks for its adapter (on lavapipe and llvmpipe, CPUs, the direct
/// ones), then checks that no error was left pending; prints the worst
/// difference per API.
fn on_every_api(what: &str, body: impl Fn(&mut Gpu)) {
    let _serial = common::gpu_test_lock();
    run_on(what, common::gpu_backends(), body);
}

/// Runs `body` with the tiled (workgroup-memory) kernels forced, as a GPU
/// adapter runs them: on the first API of `GAN_GPU_TEST_API`, default
/// Vulkan, where lavapipe builds them in about a second. Not on llvmpipe's
/// GL: its GLSL path takes 20-60 s to compile each kernel with workgroup
/// memory and barriers (the tiled matmul too), minutes for this file.
fn on_tiled(what: &str, body: impl Fn(&mut Gpu)) {
    let _serial = common::gpu_test_lock();
    let api = std::env::var("GAN_GPU_TEST_API")
        .ok()
        .and_then(|l| l.split(',').next().map(str::to_string))
        .map_or(GpuApi::Vulkan, |a| GpuApi::parse(&a).unwrap());
    let options = GpuOptions {
        matmul: Some(MatmulVariant::Tiled),
        ..GpuOptions::with_api(api)
    };
    let gpu = match GpuBackend::new(&options) {
        Ok(g) => g,
        Err(e) if !common::in_ci() => {
            eprintln!("skipped: no GPU adapter ({e})");
            return;
        }
        Err(e) => panic!("{e} (CI=true: GPU tests must run)"),
    };
    let info = gpu.adapter_info();
    if info.backend == wgpu::Backend::Gl && info.device_type == wgpu::DeviceType::Cpu {
        println!("not testing the tiled kernels on llvmpipe's GL (see on_tiled)");
        return;
    }
    assert_eq!(gpu.matmul_variant(), MatmulVariant::Tiled);
    run_on(&format!("{what} (tiled)"), vec![(api, gpu)], body);
}

fn run_on(what: &str, backends: Vec<(GpuApi, GpuBackend)>, body: impl Fn(&mut Gpu)) {
    for (api, gpu) in backends {
        let start = std::time::Instant::now();
        let mut g = Gpu {
            gpu,
            api,
            worst: Worst::default(),
        };
        body(&mut g);
        g.gpu.flush().unwrap();
        println!(
            "[{api}] {what} on {} ({} kernels): largest difference {:.3e}, at most {:.2} of its \
             tolerance, {:.1} s",
            g.gpu.adapter_info().name,
            g.gpu.matmul_variant().name(),
            g.worst.diff,
            g.worst.of_tolerance,
            start.elapsed().as_secs_f64()
        );
    }
}

/// (batch, in, out, h, w, kernel, stride, padding, bias).
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize, bool);

const CONV_CASES: [ConvCase; 11] = [
    (1, 1, 1, 1, 1, 3, 1, 1, true),
    (3, 3, 7, 5, 5, 3, 1, 0, true),
    (5, 7, 3, 7, 7, 5, 2, 2, false),
    (2, 3, 1, 7, 5, 4, 2, 1, true),
    (1, 1, 7, 5, 7, 5, 1, 2, false),
    (3, 7, 7, 5, 5, 4, 1, 0, true),
    (3, 7, 1, 1, 1, 5, 2, 2, true),
    (2, 3, 40, 5, 5, 3, 2, 1, true),
    (2, 40, 3, 7, 7, 3, 1, 1, false),
    (1, 1, 7, 28, 28, 3, 1, 1, true),
    (2, 3, 3, 28, 28, 5, 2, 2, false),
];

fn conv_params(case: &ConvCase) -> (Conv2dParams, bool) {
    let &(batch, in_channels, out_channels, in_h, in_w, kernel, stride, padding, bias) = case;
    let p = Conv2dParams {
        batch,
        in_channels,
        out_channels,
        in_h,
        in_w,
        kernel,
        stride,
        padding,
    };
    p.validate().unwrap();
    (p, bias)
}

/// Every conv2d op on every case of [`CONV_CASES`].
fn conv2d_cases(g: &mut Gpu) {
    for (i, case) in CONV_CASES.iter().enumerate() {
        let (p, has_bias) = conv_params(case);
        let key = 10 * i as u32;
        let x = data(p.x_len(), key);
        let w = data(p.w_len(), key + 1);
        let bias = has_bias.then(|| data(p.out_channels, key + 2));
        let dy = data(p.y_len(), key + 3);
        let name = format!(
            "B={} {}->{} {}x{} k={} s={} p={} bias={has_bias}",
            p.batch, p.in_channels, p.out_channels, p.in_h, p.in_w, p.kernel, p.stride, p.padding
        );
        let kk = p.kernel * p.kernel;
        let positions = p.batch * p.out_h() * p.out_w();

        let mut y = vec![0.0; p.y_len()];
        cpu::conv2d_forward(&p, &x, &w, bias.as_deref(), &mut y);
        let (gx, gw, gdy) = (g.tensor(&x), g.tensor(&w), g.tensor(&dy));
        let gb = bias.as_ref().map(|b| g.tensor(b));
        let gy = g.output(p.y_len());
        g.gpu.try_conv2d_forward(&p, gx, gw, gb, gy).unwrap();
        g.check(
            &format!("conv2d_forward {name}"),
            gy,
            &y,
            p.in_channels * kk,
        );

        let mut dx = vec![0.0; p.x_len()];
        cpu::conv2d_backward_input(&p, &dy, &w, &mut dx);
        let gdx = g.output(p.x_len());
        g.gpu.try_conv2d_backward_input(&p, gdy, gw, gdx).unwrap();
        let name_in = format!("conv2d_backward_input {name}");
        g.check(&name_in, gdx, &dx, p.out_channels * kk);

        let mut dw = vec![0.0; p.w_len()];
        let mut db = vec![0.0; p.out_channels];
        let dbias = has_bias.then_some(&mut db[..]);
        cpu::conv2d_backward_params(&p, &x, &dy, &mut dw, dbias);
        let gdw = g.output(p.w_len());
        let gdb = has_bias.then(|| g.output(p.out_channels));
        g.gpu
            .try_conv2d_backward_params(&p, gx, gdy, gdw, gdb)
            .unwrap();
        let name_params = format!("conv2d_backward_params {name}");
        g.check(&format!("{name_params} dw"), gdw, &dw, positions);
        if let Some(gdb) = gdb {
            g.check(&format!("{name_params} dbias"), gdb, &db, positions);
        }
    }
}

#[test]
fn conv2d_matches_cpu() {
    on_every_api("conv2d", conv2d_cases);
}

#[test]
fn tiled_conv2d_matches_cpu() {
    on_tiled("conv2d", conv2d_cases);
}

/// (batch, in, out, h, w, kernel, stride, padding, output_padding, bias).
type TransposeCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
);

const TRANSPOSE_CASES: [TransposeCase; 10] = [
    (1, 1, 1, 1, 1, 3, 1, 0, 0, true),
    (3, 3, 7, 5, 5, 4, 2, 1, 0, true),
    (5, 7, 3, 7, 7, 5, 2, 2, 1, false),
    (2, 3, 1, 5, 7, 3, 2, 1, 1, true),
    (1, 7, 7, 5, 5, 3, 1, 2, 0, false),
    (3, 1, 3, 1, 1, 4, 2, 0, 1, true),
    (2, 40, 3, 5, 5, 4, 2, 1, 0, true),
    (2, 3, 40, 5, 5, 3, 1, 1, 0, false),
    (1, 7, 1, 14, 14, 4, 2, 1, 0, true),
    (1, 1, 3, 28, 28, 3, 1, 1, 0, true),
];

fn transpose_params(case: &TransposeCase) -> (ConvTranspose2dParams, bool) {
    let &(
        batch,
        in_channels,
        out_channels,
        in_h,
        in_w,
        kernel,
        stride,
        padding,
        output_padding,
        bias,
    ) = case;
    let p = ConvTranspose2dParams {
        batch,
        in_channels,
        out_channels,
        in_h,
        in_w,
        kernel,
        stride,
        padding,
        output_padding,
    };
    p.validate().unwrap();
    (p, bias)
}

/// Every conv_transpose2d op on every case of [`TRANSPOSE_CASES`].
fn conv_transpose2d_cases(g: &mut Gpu) {
    for (i, case) in TRANSPOSE_CASES.iter().enumerate() {
        let (p, has_bias) = transpose_params(case);
        let key = 500 + 10 * i as u32;
        let x = data(p.x_len(), key);
        let w = data(p.w_len(), key + 1);
        let bias = has_bias.then(|| data(p.out_channels, key + 2));
        let dy = data(p.y_len(), key + 3);
        let name = format!(
            "B={} {}->{} {}x{}->{}x{} k={} s={} p={} op={} bias={has_bias}",
            p.batch,
            p.in_channels,
            p.out_channels,
            p.in_h,
            p.in_w,
            p.out_h(),
            p.out_w(),
            p.kernel,
            p.stride,
            p.padding,
            p.output_padding
        );
        let kk = p.kernel * p.kernel;
        let positions = p.batch * p.in_h * p.in_w;

        let mut y = vec![0.0; p.y_len()];
        cpu::conv_transpose2d_forward(&p, &x, &w, bias.as_deref(), &mut y);
        let (gx, gw, gdy) = (g.tensor(&x), g.tensor(&w), g.tensor(&dy));
        let gb = bias.as_ref().map(|b| g.tensor(b));
        let gy = g.output(p.y_len());
        g.gpu
            .try_conv_transpose2d_forward(&p, gx, gw, gb, gy)
            .unwrap();
        let name_fwd = format!("conv_transpose2d_forward {name}");
        g.check(&name_fwd, gy, &y, p.in_channels * kk);

        let mut dx = vec![0.0; p.x_len()];
        cpu::conv_transpose2d_backward_input(&p, &dy, &w, &mut dx);
        let gdx = g.output(p.x_len());
        g.gpu
            .try_conv_transpose2d_backward_input(&p, gdy, gw, gdx)
            .unwrap();
        let name_in = format!("conv_transpose2d_backward_input {name}");
        g.check(&name_in, gdx, &dx, p.out_channels * kk);

        let mut dw = vec![0.0; p.w_len()];
        let mut db = vec![0.0; p.out_channels];
        let dbias = has_bias.then_some(&mut db[..]);
        cpu::conv_transpose2d_backward_params(&p, &x, &dy, &mut dw, dbias);
        let gdw = g.output(p.w_len());
        let gdb = has_bias.then(|| g.output(p.out_channels));
        g.gpu
            .try_conv_transpose2d_backward_params(&p, gx, gdy, gdw, gdb)
            .unwrap();
        let name_params = format!("conv_transpose2d_backward_params {name}");
        g.check(&format!("{name_params} dw"), gdw, &dw, positions);
        if let Some(gdb) = gdb {
            let out_positions = p.batch * p.out_h() * p.out_w();
            g.check(&format!("{name_params} dbias"), gdb, &db, out_positions);
        }
    }
}

#[test]
fn conv_transpose2d_matches_cpu() {
    on_every_api("conv_transpose2d", conv_transpose2d_cases);
}

#[test]
fn tiled_conv_transpose2d_matches_cpu() {
    on_tiled("conv_transpose2d", conv_transpose2d_cases);
}

/// Wrong lengths, an output that is also an input and impossible
/// parameters come back as errors at the call, record nothing, and leave
/// the backend usable (the next flush is clean).
#[test]
fn conv_rejects_bad_arguments() {
    on_every_api("bad arguments", |g| {
        let (p, _) = conv_params(&CONV_CASES[1]);
        let x = g.tensor(&data(p.x_len(), 1));
        let w = g.tensor(&data(p.w_len(), 2));
        let y = g.output(p.y_len());
        let short = g.output(p.y_len() - 1);
        let bias = g.tensor(&data(p.out_channels + 1, 3));
        let dispatches = g.gpu.dispatches();
        let api = g.api;
        let expect = |r: Result<(), Error>, what: &str| {
            let e = r.expect_err(what).to_string();
            println!("[{api}] {what}: {e}");
        };
        expect(g.gpu.try_conv2d_forward(&p, x, w, None, short), "short y");
        expect(
            g.gpu.try_conv2d_forward(&p, x, w, Some(bias), y),
            "long bias",
        );
        expect(
            g.gpu.try_conv2d_forward(&p, w, x, None, y),
            "x and w swapped",
        );
        expect(g.gpu.try_conv2d_backward_input(&p, y, w, y), "dx is dy");
        expect(
            g.gpu.try_conv2d_backward_params(&p, x, y, x, None),
            "dw of the wrong length",
        );
        let too_small = Conv2dParams {
            padding: 0,
            in_h: 2,
            ..p
        };
        expect(
            g.gpu.try_conv2d_forward(&too_small, x, w, None, y),
            "input under the kernel",
        );
        let (t, _) = transpose_params(&TRANSPOSE_CASES[1]);
        let bad_op = ConvTranspose2dParams {
            output_padding: 2,
            ..t
        };
        expect(
            g.gpu.try_conv_transpose2d_forward(&bad_op, x, w, None, y),
            "output_padding >= stride",
        );
        assert_eq!(
            g.gpu.dispatches(),
            dispatches,
            "a rejected op recorded work"
        );
        g.gpu.flush().unwrap();
        g.gpu.try_conv2d_forward(&p, x, w, None, y).unwrap();
        g.gpu.flush().unwrap();
    });
}
