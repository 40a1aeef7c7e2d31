//! The metrics of `gan_gpu::eval`: the Fréchet distance against closed forms,
//! the classifier score and coverage of real versus collapsed sets, the
//! classifier's cache file (broken, truncated and mismatched files are
//! rebuilt, never used), determinism, and the classifier on the GPU.
//!
//! The classifier here is a tiny one (784 -> 64 -> 32 -> 10, 3000 training
//! images, 3 epochs: about a second on the CPU), so these tests run in
//! `cargo test`; the standard classifier is measured by `gan-gpu eval`.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::backend::Backend;
use gan_gpu::data::{self, Dataset, MnistSplit};
use gan_gpu::eval::{
    cache, frechet_distance, load_or_train, train_classifier, Classifier, ClassifierConfig,
    Evaluator, Gaussian,
};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::rng;
use gan_gpu::train::{generate_images, GanState};

fn tiny_config() -> ClassifierConfig {
    ClassifierConfig {
        input: 784,
        classes: 10,
        hidden: vec![64, 32],
        epochs: 3,
        batch_size: 50,
        lr: 2e-3,
        lr_decay: 0.7,
        seed: 7,
        train_limit: Some(3000),
    }
}

fn mnist() -> &'static MnistSplit {
    static DATA: OnceLock<MnistSplit> = OnceLock::new();
    DATA.get_or_init(|| data::load_mnist(&data::bundled_dir()).expect("bundled MNIST"))
}

/// The first `n` images of a data set, as a smaller data set.
fn test_head() -> &'static Dataset {
    static TEST: OnceLock<Dataset> = OnceLock::new();
    TEST.get_or_init(|| mnist().test.head(1000))
}

fn tiny_classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        train_classifier(
            &mut CpuBackend::new(),
            &tiny_config(),
            &mnist().train,
            test_head(),
            |_| {},
        )
        .expect("tiny classifier")
    })
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `count x dim` features `x = mean + L z`, z standard normal from the counter generator.
fn gaussian_features(count: usize, dim: usize, mean: &[f64], mix: &[f64], key: u32) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * dim);
    for r in 0..count {
        let z: Vec<f64> = (0..dim)
            .map(|c| rng::normal(key, 11, r as u32, c as u32) as f64)
            .collect();
        for i in 0..dim {
            let v: f64 = mean[i] + (0..dim).map(|k| mix[i * dim + k] * z[k]).sum::<f64>();
            out.push(v as f32);
        }
    }
    out
}

fn diag(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut m = vec![0.0; n * n];
    for (i, v) in values.iter().enumerate() {
        m[i * n + i] = *v;
    }
    m
}

fn gaussian(mean: Vec<f64>, cov: Vec<f64>) -> Gaussian {
    Gaussian {
        dim: mean.len(),
        count: 1000,
        mean,
        cov,
    }
}

#[test]
fn fid_of_a_set_against_itself_is_zero() {
    let dim = 32;
    let mix: Vec<f64> = (0..dim * dim)
        .map(|i| rng::normal(3, 12, 0, i as u32) as f64 * 0.3)
        .collect();
    let features = gaussian_features(2000, dim, &vec![0.5; dim], &mix, 1);
    let g = Gaussian::fit(&features, dim).unwrap();
    let fid = frechet_distance(&g, &g).unwrap();
    // A typical FID between different sets is of the order of the total
    // variance Tr(S) (here ~ dim * 0.09 * dim ~ 90); rounding in the f64
    // eigendecompositions is ~1e-13 of it. Require |FID| < 1e-6 * Tr(S).
    let trace: f64 = (0..dim).map(|i| g.cov[i * dim + i]).sum();
    println!("self-FID {fid:.3e}, Tr(S) {trace:.3}");
    assert!(fid.abs() < 1e-6 * trace, "self-FID {fid} vs Tr(S) {trace}");
}

