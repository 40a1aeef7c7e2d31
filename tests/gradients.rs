//! The CPU reference proven against finite differences: every op's gradient,
//! and each whole model's discriminator and generator gradients.
//!
//! Tolerance. Losses are computed in f32. A central difference with step h has
//! truncation error O(h^2 f''') and rounding error about eps_f32 * |L| * k / h,
//! where k ~ 10 covers the rounding of the sums inside L. With h = 1e-2 and
//! |L| ~ 1..5 that is ~3e-4, and the truncation term h^2/6 * f''' is ~2e-5 for
//! |f'''| ~ 1, so we accept |analytic - numeric| <= 1e-3 + 1e-2 * |numeric|
//! (the largest difference seen is ~1.6e-4). Inputs are drawn with unit scale and weights of std 0.3
//! so gradients are O(0.1..1) and a wrong gradient (a missing factor, a wrong
//! sign, a dropped term) is far outside that band; `a_wrong_gradient_is_caught`
//! shows the check can fail. Elements whose perturbation moves a ReLU/LeakyReLU
//! unit across its kink are skipped (and counted), since a difference across a
//! kink measures neither side's slope.

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::{Backend, CeSlots, Clock, Dropout, LossSlots, Mat, Tensor};
use gan_gpu::model::{
    Activation, Init, LayerSlot, LayerSpec, ModelKind, ModelSpec, NetworkLayout, NetworkSpec,
    Overrides,
};
use gan_gpu::nn::Network;
use gan_gpu::rng;

const H: f32 = 1e-2;
const ATOL: f32 = 1e-3;
const RTOL: f32 = 1e-2;

fn random_values(n: usize, std: f32, stream: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| std * rng::normal(99, stream, 0, i))
        .collect()
}

fn upload(b: &mut CpuBackend, data: &[f32]) -> Tensor {
    let t = b.alloc(data.len()).unwrap();
    b.write(t, data).unwrap();
    t
}

/// Checks analytic against numeric, printing the worst case.
fn check(what: &str, pairs: &[(f32, f32)]) {
    // The pair with the largest difference.
    let worst = pairs
        .iter()
        .copied()
        .max_by(|p, q| (p.0 - p.1).abs().total_cmp(&(q.0 - q.1).abs()))
        .unwrap_or((0.0, 0.0));
    let worst = (0.0, worst.0, worst.1);
    let bad: Vec<_> = pairs
        .iter()
        .filter(|(a, n)| (a - n).abs() > ATOL + RTOL * n.abs())
        .collect();
    println!(
        "{what}: {} checked, worst |diff| {:.2e} (analytic {:.5}, numeric {:.5})",
        pairs.len(),
        (worst.1 - worst.2).abs(),
        worst.1,
        worst.2
    );
    assert!(pairs.len() > 3, "{what}: too few elements checked");
    assert!(
        bad.is_empty(),
        "{what}: {} of {} gradients disagree, e.g. {:?}",
        bad.len(),
        pairs.len(),
        &bad[..bad.len().min(5)]
    );
}

/// A one-layer problem: L = sum(w_out * y), y = dropout(act(x W^T + b)).
struct LinearCase {
    b: CpuBackend,
    x: Tensor,
    params: Tensor,
    y: Tensor,
    slot: LayerSlot,
    act: Activation,
    dropout: Option<Dropout>,
    w_out: Vec<f32>,
    rows: usize,
}

impl LinearCase {
    fn new(
        rows: usize,
        n_in: usize,
        n_out: usize,
        act: Activation,
        dropout: Option<Dropout>,
    ) -> Self {
        let mut b = CpuBackend::new();
        b.set_clock(Clock {
            seed: 5,
            step: 3,
            cursor: 0,
        })
        .unwrap();
        let spec = NetworkSpec {
            layers: vec![LayerSpec {
                in_dim: n_in,
                out_dim: n_out,
                activation: act,
                dropout: 0.0,
            }],
            init: Init::Normal { std: 0.3 },
        };
        let layout = NetworkLayout::new(&spec);
        let mut p = layout.initial_params(&spec, 3, 0);
        // Nonzero biases so their gradient path is exercised too.
        for (i, v) in p[layout.layers[0].bias..].iter_mut().enumerate() {
            *v = 0.1 * rng::normal(4, 1, 0, i as u32);
        }
        let x = upload(&mut b, &random_values(rows * n_in, 1.0, 1));
        let params = upload(&mut b, &p);
        let y = b.alloc(rows * n_out).unwrap();
        LinearCase {
            b,
            x,
            params,
            y,
            slot: layout.layers[0],
            act,
            dropout,
            w_out: random_values(rows * n_out, 1.0, 2),
            rows,
        }
    }

