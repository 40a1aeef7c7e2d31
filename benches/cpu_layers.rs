//! Wall time of each CPU reference layer op at the shapes of the `dcgan`
//! model's step at batch 256 (the G's transposed convolutions, the D's
//! convolutions over 512 images, batch norm over 12,544 features and over
//! channels): where the CPU path's step time goes, op by op.
//! `cargo bench --bench cpu_layers`; `RAYON_NUM_THREADS` sets the threads.

use std::time::Instant;

use gan_gpu::backend::conv_params::{BatchNormParams, Conv2dParams, ConvTranspose2dParams};
use gan_gpu::backend::cpu::{batch_norm, conv};

fn values(n: usize, salt: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32) * 0.37 + salt).sin()).collect()
}

/// Median of `reps` timed runs of `f`, in milliseconds, after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn conv_transpose(name: &str, p: ConvTranspose2dParams) {
    let conv = p.as_conv();
    let (x, w, dy) = (
        values(p.x_len(), 0.1),
        values(conv.w_len(), 0.2),
        values(p.y_len(), 0.3),
    );
    let (mut y, mut dx, mut dw) = (
        vec![0.0; p.y_len()],
        vec![0.0; p.x_len()],
        vec![0.0; conv.w_len()],
    );
    let flops = 2.0 * (conv.w_len() * conv.out_h() * conv.out_w() * p.batch) as f64;
    let fwd = time(3, || {
        conv::conv_transpose2d_forward(&p, &x, &w, None, &mut y)
    });
    let bin = time(3, || {
        conv::conv_transpose2d_backward_input(&p, &dy, &w, &mut dx)
    });
    let bpar = time(3, || {
        conv::conv_transpose2d_backward_params(&p, &x, &dy, &mut dw, None)
    });
    report(name, flops, [fwd, bin, bpar]);
}

fn conv2d(name: &str, p: Conv2dParams) {
    let (x, w, dy) = (
        values(p.x_len(), 0.1),
        values(p.w_len(), 0.2),
        values(p.y_len(), 0.3),
    );
    let (mut y, mut dx, mut dw) = (
        vec![0.0; p.y_len()],
        vec![0.0; p.x_len()],
        vec![0.0; p.w_len()],
    );
    let flops = 2.0 * (p.w_len() * p.out_h() * p.out_w() * p.batch) as f64;
    let fwd = time(3, || conv::conv2d_forward(&p, &x, &w, None, &mut y));
    let bin = time(3, || conv::conv2d_backward_input(&p, &dy, &w, &mut dx));
    let bpar = time(3, || {
        conv::conv2d_backward_params(&p, &x, &dy, &mut dw, None)
    });
    report(name, flops, [fwd, bin, bpar]);
}

fn report(name: &str, flops: f64, [fwd, bin, bpar]: [f64; 3]) {
    let rate = |ms: f64| flops / ms / 1e6;
    println!(
        "{name:34} forward {fwd:7.1} ms ({:5.0} GFLOP/s)  backward input {bin:7.1} ms ({:5.0})  backward params {bpar:7.1} ms ({:5.0})",
        rate(fwd),
        rate(bin),
        rate(bpar)
    );
}

fn norm(name: &str, p: BatchNormParams) {
    let c = p.channels;
    let (x, dy) = (values(p.len(), 0.1), values(p.len(), 0.2));
    let (gamma, beta) = (vec![1.0; c], vec![0.0; c]);
    let (mut y, mut dx) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    let (mut mean, mut inv_std) = (vec![0.0; p.stats_len()], vec![0.0; p.stats_len()]);
    let (mut running_mean, mut running_var) = (vec![0.0; c], vec![1.0; c]);
    let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
    let fwd = time(5, || {
        batch_norm::batch_norm_forward_train(
            &p,
            &x,
            &gamma,
            &beta,
            &mut y,
            &mut mean,
            &mut inv_std,
            &mut running_mean,
            &mut running_var,
        )
    });
    let bwd = time(5, || {
        batch_norm::batch_norm_backward(
            &p,
            &x,
            &dy,
            &gamma,
            &mean,
            &inv_std,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        )
    });
    println!("{name:34} forward {fwd:7.1} ms  backward {bwd:7.1} ms");
}

fn main() {
    let batch = 256;
    let t = |in_channels, out_channels, in_hw, stride, output_padding| ConvTranspose2dParams {
        batch,
        in_channels,
        out_channels,
        in_h: in_hw,
        in_w: in_hw,
        kernel: 5,
        stride,
        padding: 2,
        output_padding,
    };
    conv_transpose("G ConvT 256->128 7x7 s1", t(256, 128, 7, 1, 0));
    conv_transpose("G ConvT 128->64 7->14 s2", t(128, 64, 7, 2, 1));
    conv_transpose("G ConvT 64->1 14->28 s2", t(64, 1, 14, 2, 1));
    let c = |in_channels, out_channels, in_hw| Conv2dParams {
        batch: 2 * batch,
        in_channels,
        out_channels,
        in_h: in_hw,
        in_w: in_hw,
        kernel: 5,
        stride: 2,
        padding: 2,
    };
    conv2d("D Conv 1->64 28->14 (512 images)", c(1, 64, 28));
    conv2d("D Conv 64->128 14->7 (512 images)", c(64, 128, 14));
    let bn = |channels, spatial| BatchNormParams {
        batch,
        channels,
        spatial,
        momentum: 0.01,
        eps: 1e-3,
        groups: 1,
    };
    norm("G BatchNorm1d 12544", bn(12544, 1));
    norm("G BatchNorm2d 128 x 7x7", bn(128, 49));
    norm("G BatchNorm2d 64 x 14x14", bn(64, 196));
}