#[test]
fn fid_of_shifted_gaussians_matches_the_closed_form() {
    // Same covariance, shifted mean: FID = ||mu1 - mu2||^2 exactly.
    let n = 6;
    let q = {
        // An orthogonal matrix: the eigenvectors of a random symmetric one.
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = rng::normal(9, 13, i as u32, j as u32) as f64;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        gan_gpu::eval::linalg::symmetric_eigen(&a, n, true)
            .unwrap()
            .1
    };
    let rotate = |d: &[f64]| {
        // Q diag(d) Q^T
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = (0..n).map(|k| q[i * n + k] * d[k] * q[j * n + k]).sum();
            }
        }
        m
    };
    let d1: [f64; 6] = [4.0, 1.0, 0.25, 9.0, 0.0, 2.0];
    let d2: [f64; 6] = [1.0, 1.0, 1.0, 4.0, 0.5, 0.0];
    let mu1: Vec<f64> = vec![0.0, 1.0, -2.0, 0.5, 3.0, 0.0];
    let mu2 = vec![1.0, 1.0, 0.0, 0.5, 0.0, -1.0];
    let shift: f64 = mu1.iter().zip(&mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let same = frechet_distance(
        &gaussian(mu1.clone(), rotate(&d1)),
        &gaussian(mu2.clone(), rotate(&d1)),
    )
    .unwrap();
    assert!((same - shift).abs() < 1e-10, "{same} vs {shift}");
    // Commuting covariances: FID = ||d mu||^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    let expected = shift
        + d1.iter()
            .zip(&d2)
            .map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2))
            .sum::<f64>();
    let fid = frechet_distance(&gaussian(mu1, rotate(&d1)), &gaussian(mu2, rotate(&d2))).unwrap();
    println!("commuting: {fid} vs {expected}");
    assert!((fid - expected).abs() < 1e-10, "{fid} vs {expected}");
    // Non-commuting 2x2: Tr((S1 S2)^(1/2)) = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2)).
    let s1 = vec![2.0, 0.7, 0.7, 1.0];
    let s2 = vec![0.5, -0.3, -0.3, 3.0];
    let tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
    let det = |m: &[f64]| m[0] * m[3] - m[1] * m[2];
    let root = (tr12 + 2.0 * (det(&s1) * det(&s2)).sqrt()).sqrt();
    let expected = 1.0 + (2.0 + 1.0 + 0.5 + 3.0) - 2.0 * root;
    let fid =
        frechet_distance(&gaussian(vec![1.0, 0.0], s1), &gaussian(vec![0.0, 0.0], s2)).unwrap();
    assert!((fid - expected).abs() < 1e-12, "{fid} vs {expected}");
    // Sampled: N(0, I) against N(mu, I) in 8 dimensions, 20000 samples each.
    // The fitted means differ by mu + e with e ~ N(0, 2/20000 I), so the mean
    // term moves by 2 mu.e, of standard deviation 2 |mu| sqrt(1e-4) ~ 0.06;
    // the covariance terms add O(dim / N) ~ 4e-4. Allow 4 standard deviations.
    let dim = 8;
    let mu: Vec<f64> = (0..dim).map(|i| i as f64 * 0.25).collect();
    let a = Gaussian::fit(
        &gaussian_features(20000, dim, &vec![0.0; dim], &diag(&vec![1.0; dim]), 4),
        dim,
    )
    .unwrap();
    let b = Gaussian::fit(
        &gaussian_features(20000, dim, &mu, &diag(&vec![1.0; dim]), 5),
        dim,
    )
    .unwrap();
    let fid = frechet_distance(&a, &b).unwrap();
    let expected: f64 = mu.iter().map(|m| m * m).sum();
    println!("sampled: {fid} vs {expected}");
    assert!((fid - expected).abs() < 0.25, "{fid} vs {expected}");
    // Mismatched dimensions are an error, not a panic.
    assert!(frechet_distance(&a, &gaussian(vec![0.0], vec![1.0])).is_err());
}