    fn x_mat(&self) -> Mat {
        Mat::dense(self.x, self.rows, self.slot.in_dim)
    }

    fn y_mat(&self) -> Mat {
        Mat::dense(self.y, self.rows, self.slot.out_dim)
    }

    fn loss(&mut self) -> f32 {
        let (x, y) = (self.x_mat(), self.y_mat());
        self.b
            .linear_forward(x, self.params, self.slot, self.act, self.dropout, y);
        let out = self.b.read(self.y).unwrap();
        out.iter().zip(&self.w_out).map(|(a, b)| a * b).sum()
    }

    /// Which pre-activations are positive (the ReLU/LeakyReLU linear region).
    fn region(&mut self) -> Vec<bool> {
        let (x, y) = (self.x_mat(), self.y_mat());
        self.b
            .linear_forward(x, self.params, self.slot, Activation::Identity, None, y);
        self.b
            .read(self.y)
            .unwrap()
            .iter()
            .map(|z| *z > 0.0)
            .collect()
    }

    /// Numeric derivative of the loss with respect to element `i` of `t`,
    /// or None when the perturbation moves a unit across a kink.
    fn numeric(&mut self, t: Tensor, i: usize) -> Option<f32> {
        let orig = self.b.read(t).unwrap();
        let base = self.region();
        let eval = |delta: f32, this: &mut Self| {
            let mut v = orig.clone();
            v[i] += delta;
            this.b.write(t, &v).unwrap();
            (this.region() == base, this.loss())
        };
        let (same_plus, plus) = eval(H, self);
        let (same_minus, minus) = eval(-H, self);
        self.b.write(t, &orig).unwrap();
        (same_plus && same_minus).then_some((plus - minus) / (2.0 * H))
    }

    fn analytic(&mut self) -> (Vec<f32>, Vec<f32>) {
        self.loss();
        let dy = upload(&mut self.b, &self.w_out.clone());
        let dy = Mat::dense(dy, self.rows, self.slot.out_dim);
        let grads = self.b.alloc(self.params.len as usize).unwrap();
        let dx = self.b.alloc(self.x.len as usize).unwrap();
        let (x, y) = (self.x_mat(), self.y_mat());
        self.b
            .linear_backward_params(dy, y, self.act, self.dropout, x, grads, self.slot);
        self.b.linear_backward_input(
            dy,
            y,
            self.act,
            self.dropout,
            self.params,
            self.slot,
            Mat::dense(dx, self.rows, self.slot.in_dim),
        );
        (self.b.read(grads).unwrap(), self.b.read(dx).unwrap())
    }
}

fn check_linear(name: &str, act: Activation, dropout: Option<Dropout>) {
    let mut case = LinearCase::new(3, 5, 4, act, dropout);
    let (dparams, dx) = case.analytic();
    let mut pairs = Vec::new();
    for (i, analytic) in dparams.iter().enumerate() {
        if let Some(n) = case.numeric(case.params, i) {
            pairs.push((*analytic, n));
        }
    }
    check(&format!("{name}: dW, db"), &pairs);
    let mut pairs = Vec::new();
    for (i, analytic) in dx.iter().enumerate() {
        if let Some(n) = case.numeric(case.x, i) {
            pairs.push((*analytic, n));
        }
    }
    check(&format!("{name}: dx"), &pairs);
}

#[test]
fn linear_identity() {
    check_linear("identity", Activation::Identity, None);
}

#[test]
fn linear_relu() {
    check_linear("relu", Activation::Relu, None);
}

#[test]
fn linear_leaky_relu() {
    check_linear("leaky relu", Activation::LeakyRelu(0.2), None);
}

#[test]
fn linear_sigmoid() {
    check_linear("sigmoid", Activation::Sigmoid, None);
}

#[test]
fn linear_tanh() {
    check_linear("tanh", Activation::Tanh, None);
}

#[test]
fn linear_leaky_relu_with_dropout() {
    let dropout = Some(Dropout {
        p: 0.3,
        stream: rng::stream::DROPOUT,
    });
    check_linear("leaky relu + dropout", Activation::LeakyRelu(0.2), dropout);
}

