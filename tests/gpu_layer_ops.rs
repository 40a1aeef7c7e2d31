//! The layer ops of the `Backend` trait (convolutions, transposed
//! convolutions, batch norm with a fused activation, the element-wise
//! activation and dropout) and prefix tensor handles, run *through the
//! trait*: each case is one generic `fn run_*<B: Backend>(b: &mut B, ...)`
//! that allocates, writes, records the ops and reads every output back, run
//! once on [`CpuBackend`] (the reference) and once on each GPU API under test
//! (Vulkan and GL, see `common`), and the outputs compared by name.
//!
//! Outputs start as a sentinel, so an element an op never writes fails; the
//! prefix cases fill whole buffers with a marker first and check that the
//! elements past the prefix still hold it on both backends. Shapes are
//! small: lavapipe and llvmpipe run each dispatch on one thread.
//!
//! Tolerances, each `|gpu - cpu| <= atol + rtol * |cpu|`:
//!
//! - Convolution sums of `k` products of values in [-1, 1]: `atol =
//!   2e-6 * (k + 1)`, `rtol = 1e-5`, as `tests/gpu_conv.rs` argues: the two
//!   backends sum in different orders (the GPU's 32-long K tiles, the CPU's
//!   `gemm` blocking and row2im scatter-add), which for these k
//!   (at most 48) errs by well under 1e-5, while an indexing bug (a product
//!   missing or doubled) gives 0.1 or more.
//! - Batch norm: `atol = 1e-5 + 2e-6 * n` for values built on per-channel
//!   sums of n terms, `rtol = 1e-5`, as `tests/gpu_batch_norm.rs` argues: the
//!   GPU sums in f32 in a tree, the CPU in f64. tanh after it adds a few ulp
//!   (a different tanh), far inside that.
//! - Element-wise activation: exact (0, 0) for identity, ReLU and LeakyReLU,
//!   with and without dropout: each output is one rounding of the same
//!   operation on the same f32 inputs (a compare, a product by the slope, a
//!   division by the same f32 `1 - p`), which IEEE arithmetic rounds
//!   identically on both. The one exception WGSL allows is the division:
//!   within 2.5 ulp rather than correctly rounded, so on an adapter that is
//!   not a CPU (lavapipe and llvmpipe are, and divide exactly) the kept
//!   values of a dropout output get `rtol = 3 * f32::EPSILON`. The dropout
//!   mask is the same integer hash on both, so the zeros of every dropout
//!   output must match exactly, on every adapter. Sigmoid and tanh come
//!   from each platform's exp and tanh, which WGSL lets differ from Rust's
//!   by a few ulp: `atol = 1e-6`, `rtol = 1e-6` (8 ulp at 1), and twice that
//!   for the backward, which goes through the forward's already different y.

mod common;

use gan_gpu::backend::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::fault::{Fault, FaultyBackend};
use gan_gpu::backend::gpu::GpuApi;
use gan_gpu::backend::{Backend, BatchNormTensors, Clock, Dropout, Mat, Tensor};
use gan_gpu::model::Activation;
use gan_gpu::rng;

/// Written into every output before an op: an unwritten element fails.
const SENTINEL: f32 = 1.0e6;

/// Written into a whole buffer before a pass on its prefix: elements past
/// the prefix must still hold it afterwards.
const MARKER: f32 = -7.25;

/// The clock every case runs under: a non-zero seed and step, so the dropout
/// mask depends on both.
const CLOCK: Clock = Clock {
    seed: 1234,
    step: 17,
    cursor: 0,
};

/// Deterministic test data in [-1, 1].
fn data(len: usize, key: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| rng::uniform01(89, 4000 + key, len as u32, i) * 2.0 - 1.0)
        .collect()
}

/// A tolerance `|gpu - cpu| <= atol + rtol * |cpu|`.
#[derive(Clone, Copy, Debug)]
struct Tol {
    atol: f32,
    rtol: f32,
    /// A dropout output: its zeros must match exactly, and its kept values
    /// went through a division (see the module docs).
    dropout: bool,
}

const EXACT: Tol = Tol {
    atol: 0.0,
    rtol: 0.0,
    dropout: false,
};

/// A convolution sum of `k` products (see the module docs).
fn conv_tol(k: usize) -> Tol {
    Tol {
        atol: 2e-6 * (k + 1) as f32,
        rtol: 1e-5,
        dropout: false,
    }
}

