//! `gan-gpu sample --noise FILE.npy`: the generator's inputs from a float32
//! array, so the same z can be fed to gan-gpu and to PyTorch. The images
//! match a forward pass of the checkpoint's tensors written here from their
//! PyTorch names alone (Linear, ReLU, Linear, sigmoid), the seeded noise
//! written to a file reproduces the default sample, and bad noise files are
//! one-line errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gan-gpu");
/// The test model's noise width and hidden width.
const NOISE: usize = 8;
const HIDDEN: usize = 16;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-noise-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("GAN_GPU_DISK_FULL_AFTER")
        .output()
        .unwrap()
}

/// A `.npy` file: `descr` elements of `shape`, `data` their bytes.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn f32_npy(rows: usize, cols: usize, values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy("<f4", &[rows, cols], &data)
}

/// The uint8 data of an `.npy` file that `sample` wrote.
fn npy_data(path: &Path) -> Vec<u8> {
    gan_gpu::data::npy::read_u8(path).unwrap().data
}

/// A tensor of the checkpoint by its PyTorch name.
fn tensor(file: &[u8], name: &str) -> Vec<f32> {
    let tensors = safetensors::SafeTensors::deserialize(file).unwrap();
    let view = tensors.tensor(name).unwrap();
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Trains a small vanilla GAN for a few CPU steps and returns its checkpoint.
fn checkpoint(root: &Path) -> PathBuf {
    let data = common::idx_data_dir(root, 40, 10);
    let out = root.join("run");
    let (noise, hidden) = (NOISE.to_string(), HIDDEN.to_string());
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--batch-size",
        "4",
        "--noise-dim",
        &noise,
        "--g-hidden",
        &hidden,
        "--d-hidden",
        &hidden,
        "--max-steps",
        "7",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.join("checkpoint.safetensors")
}

#[test]
fn noise_from_a_file_gives_the_checkpoints_forward_pass() {
    let root = temp_dir("forward");
    let ckpt = checkpoint(&root);
    let rows = 6;
    let z: Vec<f32> = (0..rows * NOISE)
        .map(|i| ((i * 7919) % 97) as f32 / 24.0 - 2.0)
        .collect();
    let z_path = root.join("z.npy");
    std::fs::write(&z_path, f32_npy(rows, NOISE, &z)).unwrap();
    let out = root.join("images.npy");
    let o = run(&[
        "sample",
        "--backend",
        "cpu",
        "--checkpoint",
        s(&ckpt),
        "--noise",
        s(&z_path),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{rows} images")));
    let images = npy_data(&out);
    assert_eq!(images.len(), rows * 784);

    // The vanilla generator as PyTorch holds it: Linear(8, 16), ReLU,
    // Linear(16, 784), Sigmoid; pixels are round(255 y).
    let file = std::fs::read(&ckpt).unwrap();
    let (w0, b0) = (
        tensor(&file, "generator.0.weight"),
        tensor(&file, "generator.0.bias"),
    );
    let (w2, b2) = (
        tensor(&file, "generator.2.weight"),
        tensor(&file, "generator.2.bias"),
    );
    let mut worst = 0i32;
    let mut differ = 0;
    for r in 0..rows {
        let x = &z[r * NOISE..(r + 1) * NOISE];
        let h: Vec<f64> = (0..HIDDEN)
            .map(|j| {
                let a = f64::from(b0[j])
                    + (0..NOISE)
                        .map(|c| f64::from(w0[j * NOISE + c]) * f64::from(x[c]))
                        .sum::<f64>();
                a.max(0.0)
            })
            .collect();
        for p in 0..784 {
            let a = f64::from(b2[p])
                + (0..HIDDEN)
                    .map(|j| f64::from(w2[p * HIDDEN + j]) * h[j])
                    .sum::<f64>();
            let y = 1.0 / (1.0 + (-a).exp());
            let expected = (255.0 * y).round().clamp(0.0, 255.0) as i32;
            let d = (i32::from(images[r * 784 + p]) - expected).abs();
            worst = worst.max(d);
            differ += usize::from(d > 0);
        }
    }
    // f32 sums against f64 ones: a pixel within a rounding error of a
    // half level may land on the other side (one level), no more.
    eprintln!("{differ} of {} pixels one level off", rows * 784);
    assert!(worst <= 1, "a pixel differs by {worst} levels");
    assert!(differ * 100 <= rows * 784, "{differ} pixels differ");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_seeded_noise_written_to_a_file_reproduces_the_default_sample() {
    let root = temp_dir("seeded");
    let ckpt = checkpoint(&root);
    let saved = gan_gpu::checkpoint::Checkpoint::load(&ckpt).unwrap();
    let spec = saved.spec(&ckpt).unwrap();
    let rows = 12;
    let inputs = gan_gpu::model::generator_inputs(
        &spec,
        saved.settings.seed,
        gan_gpu::model::SAMPLE_NOISE_STEP,
        0,
        rows,
        |_| 0,
    );
    let z_path = root.join("z.npy");
    std::fs::write(&z_path, f32_npy(rows, NOISE, &inputs)).unwrap();
    let (from_file, seeded) = (root.join("file.npy"), root.join("seeded.npy"));
    let n = rows.to_string();
    let common_args = ["sample", "--backend", "cpu", "--checkpoint", s(&ckpt)];
    let mut a = common_args.to_vec();
    a.extend(["--noise", s(&z_path), "--out", s(&from_file)]);
    assert!(run(&a).status.success());
    let mut b = common_args.to_vec();
    b.extend(["--n", &n, "--out", s(&seeded)]);
    assert!(run(&b).status.success());
    assert_eq!(npy_data(&from_file), npy_data(&seeded));
    // --n takes the first rows of the file.
    let mut c = common_args.to_vec();
    let first = root.join("first.npy");
    c.extend(["--noise", s(&z_path), "--n", "5", "--out", s(&first)]);
    assert!(run(&c).status.success());
    assert_eq!(npy_data(&first), npy_data(&seeded)[..5 * 784]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_noise_files_are_one_line_errors() {
    let root = temp_dir("bad");
    let ckpt = checkpoint(&root);
    let write = |name: &str, bytes: Vec<u8>| {
        let path = root.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (
            write("width.npy", f32_npy(2, 7, &[0.0; 14])),
            vec![],
            "expected (N, 8)",
        ),
        (
            write("bytes.npy", npy("|u1", &[2, 8], &[0; 16])),
            vec![],
            "only float32",
        ),
        (
            write(
                "nan.npy",
                f32_npy(1, 8, &[0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0]),
            ),
            vec![],
            "not finite",
        ),
        (
            write("short.npy", f32_npy(2, 8, &[0.0; 16])),
            vec!["--n", "3"],
            "holds 2 noise rows",
        ),
        (
            write("cut.npy", f32_npy(2, 8, &[0.0; 16])[..100].to_vec()),
            vec![],
            "truncated",
        ),
        (
            write("seed.npy", f32_npy(2, 8, &[0.0; 16])),
            vec!["--seed", "3"],
            "--seed",
        ),
    ];
    for (path, extra, needle) in &cases {
        let out = root.join("out.npy");
        let mut args = vec!["sample", "--backend", "cpu", "--checkpoint", s(&ckpt)];
        args.extend(["--noise", s(path), "--out", s(&out)]);
        args.extend(extra);
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{path:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains(needle),
            "{path:?}: wanted {needle:?}: {stderr}"
        );
        let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
        assert_eq!(errors, 1, "{stderr}");
    }
    std::fs::remove_dir_all(&root).ok();
}