#[test]
fn linear_sigmoid_with_dropout() {
    let dropout = Some(Dropout {
        p: 0.5,
        stream: rng::stream::DROPOUT + 1,
    });
    check_linear("sigmoid + dropout", Activation::Sigmoid, dropout);
}

#[test]
fn dropout_drops_the_expected_share_and_scales_the_rest() {
    let mut case = LinearCase::new(40, 5, 50, Activation::Identity, None);
    let plain = {
        case.loss();
        case.b.read(case.y).unwrap()
    };
    case.dropout = Some(Dropout {
        p: 0.3,
        stream: rng::stream::DROPOUT,
    });
    case.loss();
    let dropped = case.b.read(case.y).unwrap();
    let zeros = dropped.iter().filter(|v| **v == 0.0).count();
    let share = zeros as f32 / dropped.len() as f32;
    assert!((share - 0.3).abs() < 0.05, "dropped share {share}");
    for (p, d) in plain.iter().zip(&dropped) {
        if *d != 0.0 {
            assert!(
                (d - p / 0.7).abs() <= 1e-5 * p.abs().max(1.0),
                "kept value {d} != {p} / 0.7"
            );
        }
    }
}

#[test]
fn bce_with_logits_gradient_and_value() {
    let mut b = CpuBackend::new();
    let logits_v = vec![-30.0, -2.0, -0.3, 0.0, 0.7, 3.0, 30.0, 1.5];
    let logits = upload(&mut b, &logits_v);
    let dlogits = b.alloc(8).unwrap();
    let stats = b.alloc(4).unwrap();
    let slots = LossSlots {
        loss: 0,
        prob_first: Some(1),
        prob_second: Some(2),
    };
    let (split, t1, t2, w) = (5u32, 0.9f32, 0.0f32, 0.5f32);
    let loss_at = |b: &mut CpuBackend, v: &[f32]| {
        b.write(logits, v).unwrap();
        b.write(stats, &[0.0; 4]).unwrap();
        b.bce_with_logits(
            Mat::dense(logits, 8, 1),
            Mat::dense(dlogits, 8, 1),
            split,
            t1,
            t2,
            w,
            stats,
            slots,
        );
        b.read(stats).unwrap()
    };
    let s = loss_at(&mut b, &logits_v);
    // Reference value in f64 with the textbook formula (finite for these logits).
    let mut expected = 0.0f64;
    for (r, &l) in logits_v.iter().enumerate() {
        let t = if (r as u32) < split { t1 } else { t2 } as f64;
        let l = l as f64;
        let p = 1.0 / (1.0 + (-l).exp());
        let term = if l.abs() > 20.0 {
            l.max(0.0) - l * t + (-l.abs()).exp().ln_1p()
        } else {
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        };
        expected += w as f64 * term;
    }
    assert!(
        (s[0] as f64 - expected).abs() < 1e-5 * expected.abs().max(1.0),
        "loss {} vs {expected}",
        s[0]
    );
    let analytic = b.read(dlogits).unwrap();
    let mut pairs = Vec::new();
    for i in 0..8 {
        let mut plus = logits_v.clone();
        plus[i] += H;
        let mut minus = logits_v.clone();
        minus[i] -= H;
        let n = (loss_at(&mut b, &plus)[0] - loss_at(&mut b, &minus)[0]) / (2.0 * H);
        pairs.push((analytic[i], n));
    }
    check("bce with logits", &pairs);
    // Mean probabilities of the two parts.
    let sig = |l: f32| 1.0 / (1.0 + (-l).exp());
    let first: f32 = logits_v[..5].iter().map(|&l| sig(l)).sum::<f32>() / 5.0;
    assert!((s[1] - first).abs() < 1e-6);
    assert!(s[0].is_finite() && s[2].is_finite());
}