/// A batch-norm value built on per-channel sums of `n` terms.
fn bn_tol(n: usize) -> Tol {
    Tol {
        atol: 1e-5 + 2e-6 * n as f32,
        rtol: 1e-5,
        dropout: false,
    }
}

/// The element-wise activation ops: exact where the arithmetic is one
/// rounding, a few ulp for the transcendental ones (twice for the backward).
fn act_tol(act: Activation, dropout: Option<Dropout>, backward: bool) -> Tol {
    let t = match act {
        Activation::Sigmoid | Activation::Tanh if backward => 2e-6,
        Activation::Sigmoid | Activation::Tanh => 1e-6,
        _ => 0.0,
    };
    Tol {
        atol: t,
        rtol: t,
        dropout: dropout.is_some(),
    }
}

/// What a case reads back: named outputs with their tolerances.
#[derive(Default)]
struct Outputs(Vec<(String, Vec<f32>, Tol)>);

impl Outputs {
    fn read<B: Backend>(&mut self, b: &mut B, name: &str, t: Tensor, tol: Tol) {
        self.0.push((name.to_string(), b.read(t).unwrap(), tol));
    }
}

fn tensor<B: Backend>(b: &mut B, data: &[f32]) -> Tensor {
    let t = b.alloc(data.len()).unwrap();
    b.write(t, data).unwrap();
    t
}

fn output<B: Backend>(b: &mut B, len: usize) -> Tensor {
    tensor(b, &vec![SENTINEL; len])
}

/// `|gpu - cpu| <= atol + rtol * |cpu|` everywhere (and NaN nowhere), and
/// for a dropout output zero exactly where the CPU's is; prints the largest
/// difference and returns it.
fn compare(name: &str, gpu: &[f32], cpu: &[f32], tol: Tol) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    let mut failures = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let diff = (g - c).abs();
        let mask_differs = tol.dropout && (g == 0.0) != (c == 0.0);
        if mask_differs || !diff.is_finite() || diff > tol.atol + tol.rtol * c.abs() {
            failures.push(i);
        } else if diff > worst.0 {
            worst = (diff, i);
        }
    }
    println!(
        "{name}: {} values, largest |gpu - cpu| = {:.3e} (at {}), atol {:.1e}, rtol {:.0e}",
        gpu.len(),
        worst.0,
        worst.1,
        tol.atol,
        tol.rtol
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
    worst.0
}

/// Compares a GPU backend's outputs with the CPU's by name; returns the
/// largest difference. `divides_exactly`: whether the adapter is a CPU
/// (lavapipe, llvmpipe), whose division is IEEE; elsewhere a dropout
/// output's kept values get WGSL's 2.5 ulp for the division.
fn compare_outputs(
    what: &str,
    api: GpuApi,
    divides_exactly: bool,
    got: &Outputs,
    reference: &Outputs,
) -> f32 {
    assert_eq!(got.0.len(), reference.0.len(), "{what}: outputs differ");
    let mut worst = 0.0f32;
    for ((name, g, tol), (cname, c, _)) in got.0.iter().zip(&reference.0) {
        assert_eq!(name, cname);
        let mut tol = *tol;
        if tol.dropout && !divides_exactly {
            tol.rtol = tol.rtol.max(3.0 * f32::EPSILON);
        }
        worst = worst.max(compare(&format!("[{api}] {what}: {name}"), g, c, tol));
    }
    worst
}

/// Runs the generic case `$run(backend, args...)` on a fresh CPU backend and
/// on each GPU backend of `$gpus` (after setting [`CLOCK`] on each), compares
/// every output by name, checks that the GPU left no error pending, and
/// prints the worst difference and time per API.
macro_rules! check_case {
    ($gpus:expr, $what:expr, $run:ident ( $($arg:expr),* )) => {{
        let what: &str = &$what;
        let mut cpu = CpuBackend::new();
        cpu.set_clock(CLOCK).unwrap();
        let reference = $run(&mut cpu, $($arg),*);
        for (api, gpu) in $gpus.iter_mut() {
            let start = std::time::Instant::now();
            gpu.set_clock(CLOCK).unwrap();
            let got = $run(gpu, $($arg),*);
            gpu.flush().unwrap();
            let divides_exactly = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
            let worst = compare_outputs(what, *api, divides_exactly, &got, &reference);
            println!(
                "[{api}] {what} on {}: largest difference {worst:.3e}, {:.2} s",
                gpu.describe(),
                start.elapsed().as_secs_f64()
            );
        }
    }};
}