#[test]
fn a_collapsed_set_scores_worse_than_real_data() {
    let classifier = tiny_classifier();
    println!(
        "tiny classifier test accuracy {:.2}%",
        100.0 * classifier.test_accuracy
    );
    assert!(
        classifier.test_accuracy > 0.85,
        "tiny classifier: {}",
        classifier.test_accuracy
    );
    let mut b = CpuBackend::new();
    let evaluator = Evaluator::new(&mut b, classifier, test_head()).unwrap();
    let train = mnist().train.head(1000);
    let real = evaluator.real_floor(&mut b, &train, 1000).unwrap();
    // 1000 copies of one training image (a "3"), asked to be 0..9 in turn.
    let three = train.labels.iter().position(|&l| l == 3).unwrap();
    let one = train.image(three).unwrap();
    let collapsed: Vec<u8> = one.repeat(1000);
    let asked: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
    let bad = evaluator
        .evaluate_images(&mut b, &collapsed, Some(&asked))
        .unwrap();
    println!("real: {real:?}\ncollapsed: {bad:?}");
    assert_eq!(real.coverage.covered, 10);
    assert_eq!(bad.coverage.covered, 1);
    // The tiny classifier (~89% test accuracy) is less certain than the
    // standard one (real score ~9.8): its real score is ~7; collapsed is 1.
    assert!(real.score > 5.0, "real score {}", real.score);
    assert!(bad.score < 1.0 + 1e-9, "collapsed score {}", bad.score);
    assert!(
        bad.fid > 10.0 * real.fid,
        "FID real {} collapsed {}",
        real.fid,
        bad.fid
    );
    assert!(real.label_accuracy.unwrap() > 0.85);
    assert!((bad.label_accuracy.unwrap() - 0.1).abs() < 0.01);
    // Labels of the wrong length are an error.
    assert!(evaluator
        .evaluate_images(&mut b, &collapsed, Some(&asked[..10]))
        .is_err());
}