#[test]
fn softmax_cross_entropy_gradient_value_and_count() {
    // 5 rows of 4 classes, as strided views: logits are columns 1..5 of [5, 6].
    let (n, c) = (5usize, 4usize);
    let mut b = CpuBackend::new();
    let mut logits_v = random_values(n * 6, 2.0, 31);
    logits_v[6 + 2] = 40.0; // a row where exp would overflow without the max shift
    let labels = [2usize, 0, 3, 3, 1];
    let mut targets_v = vec![0.0f32; n * c];
    for (r, &l) in labels.iter().enumerate() {
        targets_v[r * c + l] = 1.0;
    }
    let logits_t = upload(&mut b, &logits_v);
    let targets_t = upload(&mut b, &targets_v);
    let dlogits = b.alloc(n * c).unwrap();
    let stats = b.alloc(3).unwrap();
    let logits = Mat::dense(logits_t, n, 6).cols(1, c);
    let slots = CeSlots {
        loss: 0,
        correct: Some(2),
    };
    let w = 0.25f32;
    let loss_at = |b: &mut CpuBackend, v: &[f32]| {
        b.write(logits_t, v).unwrap();
        b.write(stats, &[0.0; 3]).unwrap();
        b.softmax_cross_entropy(
            logits,
            Mat::dense(targets_t, n, c),
            Mat::dense(dlogits, n, c),
            w,
            stats,
            slots,
        );
        b.read(stats).unwrap()
    };
    let s = loss_at(&mut b, &logits_v);
    // Reference in f64: -log softmax of the label, and the argmax count.
    let (mut expected, mut correct) = (0.0f64, 0.0f32);
    for (r, &label) in labels.iter().enumerate() {
        let row: Vec<f64> = (0..c).map(|k| logits_v[r * 6 + 1 + k] as f64).collect();
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
        expected += w as f64 * (lse - row[label]);
        let arg = (0..c).fold(0, |a, k| if row[k] > row[a] { k } else { a });
        correct += (arg == label) as u8 as f32;
    }
    assert!(
        (s[0] as f64 - expected).abs() < 1e-5 * expected.abs().max(1.0),
        "loss {} vs {expected}",
        s[0]
    );
    assert_eq!(s[2], correct, "correct count");
    assert_eq!(s[1], 0.0, "an unnamed slot was written");
    let analytic = b.read(dlogits).unwrap();
    let mut pairs = Vec::new();
    for r in 0..n {
        for k in 0..c {
            let i = r * 6 + 1 + k;
            let mut plus = logits_v.clone();
            plus[i] += H;
            let mut minus = logits_v.clone();
            minus[i] -= H;
            let numeric = (loss_at(&mut b, &plus)[0] - loss_at(&mut b, &minus)[0]) / (2.0 * H);
            pairs.push((analytic[r * c + k], numeric));
        }
    }
    check("softmax cross-entropy", &pairs);
}

#[test]
fn adam_first_step_moves_each_parameter_by_lr_against_its_gradient() {
    let mut b = CpuBackend::new();
    let p = upload(&mut b, &[1.0, -1.0, 0.5, 2.0]);
    let g = upload(&mut b, &[0.3, -2.0, 1e-3, 0.0]);
    let m = b.alloc(4).unwrap();
    let v = b.alloc(4).unwrap();
    let adam = gan_gpu::model::AdamSettings {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    b.adam_update(p, g, m, v, adam);
    let after = b.read(p).unwrap();
    // With zero moments, m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
    let expected = [
        1.0 - 0.01,
        -1.0 + 0.01,
        0.5 - 0.01 * (1e-3 / (1e-3 + 1e-8)),
        2.0,
    ];
    for (a, e) in after.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{a} vs {e}");
    }
    // A second step with the same gradient at t = 2 gives the same step again.
    b.set_clock(Clock {
        seed: 0,
        step: 1,
        cursor: 0,
    })
    .unwrap();
    b.adam_update(p, g, m, v, adam);
    let after2 = b.read(p).unwrap();
    assert!((after2[0] - (1.0 - 0.02)).abs() < 1e-6, "{}", after2[0]);
}

/// A whole model at small width: D's loss and gradient on a mixed batch, and
/// G's non-saturating loss and gradient through D.
struct ModelCase {
    b: CpuBackend,
    spec: ModelSpec,
    g: Network,
    d: Network,
    z: Tensor,
    x: Tensor,
    dlogits: Tensor,
    dfake: Tensor,
    stats: Tensor,
    rows: usize,
}