/// Every conv2d op through the trait: forward, then backward input and
/// backward params from a given dy, with or without bias.
fn run_conv2d<B: Backend>(b: &mut B, p: &Conv2dParams, with_bias: bool) -> Outputs {
    let x = tensor(b, &data(p.x_len(), 1));
    let w = tensor(b, &data(p.w_len(), 2));
    let bias = with_bias.then(|| tensor(b, &data(p.out_channels, 3)));
    let dy = tensor(b, &data(p.y_len(), 4));
    let y = output(b, p.y_len());
    let dx = output(b, p.x_len());
    let dw = output(b, p.w_len());
    let dbias = with_bias.then(|| output(b, p.out_channels));
    b.conv2d_forward(p, x, w, bias, y);
    b.conv2d_backward_input(p, dy, w, dx);
    b.conv2d_backward_params(p, x, dy, dw, dbias);
    let kk = p.kernel * p.kernel;
    let positions = p.batch * p.out_h() * p.out_w();
    let mut out = Outputs::default();
    out.read(b, "y", y, conv_tol(p.in_channels * kk));
    out.read(b, "dx", dx, conv_tol(p.out_channels * kk));
    out.read(b, "dw", dw, conv_tol(positions));
    if let Some(db) = dbias {
        out.read(b, "dbias", db, conv_tol(positions));
    }
    out
}

/// Every conv_transpose2d op through the trait, with or without bias.
fn run_conv_transpose2d<B: Backend>(
    b: &mut B,
    p: &ConvTranspose2dParams,
    with_bias: bool,
) -> Outputs {
    let x = tensor(b, &data(p.x_len(), 5));
    let w = tensor(b, &data(p.w_len(), 6));
    let bias = with_bias.then(|| tensor(b, &data(p.out_channels, 7)));
    let dy = tensor(b, &data(p.y_len(), 8));
    let y = output(b, p.y_len());
    let dx = output(b, p.x_len());
    let dw = output(b, p.w_len());
    let dbias = with_bias.then(|| output(b, p.out_channels));
    b.conv_transpose2d_forward(p, x, w, bias, y);
    b.conv_transpose2d_backward_input(p, dy, w, dx);
    b.conv_transpose2d_backward_params(p, x, dy, dw, dbias);
    let kk = p.kernel * p.kernel;
    // Each y element sums over in_channels * k * k candidate products
    // (fewer land), each dx element over out_channels * k * k.
    let mut out = Outputs::default();
    out.read(b, "y", y, conv_tol(p.in_channels * kk + 1));
    out.read(b, "dx", dx, conv_tol(p.out_channels * kk));
    out.read(b, "dw", dw, conv_tol(p.batch * p.in_h * p.in_w));
    if let Some(db) = dbias {
        out.read(b, "dbias", db, conv_tol(p.batch * p.out_h() * p.out_w()));
    }
    out
}

/// The tensors of a batch-norm layer of `channels`: gamma, beta and
/// running estimates from test data (running_var positive), saved
/// statistics as sentinels.
fn bn_tensors<B: Backend>(b: &mut B, channels: usize) -> BatchNormTensors {
    let gamma: Vec<f32> = data(channels, 11).iter().map(|v| 1.0 + 0.5 * v).collect();
    let running_var: Vec<f32> = data(channels, 14).iter().map(|v| 1.0 + 0.5 * v).collect();
    BatchNormTensors {
        gamma: tensor(b, &gamma),
        beta: tensor(b, &data(channels, 12)),
        running_mean: tensor(b, &data(channels, 13)),
        running_var: tensor(b, &running_var),
        saved_mean: output(b, channels),
        saved_inv_std: output(b, channels),
    }
}