#[test]
fn a_generator_is_evaluated_with_its_requested_digits() {
    // An untrained conditional generator, batch 32: 75 images in 3 chunks.
    let spec = ModelSpec::build(
        ModelKind::Conditional,
        &Overrides {
            batch_size: Some(32),
            g_hidden: Some(vec![16]),
            d_hidden: Some(vec![16]),
            ..Overrides::default()
        },
    );
    let mut b = CpuBackend::new();
    let state = GanState::new(&mut b, &spec, 3, 10).unwrap();
    let out = b.alloc(32 * 784).unwrap();
    let (images, labels) = generate_images(&mut b, &state, out, 75, 9).unwrap();
    let labels = labels.expect("a conditional model asks for digits");
    assert_eq!(images.len(), 75 * 784);
    assert_eq!(labels, (0..75).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    // The same seed gives the same images; another seed others.
    assert_eq!(
        generate_images(&mut b, &state, out, 75, 9).unwrap().0,
        images
    );
    assert_ne!(
        generate_images(&mut b, &state, out, 75, 10).unwrap().0,
        images
    );
    let evaluator = Evaluator::new(&mut b, tiny_classifier(), test_head()).unwrap();
    let m = evaluator
        .evaluate_images(&mut b, &images, Some(&labels))
        .unwrap();
    println!("untrained conditional generator: {m:?}");
    assert!(m.fid.is_finite() && m.fid > 0.0 && m.label_accuracy.is_some());
    // Unconditional models ask for nothing.
    let vanilla = ModelSpec::build(ModelKind::Vanilla, &Overrides::default());
    let state = GanState::new(&mut b, &vanilla, 3, 10).unwrap();
    let out = b.alloc(100 * 784).unwrap();
    assert!(generate_images(&mut b, &state, out, 5, 1)
        .unwrap()
        .1
        .is_none());
}

#[test]
fn training_is_deterministic() {
    let config = ClassifierConfig {
        epochs: 1,
        train_limit: Some(500),
        ..tiny_config()
    };
    let train = |_| {
        train_classifier(
            &mut CpuBackend::new(),
            &config,
            &mnist().train,
            test_head(),
            |_| {},
        )
        .unwrap()
    };
    let (a, b) = (train(0), train(1));
    assert!(a
        .params
        .iter()
        .zip(&b.params)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(a.test_accuracy, b.test_accuracy);
}

#[test]
fn the_cache_is_used_when_valid_and_rebuilt_when_not() {
    let config = ClassifierConfig {
        epochs: 1,
        train_limit: Some(500),
        ..tiny_config()
    };
    let path = temp_path("cache.bin");
    std::fs::remove_file(&path).ok();
    let mut b = CpuBackend::new();
    let train = &mnist().train;
    let mut run = |config: &ClassifierConfig| {
        let mut notices = Vec::new();
        let c = load_or_train(
            &mut b,
            &path,
            config,
            train,
            test_head(),
            |n| notices.push(n.to_string()),
            |_| {},
        )
        .unwrap();
        (c, notices)
    };
    // Missing: trained and written, with a notice.
    let (first, notices) = run(&config);
    assert!(
        notices.len() == 1 && notices[0].contains("no cached classifier"),
        "{notices:?}"
    );
    let good = std::fs::read(&path).unwrap();
    // Valid: loaded silently, identical.
    let (again, notices) = run(&config);
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(again, first);
    // Broken in many ways: each detected, named, and rebuilt into a valid file.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum", flipped),
        ("truncated", good[..good.len() - 100].to_vec()),
        ("truncated", good[..20].to_vec()),
        ("bad magic", bad_magic),
        ("trailing", trailing),
        ("truncated", Vec::new()),
    ];
    for (expected, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let (c, notices) = run(&config);
        println!("{notices:?}");
        assert!(
            notices.len() == 1 && notices[0].contains("unusable") && notices[0].contains(expected),
            "expected a notice about {expected}: {notices:?}"
        );
        assert_eq!(c, first, "the rebuilt classifier differs");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "the file was not rebuilt"
        );
    }
    // Made for another configuration (seed) or other data: rebuilt, not used.
    let other = ClassifierConfig {
        seed: 8,
        ..config.clone()
    };
    let (c, notices) = run(&other);
    assert!(notices[0].contains("another classifier"), "{notices:?}");
    assert_eq!(c.config.seed, 8);
    let data = cache::data_checksum(train, &other);
    assert!(
        cache::decode(&std::fs::read(&path).unwrap(), &other, data ^ 1)
            .unwrap_err()
            .contains("other data")
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn the_classifier_runs_alike_on_the_gpu() {
    let _serial = common::gpu_test_lock();
    let Some(mut gpu) = common::gpu_backend() else {
        return;
    };
    let classifier = tiny_classifier();
    let images = &mnist().test.images[..37 * 784];
    let cpu_out = classifier.run(&mut CpuBackend::new(), images).unwrap();
    let gpu_out = classifier.run(&mut gpu, images).unwrap();
    // Features are sums of 784 and 64 products of O(1) values: the two
    // backends sum in different orders, ~1e-6 relative; probabilities are
    // within 1e-4 of each other for the same reason (softmax of f32 logits).
    let worst_f = cpu_out
        .features
        .iter()
        .zip(&gpu_out.features)
        .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
        .fold(0.0f32, f32::max);
    let worst_p = cpu_out
        .probs
        .iter()
        .zip(&gpu_out.probs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    println!("largest feature difference {worst_f:.2e}, probability {worst_p:.2e}");
    assert!(worst_f < 1e-4 && worst_p < 1e-4);
    assert_eq!(cpu_out.predictions(), gpu_out.predictions());
}

#[test]
fn classifier_training_on_the_gpu_matches_the_cpu() {
    let _serial = common::gpu_test_lock();
    let Some(mut gpu) = common::gpu_backend() else {
        return;
    };
    // 2 epochs of 4 steps on 200 images: gather, forward, softmax
    // cross-entropy, backward and Adam all on the GPU, across an epoch change.
    let config = ClassifierConfig {
        hidden: vec![16, 8],
        epochs: 2,
        train_limit: Some(200),
        ..tiny_config()
    };
    let test = mnist().test.head(50);
    let mut reports = (Vec::new(), Vec::new());
    let cpu = train_classifier(
        &mut CpuBackend::new(),
        &config,
        &mnist().train,
        &test,
        |r| reports.0.push(*r),
    )
    .unwrap();
    let on_gpu = train_classifier(&mut gpu, &config, &mnist().train, &test, |r| {
        reports.1.push(*r)
    })
    .unwrap();
    // After 8 Adam steps of lr 2e-3 the parameters agree to ~1e-6: Adam's
    // step is lr * m / sqrt(v), insensitive to the gradients' last bits
    // except where a gradient is near 0; allow 1e-4 + 1e-3 relative.
    let largest = cpu
        .params
        .iter()
        .zip(&on_gpu.params)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("largest parameter difference {largest:.2e}");
    for (i, (a, b)) in cpu.params.iter().zip(&on_gpu.params).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 + 1e-3 * a.abs(),
            "parameter {i}: cpu {a} gpu {b}"
        );
    }
    for (c, g) in reports.0.iter().zip(&reports.1) {
        assert!((c.mean_loss - g.mean_loss).abs() < 1e-4 * c.mean_loss.max(1.0));
        assert_eq!(c.train_accuracy, g.train_accuracy);
    }
}

#[test]
#[ignore = "trains the standard classifier (about a minute on 2 cores); run with --ignored"]
fn the_standard_classifier_reaches_98_percent() {
    let split = mnist();
    let c = train_classifier(
        &mut CpuBackend::new(),
        &ClassifierConfig::standard(),
        &split.train,
        &split.test,
        |r| println!("{r:?}"),
    )
    .unwrap();
    println!("test accuracy {:.2}%", 100.0 * c.test_accuracy);
    assert!(c.test_accuracy >= 0.98);
}

#[test]
fn eval_every_adds_the_figures_to_the_due_epochs() {
    use gan_gpu::eval::TrainingEvaluator;
    use gan_gpu::train::{EvalSchedule, TrainConfig, Trainer};
    let spec = ModelSpec::build(
        ModelKind::Conditional,
        &Overrides {
            batch_size: Some(16),
            epochs: Some(5),
            g_hidden: Some(vec![16]),
            d_hidden: Some(vec![16]),
            ..Overrides::default()
        },
    );
    let out = temp_path("eval-every");
    let config = TrainConfig {
        spec,
        seed: 4,
        out_dir: out.clone(),
        sample_every: 10,
        max_steps: None,
        grid_batch_stats: false,
    };
    let data = mnist().train.head(64);
    let mut backend = CpuBackend::new();
    let mut trainer = Trainer::new(&mut backend, config, &data).unwrap();
    let evaluator = TrainingEvaluator::new(tiny_classifier().clone(), test_head()).unwrap();
    assert!(trainer
        .set_evaluation(EvalSchedule {
            every: 0,
            count: 50,
            evaluator: Box::new(
                TrainingEvaluator::new(tiny_classifier().clone(), test_head()).unwrap()
            ),
        })
        .is_err());
    trainer
        .set_evaluation(EvalSchedule {
            every: 2,
            count: 50,
            evaluator: Box::new(evaluator),
        })
        .unwrap();
    let mut record =
        gan_gpu::output::RunRecord::new(&out, &ModelSpec::preset(ModelKind::Conditional), &data, 4)
            .unwrap();
    let summary = trainer.run_observed(&mut record).unwrap();
    // Due after epochs 2 and 4, and after the last (5).
    let due: Vec<bool> = summary.reports.iter().map(|r| r.eval.is_some()).collect();
    assert_eq!(due, [false, true, false, true, true]);
    for r in summary.reports.iter().filter_map(|r| r.eval) {
        assert_eq!(r.count, 50);
        assert!(r.fid.is_finite() && r.fid > 0.0, "{r:?}");
        assert!((1.0..=10.0).contains(&r.score), "{r:?}");
        assert!(r.covered <= 10);
        let accuracy = r.label_accuracy.expect("conditional: label accuracy");
        assert!((0.0..=1.0).contains(&accuracy));
    }
    // The same figures, in the epoch line and in metrics.csv.
    let line = summary.reports[1].to_string();
    assert!(line.contains("FID") && line.contains("labels"), "{line}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let row2: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
    let fid: f64 = row2[8].parse().unwrap();
    assert_eq!(fid, summary.reports[1].eval.unwrap().fid);
    std::fs::remove_dir_all(out).ok();
}