impl ModelCase {
    fn new(kind: ModelKind) -> Self {
        let overrides = Overrides {
            batch_size: Some(3),
            noise_dim: Some(6),
            g_hidden: Some(if kind == ModelKind::Deep {
                vec![5, 4]
            } else {
                vec![5]
            }),
            d_hidden: Some(if kind == ModelKind::Deep {
                vec![6, 5, 4]
            } else {
                vec![5]
            }),
            ..Default::default()
        };
        let mut spec = ModelSpec::build(kind, &overrides);
        // A small image keeps the check fast; the ops do not care about 784.
        spec.image_pixels = 8;
        let (gen, disc) = (
            spec.generator.mlp_mut().unwrap(),
            spec.discriminator.mlp_mut().unwrap(),
        );
        gen.layers.last_mut().unwrap().out_dim = 8;
        gen.init = Init::Normal { std: 0.5 };
        disc.layers[0].in_dim = 8 + spec.classes;
        disc.init = Init::Normal { std: 0.5 };
        let rows = spec.batch_size;
        let mut b = CpuBackend::new();
        b.set_clock(Clock {
            seed: 11,
            step: 2,
            cursor: 0,
        })
        .unwrap();
        let g = Network::new(&mut b, spec.generator.mlp().unwrap(), rows, 1, 0).unwrap();
        let d = Network::new(&mut b, spec.discriminator.mlp().unwrap(), 2 * rows, 1, 1).unwrap();
        let mut z = random_values(rows * spec.generator_input(), 1.0, 7);
        let mut x = random_values(2 * rows * spec.discriminator_input(), 1.0, 8);
        if spec.classes > 0 {
            // One-hot labels in the label columns.
            for r in 0..rows {
                for c in 0..spec.classes {
                    z[r * spec.generator_input() + spec.noise_dim + c] =
                        (c == r % spec.classes) as u8 as f32;
                }
            }
            for r in 0..2 * rows {
                for c in 0..spec.classes {
                    x[r * spec.discriminator_input() + spec.image_pixels + c] =
                        (c == (r + 1) % spec.classes) as u8 as f32;
                }
            }
        }
        let z = upload(&mut b, &z);
        let x = upload(&mut b, &x);
        let dlogits = b.alloc(2 * rows).unwrap();
        let dfake = b.alloc(rows * spec.image_pixels).unwrap();
        let stats = b.alloc(4).unwrap();
        ModelCase {
            b,
            spec,
            g,
            d,
            z,
            x,
            dlogits,
            dfake,
            stats,
            rows,
        }
    }

    fn x_all(&self) -> Mat {
        Mat::dense(self.x, 2 * self.rows, self.spec.discriminator_input())
    }

    fn fakes(&self) -> Mat {
        self.x_all().rows(self.rows, self.rows)
    }

    fn z(&self) -> Mat {
        Mat::dense(self.z, self.rows, self.spec.generator_input())
    }

    fn bce(&mut self, logits: Mat, split: u32, t1: f32, t2: f32) -> f32 {
        self.b.write(self.stats, &[0.0; 4]).unwrap();
        let dl = Mat::dense(self.dlogits, logits.rows as usize, 1);
        let slots = LossSlots {
            loss: 0,
            prob_first: None,
            prob_second: None,
        };
        self.b
            .bce_with_logits(logits, dl, split, t1, t2, 1.0, self.stats, slots);
        self.b.read(self.stats).unwrap()[0]
    }

    /// D's loss on the mixed batch (real rows, then fake rows), dropout pass 0.
    fn d_loss(&mut self) -> f32 {
        let logits = self.d.output(2 * self.rows);
        let x_all = self.x_all();
        self.d.forward(&mut self.b, x_all, Some(0), logits);
        let (t_real, t_fake) = (self.spec.real_target, self.spec.fake_target);
        self.bce(logits, self.rows as u32, t_real, t_fake)
    }

    /// G's loss: G(z) into the fake rows, through D (dropout pass 1), target 1.
    fn g_loss(&mut self) -> f32 {
        let fakes_images = self.fakes().cols(0, self.spec.image_pixels);
        let (z, fakes) = (self.z(), self.fakes());
        self.g.forward(&mut self.b, z, None, fakes_images);
        let logits = self.d.output(self.rows);
        self.d.forward(&mut self.b, fakes, Some(1), logits);
        self.bce(logits, self.rows as u32, self.spec.generator_target, 0.0)
    }

    fn d_grads(&mut self) -> Vec<f32> {
        self.d_loss();
        let logits = self.d.output(2 * self.rows);
        let dl = Mat::dense(self.dlogits, 2 * self.rows, 1);
        let x_all = self.x_all();
        self.d
            .backward(&mut self.b, x_all, Some(0), logits, dl, true, None);
        self.b.read(self.d.grads).unwrap()
    }