/// Batch norm through the trait: the training forward with `act` (y, the
/// saved statistics, the updated running estimates), the evaluation forward
/// from those estimates, and the backward from a given dy.
fn run_batch_norm<B: Backend>(b: &mut B, p: &BatchNormParams, act: Activation) -> Outputs {
    let bn = bn_tensors(b, p.channels);
    // x in [-0.5, 1.5]: a non-zero mean.
    let xs: Vec<f32> = data(p.len(), 15).iter().map(|v| v + 0.5).collect();
    let x = tensor(b, &xs);
    let dy = tensor(b, &data(p.len(), 16));
    let y = output(b, p.len());
    let y_eval = output(b, p.len());
    let dx = output(b, p.len());
    let dgamma = output(b, p.channels);
    let dbeta = output(b, p.channels);
    b.batch_norm_forward_train(p, act, x, &bn, y);
    b.batch_norm_forward_eval(p, act, x, &bn, y_eval);
    b.batch_norm_backward(p, x, dy, &bn, dx, dgamma, dbeta);
    let n = p.count();
    let mut out = Outputs::default();
    out.read(b, "train y", y, bn_tol(n));
    out.read(b, "saved_mean", bn.saved_mean, bn_tol(n));
    out.read(b, "saved_inv_std", bn.saved_inv_std, bn_tol(n));
    out.read(b, "running_mean", bn.running_mean, bn_tol(n));
    out.read(b, "running_var", bn.running_var, bn_tol(n));
    out.read(b, "eval y", y_eval, bn_tol(n));
    out.read(b, "dx", dx, bn_tol(n));
    out.read(b, "dgamma", dgamma, bn_tol(n));
    out.read(b, "dbeta", dbeta, bn_tol(n));
    out
}

/// Rows and columns of the activation cases: 7 x 37 = 259 elements, more
/// than one 256-thread workgroup.
const ROWS: usize = 7;
const COLS: usize = 37;

/// The element-wise ops through the trait on strided views: x is a column
/// range of a wider buffer (offset 3, stride 41), y dense, dx at offset 5
/// with stride 40; the elements around the views must keep their sentinel.
fn run_activation<B: Backend>(b: &mut B, act: Activation, dropout: Option<Dropout>) -> Outputs {
    let (stride_x, stride_dx) = (COLS + 4, COLS + 3);
    // x in [-3, 3]: both signs and the flat parts of sigmoid and tanh.
    let xs: Vec<f32> = data(3 + ROWS * stride_x, 21)
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    let x_buf = tensor(b, &xs);
    let x = Mat {
        tensor: x_buf,
        offset: 3,
        rows: ROWS as u32,
        cols: COLS as u32,
        stride: stride_x as u32,
    };
    let y_buf = output(b, ROWS * COLS);
    let y = Mat::dense(y_buf, ROWS, COLS);
    let dy_buf = tensor(b, &data(ROWS * COLS, 22));
    let dy = Mat::dense(dy_buf, ROWS, COLS);
    let dx_buf = output(b, 5 + ROWS * stride_dx + 2);
    let dx = Mat {
        tensor: dx_buf,
        offset: 5,
        rows: ROWS as u32,
        cols: COLS as u32,
        stride: stride_dx as u32,
    };
    b.activation_forward(x, act, dropout, y);
    b.activation_backward(dy, y, act, dropout, dx);
    let mut out = Outputs::default();
    out.read(b, "y", y_buf, act_tol(act, dropout, false));
    out.read(b, "dx", dx_buf, act_tol(act, dropout, true));
    out
}

/// The forward with x and y in one tensor: x its first ROWS rows, y the
/// next ROWS (views of one buffer that do not overlap are allowed).
fn run_activation_one_tensor<B: Backend>(b: &mut B, act: Activation) -> Outputs {
    let mut values: Vec<f32> = data(ROWS * COLS, 23).iter().map(|v| 3.0 * v).collect();
    values.extend(vec![SENTINEL; ROWS * COLS]);
    let buf = tensor(b, &values);
    let whole = Mat::dense(buf, 2 * ROWS, COLS);
    let dropout = Some(Dropout { p: 0.3, stream: 6 });
    b.activation_forward(whole.rows(0, ROWS), act, dropout, whole.rows(ROWS, ROWS));
    let mut out = Outputs::default();
    out.read(b, "x ; y", buf, act_tol(act, dropout, false));
    out
}