    fn g_grads(&mut self) -> Vec<f32> {
        self.g_loss();
        let logits = self.d.output(self.rows);
        let dl = Mat::dense(self.dlogits, self.rows, 1);
        let dfake = Mat::dense(self.dfake, self.rows, self.spec.image_pixels);
        let (z, fakes) = (self.z(), self.fakes());
        self.d
            .backward(&mut self.b, fakes, Some(1), logits, dl, false, Some(dfake));
        let fakes_images = fakes.cols(0, self.spec.image_pixels);
        self.g
            .backward(&mut self.b, z, None, fakes_images, dfake, true, None);
        self.b.read(self.g.grads).unwrap()
    }

    /// Which hidden ReLU/LeakyReLU units of both networks are active (y > 0).
    fn activity(&mut self) -> Vec<bool> {
        let mut pattern = Vec::new();
        for net in [&self.g, &self.d] {
            for (i, layer) in net.spec.layers.iter().enumerate() {
                if matches!(
                    layer.activation,
                    Activation::Relu | Activation::LeakyRelu(_)
                ) {
                    let out = self.b.read(net.layer_output(i, 1).tensor).unwrap();
                    pattern.extend(out.iter().map(|v| *v > 0.0));
                }
            }
        }
        pattern
    }

    /// Numeric derivative of `loss` with respect to element i of `params`, or
    /// None when the perturbation switches a hidden unit on or off (the loss is
    /// not differentiable within h there).
    fn numeric(&mut self, params: Tensor, i: usize, loss: fn(&mut Self) -> f32) -> Option<f32> {
        let orig = self.b.read(params).unwrap();
        loss(self);
        let base = self.activity();
        let at = |delta: f32, this: &mut Self| {
            let mut v = orig.clone();
            v[i] += delta;
            this.b.write(params, &v).unwrap();
            let l = loss(this);
            (l, this.activity() == base)
        };
        let (plus, same_plus) = at(H, self);
        let (minus, same_minus) = at(-H, self);
        self.b.write(params, &orig).unwrap();
        (same_plus && same_minus).then_some((plus - minus) / (2.0 * H))
    }
}

/// Every parameter of both networks: analytic against numeric. Elements whose
/// perturbation crosses a ReLU kink are skipped and counted; they must be few.
fn check_model(kind: ModelKind) {
    for network in ["discriminator", "generator"] {
        let mut case = ModelCase::new(kind);
        let (analytic, params, loss): (Vec<f32>, Tensor, fn(&mut ModelCase) -> f32) =
            if network == "discriminator" {
                (case.d_grads(), case.d.params, ModelCase::d_loss)
            } else {
                (case.g_grads(), case.g.params, ModelCase::g_loss)
            };
        let mut pairs = Vec::new();
        for (i, a) in analytic.iter().enumerate() {
            if let Some(n) = case.numeric(params, i, loss) {
                pairs.push((*a, n));
            }
        }
        let skipped = analytic.len() - pairs.len();
        let nonzero = pairs.iter().filter(|(a, _)| a.abs() > 1e-3).count();
        println!("{kind:?} {network}: {} parameters, {skipped} skipped at kinks, {nonzero} with |grad| > 1e-3", analytic.len());
        assert!(
            skipped * 5 <= analytic.len(),
            "{kind:?} {network}: {skipped} of {} skipped",
            analytic.len()
        );
        // Unused label columns and inactive ReLUs have zero gradients; at least
        // a third must be nonzero for the check to prove something.
        assert!(
            nonzero * 3 > pairs.len(),
            "{kind:?} {network}: most gradients are zero, the check would prove little"
        );
        check(&format!("{kind:?} {network}"), &pairs);
    }
}

#[test]
fn vanilla_model_gradients() {
    check_model(ModelKind::Vanilla);
}

#[test]
fn deep_model_gradients() {
    check_model(ModelKind::Deep);
}

#[test]
fn conditional_model_gradients() {
    check_model(ModelKind::Conditional);
}

#[test]
fn a_wrong_gradient_is_caught() {
    // The check itself must be able to fail: scale one analytic gradient by 1.2.
    let mut case = LinearCase::new(3, 5, 4, Activation::Sigmoid, None);
    let (dparams, _) = case.analytic();
    let i = dparams
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    let n = case.numeric(case.params, i).unwrap();
    let result =
        std::panic::catch_unwind(|| check("deliberately wrong", &[(dparams[i] * 1.2, n); 4]));
    assert!(
        result.is_err(),
        "a 20% error in the gradient passed the check"
    );
}