/// Buffers sized for 4 rows (images) used with 2 through prefix handles: a
/// conv2d forward, a training batch norm with LeakyReLU, an activation with
/// dropout and its backward, and a prefix write and read. Every buffer is
/// filled with [`MARKER`] first; the whole buffers are read back, so the
/// comparison sees both the results and the untouched tails (checked
/// against the marker here too, on each backend).
fn run_prefix<B: Backend>(b: &mut B) -> Outputs {
    let (max_rows, rows) = (4, 2);
    let p = Conv2dParams {
        batch: rows,
        in_channels: 2,
        out_channels: 3,
        in_h: 5,
        in_w: 5,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let (x_row, y_row) = (p.x_len() / rows, p.y_len() / rows);
    let marked = |b: &mut B, len: usize| tensor(b, &vec![MARKER; len]);
    let x = marked(b, max_rows * x_row);
    let conv_y = marked(b, max_rows * y_row);
    let bn_y = marked(b, max_rows * y_row);
    let act_y = marked(b, max_rows * y_row);
    let act_dx = marked(b, max_rows * y_row);
    // A prefix write leaves the rest of the buffer alone...
    b.write(x.prefix(rows * x_row), &data(rows * x_row, 31))
        .unwrap();
    // ... and a prefix read returns the prefix.
    assert_eq!(b.read(x.prefix(3)).unwrap().len(), 3);
    let w = tensor(b, &data(p.w_len(), 32));
    let bias = tensor(b, &data(p.out_channels, 33));
    let n = |t: Tensor| t.prefix(rows * y_row);
    b.conv2d_forward(&p, x.prefix(rows * x_row), w, Some(bias), n(conv_y));
    let bp = BatchNormParams {
        batch: rows,
        channels: p.out_channels,
        spatial: p.out_h() * p.out_w(),
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    let bn = bn_tensors(b, bp.channels);
    b.batch_norm_forward_train(&bp, Activation::LeakyRelu(0.3), n(conv_y), &bn, n(bn_y));
    let dropout = Some(Dropout { p: 0.3, stream: 9 });
    let mat = |t: Tensor| Mat::dense(n(t), rows, y_row);
    b.activation_forward(mat(bn_y), Activation::Tanh, dropout, mat(act_y));
    b.activation_backward(
        mat(bn_y),
        mat(act_y),
        Activation::Tanh,
        dropout,
        mat(act_dx),
    );
    let mut out = Outputs::default();
    let k = p.in_channels * p.kernel * p.kernel;
    out.read(b, "x (written prefix)", x, EXACT);
    out.read(b, "conv y", conv_y, conv_tol(k));
    // Normalised conv outputs: the conv's error (~1e-5) scaled by inv_std.
    let bn_tol = Tol {
        atol: 1e-4,
        rtol: 1e-5,
        dropout: false,
    };
    out.read(b, "bn y", bn_y, bn_tol);
    out.read(b, "running_mean", bn.running_mean, bn_tol);
    out.read(b, "running_var", bn.running_var, bn_tol);
    let dropout_tol = Tol {
        dropout: true,
        ..bn_tol
    };
    out.read(b, "act y", act_y, dropout_tol);
    out.read(b, "act dx", act_dx, dropout_tol);
    for (name, values, _) in &out.0 {
        let (len, used) = if name.starts_with('x') {
            (max_rows * x_row, rows * x_row)
        } else if name.starts_with("running") {
            continue;
        } else {
            (max_rows * y_row, rows * y_row)
        };
        assert_eq!(values.len(), len, "{name}");
        assert!(
            values[used..].iter().all(|&v| v == MARKER),
            "{name}: an element past the prefix was written"
        );
        assert!(
            values[..used].iter().all(|&v| v != MARKER && v != SENTINEL),
            "{name}: an element of the prefix was not written"
        );
    }
    out
}

/// Every case on every API under test. The GPU backends are opened once
/// for all of them: opening one builds every pipeline.
#[test]
fn layer_ops_match_the_cpu_through_the_trait() {
    let _serial = common::gpu_test_lock();
    let mut gpus = common::gpu_backends();
    let start = std::time::Instant::now();

    let conv = Conv2dParams {
        batch: 2,
        in_channels: 3,
        out_channels: 4,
        in_h: 7,
        in_w: 6,
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    conv.validate().unwrap();
    for with_bias in [true, false] {
        check_case!(
            gpus,
            format!("conv2d bias {with_bias}"),
            run_conv2d(&conv, with_bias)
        );
    }

    for (output_padding, with_bias) in [(0, true), (1, false)] {
        let t = ConvTranspose2dParams {
            batch: 2,
            in_channels: 4,
            out_channels: 3,
            in_h: 3,
            in_w: 4,
            kernel: 4,
            stride: 2,
            padding: 1,
            output_padding,
        };
        t.validate().unwrap();
        check_case!(
            gpus,
            format!("conv_transpose2d output_padding {output_padding} bias {with_bias}"),
            run_conv_transpose2d(&t, with_bias)
        );
    }

    let bn = BatchNormParams {
        batch: 3,
        channels: 2,
        spatial: 9,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    for act in [Activation::LeakyRelu(0.3), Activation::Tanh] {
        check_case!(
            gpus,
            format!("batch_norm {act:?}"),
            run_batch_norm(&bn, act)
        );
    }

    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.3),
        Activation::Sigmoid,
        Activation::Tanh,
    ];
    for act in acts {
        for dropout in [None, Some(Dropout { p: 0.3, stream: 5 })] {
            check_case!(
                gpus,
                format!("activation {act:?} dropout {dropout:?}"),
                run_activation(act, dropout)
            );
        }
    }

    check_case!(
        gpus,
        "activation x and y in one tensor",
        run_activation_one_tensor(Activation::LeakyRelu(0.3))
    );
    check_case!(gpus, "prefix handles (2 of 4 rows)", run_prefix());
    println!("all cases: {:.1} s", start.elapsed().as_secs_f64());
}

/// The fault wrapper passes every layer op through to its backend: the same
/// cases on `FaultyBackend<CpuBackend>` without a fault give the CPU's
/// results bit for bit; once its device is lost, an op is dropped (it does
/// not panic on the inner backend) and the next flush reports the loss.
#[test]
fn the_fault_wrapper_passes_the_layer_ops_through() {
    let reference = |run: &dyn Fn(&mut CpuBackend) -> Outputs| {
        let mut cpu = CpuBackend::new();
        cpu.set_clock(CLOCK).unwrap();
        run(&mut cpu)
    };
    let conv = Conv2dParams {
        batch: 2,
        in_channels: 2,
        out_channels: 3,
        in_h: 5,
        in_w: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let t = ConvTranspose2dParams {
        batch: 2,
        in_channels: 3,
        out_channels: 2,
        in_h: 3,
        in_w: 3,
        kernel: 3,
        stride: 2,
        padding: 1,
        output_padding: 1,
    };
    let bn = BatchNormParams {
        batch: 2,
        channels: 3,
        spatial: 4,
        momentum: 0.1,
        eps: 1e-5,
        groups: 1,
    };
    let d = Some(Dropout { p: 0.3, stream: 5 });
    let mut faulty = FaultyBackend::new(CpuBackend::new(), None);
    faulty.set_clock(CLOCK).unwrap();
    let cases: [(&str, Outputs, Outputs); 5] = [
        (
            "conv2d",
            run_conv2d(&mut faulty, &conv, true),
            reference(&|b| run_conv2d(b, &conv, true)),
        ),
        (
            "conv_transpose2d",
            run_conv_transpose2d(&mut faulty, &t, true),
            reference(&|b| run_conv_transpose2d(b, &t, true)),
        ),
        (
            "batch_norm",
            run_batch_norm(&mut faulty, &bn, Activation::Tanh),
            reference(&|b| run_batch_norm(b, &bn, Activation::Tanh)),
        ),
        (
            "activation",
            run_activation(&mut faulty, Activation::Sigmoid, d),
            reference(&|b| run_activation(b, Activation::Sigmoid, d)),
        ),
        (
            "prefix",
            run_prefix(&mut faulty),
            reference(&|b| run_prefix(b)),
        ),
    ];
    for (what, got, expected) in &cases {
        for ((name, g, _), (_, c, _)) in got.0.iter().zip(&expected.0) {
            compare(&format!("faulty {what}: {name}"), g, c, EXACT);
        }
    }
    // Lost: the op is dropped (passed through, this misuse, a y of another
    // shape, would panic on the CPU) and the loss surfaces at the flush.
    let mut lost = FaultyBackend::new(CpuBackend::new(), Some(Fault::DeviceLostAtStep(1)));
    let x = tensor(&mut lost, &[1.0, -2.0]);
    let y = output(&mut lost, 2);
    lost.end_step();
    lost.activation_forward(
        Mat::dense(x, 1, 2),
        Activation::Relu,
        None,
        Mat::dense(y, 1, 1),
    );
    assert!(lost.flush().is_err(), "the device is lost");
}

/// The dropout cases drop what they should: about p of the elements, by
/// the mask `rng::dropout_keep` defines (checked here on the CPU reference,
/// which the GPU must then match exactly), and the backward is zero exactly
/// where the forward dropped.
#[test]
fn dropout_drops_by_the_documented_mask() {
    let mut cpu = CpuBackend::new();
    cpu.set_clock(CLOCK).unwrap();
    let d = Dropout { p: 0.3, stream: 5 };
    let out = run_activation(&mut cpu, Activation::Identity, Some(d));
    let y = &out.0[0].1;
    let xs: Vec<f32> = data(3 + ROWS * (COLS + 4), 21)
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    let threshold = rng::dropout_threshold(d.p);
    let mut dropped = 0;
    for r in 0..ROWS {
        for c in 0..COLS {
            let i = (r * COLS + c) as u32;
            let keep = rng::dropout_keep(CLOCK.seed, d.stream, CLOCK.step, i, threshold);
            let x = xs[3 + r * (COLS + 4) + c];
            let expected = if keep { x / (1.0 - d.p) } else { 0.0 };
            assert_eq!(y[r * COLS + c], expected, "({r}, {c})");
            dropped += usize::from(!keep);
            let dx = out.0[1].1[5 + r * (COLS + 3) + c];
            assert_eq!(dx == 0.0, !keep, "dx ({r}, {c})");
        }
    }
    let share = dropped as f64 / (ROWS * COLS) as f64;
    assert!((0.2..0.4).contains(&share), "dropped {share}");
}

/// The comparison can fail: one element off by one ulp fails an exact
/// tolerance, a NaN fails any, a conv result with one product missing
/// fails its sum tolerance.
#[test]
fn the_comparison_detects_a_wrong_element() {
    let cpu = data(50, 41);
    let fails = |gpu: Vec<f32>, tol: Tol| {
        let cpu = cpu.clone();
        std::panic::catch_unwind(move || compare("self-test", &gpu, &cpu, tol)).is_err()
    };
    assert!(!fails(cpu.clone(), EXACT));
    let mut one_ulp = cpu.clone();
    one_ulp[17] = f32::from_bits(one_ulp[17].to_bits() + 1);
    assert!(fails(one_ulp, EXACT));
    let mut nan = cpu.clone();
    nan[3] = f32::NAN;
    assert!(fails(nan, conv_tol(48)));
    let mut missing = cpu.clone();
    missing[0] -= 0.05;
    assert!(fails(missing, conv_tol(48)));
    // A dropped element kept (or a kept one dropped), however small.
    let mut cpu_dropped = cpu.clone();
    cpu_dropped[9] = 0.0;
    let mut kept = cpu_dropped.clone();
    kept[9] = 1e-9;
    let loose = Tol {
        atol: 1e-3,
        rtol: 1e-3,
        dropout: true,
    };
    let cpu = cpu_dropped;
    assert!(std::panic::catch_unwind(|| compare("self-test", &kept, &cpu, loose)).is_err());
}

/// Misuse through the trait records nothing and surfaces at the next flush
/// on the GPU: a conv output of the wrong length, a handle longer than its
/// buffer (a forged prefix), an activation whose output is its input.
#[test]
fn misuse_through_the_trait_is_reported_at_flush() {
    let _serial = common::gpu_test_lock();
    for (api, mut gpu) in common::gpu_backends() {
        let p = Conv2dParams {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            in_h: 3,
            in_w: 3,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let x = gpu.alloc(9).unwrap();
        let w = gpu.alloc(9).unwrap();
        let y = gpu.alloc(2).unwrap();
        let dispatches = gpu.dispatches();
        gpu.conv2d_forward(&p, x, w, None, y);
        let e = gpu.flush().unwrap_err().to_string();
        assert!(e.contains("conv2d_forward"), "[{api}] {e}");
        let mut forged = x;
        forged.len += 1;
        gpu.activation_forward(
            Mat::dense(forged, 1, 10),
            Activation::Relu,
            None,
            Mat::dense(w.prefix(9), 1, 9),
        );
        let e = gpu.flush().unwrap_err().to_string();
        assert!(e.contains("handle of 10 elements"), "[{api}] {e}");
        assert!(gpu.read(forged).is_err(), "[{api}] read of a forged handle");
        assert!(gpu.write(forged, &[0.0; 10]).is_err(), "[{api}] write");
        gpu.activation_forward(
            Mat::dense(x, 1, 9),
            Activation::Relu,
            None,
            Mat::dense(x, 1, 9),
        );
        let e = gpu.flush().unwrap_err().to_string();
        assert!(e.contains("activation_forward"), "[{api}] {e}");
        assert_eq!(gpu.dispatches(), dispatches, "[{api}] misuse recorded work");
        gpu.flush().unwrap();
    }
}
