//! Every bad input gets a clear error: a battery of broken files, flags,
//! output paths and backends run against the binary. Each must exit non-zero
//! with stderr starting `error: `, naming the file or flag, without a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-bad-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx_images(count: u32, side: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [count, side, side] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..count * side * side).map(|i| (i * 7 % 256) as u8));
    b
}

fn idx_labels(count: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&count.to_be_bytes());
    b.extend((0..count).map(|i| (i % 10) as u8));
    b
}

/// A data directory of `n` images of side x side, with `edit` applied to the
/// training images and labels.
fn data_dir(
    root: &Path,
    name: &str,
    n: u32,
    side: u32,
    edit: impl Fn(&mut Vec<u8>, &mut Vec<u8>),
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut images, mut labels) = (idx_images(n, side), idx_labels(n));
    edit(&mut images, &mut labels);
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images(10, side)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(10)).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A case: arguments, extra environment, and what the message must name.
struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    needle: String,
}

fn case(name: &str, args: &[&str], needle: &str) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        needle: needle.to_string(),
    }
}

/// Runs every case; reports all failures at once.
fn run_cases(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gan-gpu"));
        cmd.args(&c.args).env_remove("GAN_GPU_INJECT_FAULT");
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run gan-gpu");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let first = stderr.lines().next().unwrap_or_default();
        let problem = if out.status.success() {
            Some("exit code 0")
        } else if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            Some("panicked")
        } else if !first.starts_with("error: ") {
            Some("first line is not `error: `")
        } else if !stderr.contains(&c.needle) {
            Some("the message does not name the file or flag")
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{}: {problem} (wanted {:?})\n  args: {:?}\n  stderr: {stderr}",
                c.name, c.needle, c.args
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A tiny CPU training run's checkpoint (40 images, batch 10, widths 8).
fn tiny_checkpoint(root: &Path, data: &Path) -> PathBuf {
    let out = root.join("good-run");
    let o = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .args([
            "train",
            "--backend",
            "cpu",
            "--data",
            &s(data),
            "--batch-size",
            "10",
        ])
        .args([
            "--g-hidden",
            "8",
            "--d-hidden",
            "8",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            &s(&out),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.join("checkpoint.safetensors")
}

/// The checkpoint with metadata `key` set to `value` (data unchanged).
fn with_metadata(bytes: &[u8], key: &str, value: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"][key] = serde_json::Value::String(value.to_string());
    let text = serde_json::to_string(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn every_bad_input_gets_a_clear_error() {
    let root = temp_dir("battery");
    let out = s(&root.join("out"));
    let good = data_dir(&root, "good", 40, 28, |_, _| {});
    let checkpoint = tiny_checkpoint(&root, &good);
    let ck_bytes = std::fs::read(&checkpoint).unwrap();
    let n_header = u64::from_le_bytes(ck_bytes[..8].try_into().unwrap()) as usize;

    // A training run on a data directory.
    let train_on = |dir: &Path| -> Vec<String> {
        [
            "train",
            "--backend",
            "cpu",
            "--max-steps",
            "1",
            "--batch-size",
            "10",
            "--g-hidden",
            "8",
            "--d-hidden",
            "8",
            "--out",
            &out,
            "--data",
            &s(dir),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let data_case = |name: &str, edit: &dyn Fn(&mut Vec<u8>, &mut Vec<u8>), needle: &str| {
        let dir = data_dir(&root, name, 40, 28, edit);
        Case {
            name: name.to_string(),
            args: train_on(&dir),
            env: Vec::new(),
            needle: needle.to_string(),
        }
    };
    let images = "train-images-idx3-ubyte";
    let labels = "train-labels-idx1-ubyte";
    let mut cases = vec![
        // IDX data sets.
        case(
            "missing data directory",
            &[
                "train",
                "--backend",
                "cpu",
                "--data",
                &s(&root.join("nope")),
                "--out",
                &out,
            ],
            "nope",
        ),
        data_case("empty images", &|i, _| i.clear(), images),
        data_case("truncated images", &|i, _| i.truncate(5000), images),
        data_case("truncated header", &|i, _| i.truncate(10), images),
        data_case("wrong magic", &|i, _| i[0] = 0x50, images),
        data_case("wrong element type", &|i, _| i[2] = 0x0D, images),
        data_case("wrong dimension count", &|i, _| i[3] = 2, images),
        data_case(
            "zero image count",
            &|i, _| i[4..8].copy_from_slice(&0u32.to_be_bytes()),
            images,
        ),
        data_case(
            "huge image count",
            &|i, _| i[4..8].copy_from_slice(&u32::MAX.to_be_bytes()),
            images,
        ),
        data_case(
            "trailing bytes",
            &|i, _| i.extend_from_slice(&[1, 2, 3]),
            images,
        ),
        data_case("count mismatch", &|_, l| *l = idx_labels(30), "labels"),
        data_case("bad label", &|_, l| l[10] = 12, labels),
        data_case("empty labels", &|_, l| l.clear(), labels),
        data_case(
            "corrupt gzip images",
            &|i, _| {
                let mut g = gzip(i);
                let n = g.len();
                g[n / 2] ^= 0xff;
                g.truncate(n - 4);
                *i = g;
            },
            images,
        ),
        data_case(
            "truncated gzip images",
            &|i, _| {
                let g = gzip(i);
                *i = g[..g.len() / 2].to_vec();
            },
            images,
        ),
    ];
    let small = data_dir(&root, "ten-by-ten", 40, 10, |_, _| {});
    // The MLP models take any image size; the convolutional ones draw one.
    let mut dcgan_on_small: Vec<String> = ["train", "--backend", "cpu", "--model", "dcgan"]
        .into_iter()
        .chain(["--max-steps", "1", "--batch-size", "10", "--out"])
        .map(String::from)
        .collect();
    dcgan_on_small.extend([out.clone(), "--data".into(), s(&small)]);
    cases.push(Case {
        name: "10x10 images for the 28x28 dcgan".into(),
        args: dcgan_on_small,
        env: Vec::new(),
        needle: "10x10".into(),
    });
    let mut missing_file = train_on(&good);
    let only_labels = root.join("only-labels");
    std::fs::create_dir_all(&only_labels).unwrap();
    std::fs::write(only_labels.join(labels), idx_labels(40)).unwrap();
    *missing_file.last_mut().unwrap() = s(&only_labels);
    cases.push(Case {
        name: "missing images file".into(),
        args: missing_file,
        env: Vec::new(),
        needle: "train-images".into(),
    });

    // Checkpoints.
    let ck = |name: &str, bytes: Vec<u8>| {
        let path = root.join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let resume = |path: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--backend",
            "cpu",
            "--data",
            &s(&good),
            "--out",
            &out,
            "--resume",
            &s(path),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let mut header_flip = ck_bytes.clone();
    header_flip[8 + n_header / 2] ^= 0x55;
    let mut data_flip = ck_bytes.clone();
    let at = ck_bytes.len() - 100;
    data_flip[at] ^= 0x01;
    let mut nan_data = ck_bytes.clone();
    nan_data[at] = 0xff;
    nan_data[at + 1] = 0xff;
    nan_data[at + 2] = 0xff;
    nan_data[at + 3] = 0x7f;
    let checkpoint_cases = [
        (
            "missing checkpoint",
            root.join("nope.safetensors"),
            "nope.safetensors",
        ),
        (
            "empty checkpoint",
            ck("empty", Vec::new()),
            "empty.safetensors",
        ),
        (
            "truncated checkpoint",
            ck("truncated", ck_bytes[..ck_bytes.len() / 2].to_vec()),
            "truncated.safetensors",
        ),
        (
            "header byte flip",
            ck("header-flip", header_flip),
            "header-flip.safetensors",
        ),
        (
            "data byte flip",
            ck("data-flip", data_flip),
            "data-flip.safetensors",
        ),
        (
            "newer format",
            ck("newer", with_metadata(&ck_bytes, "format_version", "2")),
            "newer.safetensors",
        ),
        (
            "not a gan-gpu checkpoint",
            ck(
                "foreign",
                with_metadata(&ck_bytes, "format", "something else"),
            ),
            "foreign.safetensors",
        ),
    ];
    for (name, path, needle) in checkpoint_cases {
        cases.push(Case {
            name: name.into(),
            args: resume(&path, &[]),
            env: Vec::new(),
            needle: needle.into(),
        });
        cases.push(Case {
            name: format!("sample: {name}"),
            args: [
                "sample",
                "--backend",
                "cpu",
                "--checkpoint",
                &s(&path),
                "--out",
                &s(&root.join("x.png")),
            ]
            .iter()
            .map(|x| x.to_string())
            .collect(),
            env: Vec::new(),
            needle: needle.into(),
        });
    }
    let _ = nan_data;
    cases.push(Case {
        name: "resume: another width".into(),
        args: resume(&checkpoint, &["--g-hidden", "16"]),
        env: Vec::new(),
        needle: "--g-hidden".into(),
    });
    cases.push(Case {
        name: "resume: another model".into(),
        args: resume(&checkpoint, &["--model", "deep"]),
        env: Vec::new(),
        needle: "--model".into(),
    });
    cases.push(Case {
        name: "resume: another lr".into(),
        args: resume(&checkpoint, &["--lr", "0.1"]),
        env: Vec::new(),
        needle: "--lr".into(),
    });
    cases.push(Case {
        name: "resume: a finished run".into(),
        args: resume(&checkpoint, &[]),
        env: Vec::new(),
        needle: "--epochs".into(),
    });

    // Eval and sample inputs.
    let file = |name: &str, bytes: &[u8]| {
        let path = root.join(name);
        std::fs::write(&path, bytes).unwrap();
        s(&path)
    };
    let npy_ok = gan_gpu::data::npy::encode_u8(&[4, 28, 28], &[0u8; 4 * 784]);
    let mut npy_f4 = npy_ok.clone();
    let descr = npy_f4.windows(3).position(|w| w == b"|u1").unwrap();
    npy_f4[descr..descr + 3].copy_from_slice(b"<f4");
    let eval = |args: &[String]| -> Vec<String> {
        let mut a = vec![
            "eval".to_string(),
            "--backend".into(),
            "cpu".into(),
            "--classifier".into(),
            s(&root.join("no-classifier.bin")),
        ];
        a.extend_from_slice(args);
        a
    };
    for (name, fname, bytes) in [
        ("eval: missing images", "missing.npy", None),
        ("eval: empty images", "empty.npy", Some(Vec::new())),
        (
            "eval: truncated npy",
            "truncated.npy",
            Some(npy_ok[..npy_ok.len() - 100].to_vec()),
        ),
        ("eval: float npy", "float.npy", Some(npy_f4.clone())),
        (
            "eval: truncated idx",
            "truncated.idx",
            Some(idx_images(4, 28)[..500].to_vec()),
        ),
        ("eval: 10x10 idx", "small.idx", Some(idx_images(4, 10))),
        (
            "eval: wrong-magic idx",
            "magic.idx",
            Some(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
        ),
    ] {
        let path = match bytes {
            Some(b) => file(fname, &b),
            None => s(&root.join(fname)),
        };
        cases.push(Case {
            name: name.into(),
            args: eval(&["--images".into(), path]),
            env: Vec::new(),
            needle: fname.into(),
        });
    }
    let images_ok = file("ok.npy", &npy_ok);
    let labels_short = file(
        "labels-short.npy",
        &gan_gpu::data::npy::encode_u8(&[3], &[1, 2, 3]),
    );
    cases.push(Case {
        name: "eval: labels of another length".into(),
        args: eval(&[
            "--images".into(),
            images_ok,
            "--labels".into(),
            labels_short,
        ]),
        env: Vec::new(),
        needle: "labels-short.npy".into(),
    });
    cases.push(case(
        "sample: unknown extension",
        &[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            &s(&checkpoint),
            "--out",
            &s(&root.join("x.jpg")),
        ],
        "--out",
    ));
    cases.push(case(
        "sample: --n 0",
        &[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            &s(&checkpoint),
            "--n",
            "0",
            "--out",
            &s(&root.join("x.png")),
        ],
        "--n",
    ));

    // Flags.
    let flag = |name: &str, flags: &[&str], needle: &str| {
        let mut a = train_on(&good);
        // Width flags add up when repeated: drop the base ones the case sets.
        for f in ["--g-hidden", "--d-hidden"] {
            if flags.contains(&f) {
                let at = a.iter().position(|x| x == f).unwrap();
                a.drain(at..at + 2);
            }
        }
        a.extend(flags.iter().map(|x| x.to_string()));
        Case {
            name: name.into(),
            args: a,
            env: Vec::new(),
            needle: needle.into(),
        }
    };
    cases.extend([
        flag("--epochs 0", &["--epochs", "0"], "--epochs"),
        flag("--epochs -1", &["--epochs", "-1"], "--epochs"),
        flag("--batch-size 0", &["--batch-size", "0"], "--batch-size"),
        flag(
            "--batch-size above the data",
            &["--batch-size", "41"],
            "--batch-size",
        ),
        flag("--lr NaN", &["--lr", "NaN"], "--lr"),
        flag("--lr inf", &["--lr", "inf"], "--lr"),
        flag("--lr -1", &["--lr", "-1"], "--lr"),
        flag("--beta1 1", &["--beta1", "1"], "--beta1"),
        flag("--beta2 nan", &["--beta2", "nan"], "--beta2"),
        flag("--noise-dim 0", &["--noise-dim", "0"], "--noise-dim"),
        flag(
            "wgan-gp with dcgan64's batch norm critic",
            &[
                "--model",
                "dcgan64",
                "--g-hidden",
                "8,8,8,8",
                "--d-hidden",
                "8,8,8,8",
                "--loss",
                "wgan-gp",
            ],
            "--model dcgan64 has batch norm",
        ),
        flag(
            "--gp-weight without wgan-gp",
            &["--gp-weight", "10"],
            "--gp-weight",
        ),
        flag(
            "--gp-weight 0",
            &["--loss", "wgan-gp", "--gp-weight", "0"],
            "--gp-weight",
        ),
        flag("--loss nonsense", &["--loss", "l2"], "--loss"),
        flag("--n-critic 0", &["--n-critic", "0"], "--n-critic"),
        flag(
            "--n-critic beyond the data",
            &["--n-critic", "5"],
            "--n-critic",
        ),
        flag("--clip without wgan", &["--clip", "0.01"], "--clip"),
        flag("--clip 0", &["--loss", "wgan", "--clip", "0"], "--clip"),
        flag("--lr-d -1", &["--lr-d", "-1"], "--lr-d"),
        flag("--optimizer sgd", &["--optimizer", "sgd"], "--optimizer"),
        flag(
            "hinge with deep's label smoothing",
            &["--model", "deep", "--loss", "hinge"],
            "--model deep",
        ),
        flag("--g-hidden 8,0", &["--g-hidden", "8,0"], "--g-hidden"),
        flag(
            "--d-hidden 99999999999999999999",
            &["--d-hidden", "99999999999999999999"],
            "--d-hidden",
        ),
        flag(
            "--sample-every 0",
            &["--sample-every", "0"],
            "--sample-every",
        ),
        flag(
            "--checkpoint-every 0",
            &["--checkpoint-every", "0"],
            "--checkpoint-every",
        ),
        flag("--max-steps 0", &["--max-steps", "0"], "--max-steps"),
        flag(
            "widths that cannot be allocated",
            &["--g-hidden", "60000,60000", "--d-hidden", "60000"],
            "--g-hidden",
        ),
        flag(
            "deep widths that cannot be allocated",
            &["--d-hidden", "65536,65536"],
            "--d-hidden",
        ),
        flag("--model unknown", &["--model", "resnet"], "--model"),
        flag("--backend unknown", &["--backend", "cuda"], "--backend"),
    ]);

    // Output directories that cannot be written: tests run as root, so a
    // path whose parent is a regular file.
    let blocker = file("a-regular-file", b"x");
    let mut a = train_on(&good);
    let pos = a.iter().position(|x| x == "--out").unwrap();
    a[pos + 1] = format!("{blocker}/out");
    cases.push(Case {
        name: "--out under a regular file".into(),
        args: a,
        env: Vec::new(),
        needle: "a-regular-file/out".into(),
    });
    cases.push(case(
        "sample --out under a regular file",
        &[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            &s(&checkpoint),
            "--out",
            &format!("{blocker}/x.png"),
        ],
        "a-regular-file/x.png",
    ));

    // Backends.
    let mut metal = train_on(&good);
    metal[2] = "metal".into();
    cases.push(Case {
        name: "--backend metal on Linux".into(),
        args: metal,
        env: Vec::new(),
        needle: "--backend metal".into(),
    });
    let mut vulkan = train_on(&good);
    vulkan[2] = "vulkan".into();
    cases.push(Case {
        name: "no adapter at all (GAN_GPU_NO_GPU)".into(),
        args: vulkan.clone(),
        env: vec![("GAN_GPU_NO_GPU", "1".into())],
        needle: "--backend vulkan".into(),
    });
    cases.push(Case {
        name: "a malformed fault hook".into(),
        args: train_on(&good),
        env: vec![("GAN_GPU_INJECT_FAULT", "explode".into())],
        needle: "GAN_GPU_INJECT_FAULT".into(),
    });
    for (name, args, needle) in [
        (
            "an unknown matmul variant",
            &["bench", "--backend", "vulkan", "--matmul", "fastest"][..],
            "--matmul",
        ),
        (
            "a profile of zero steps",
            &["bench", "--backend", "vulkan", "--profile", "0"][..],
            "--profile",
        ),
        (
            "a profile of the CPU path",
            &["bench", "--backend", "cpu", "--profile", "5"][..],
            "--profile",
        ),
        (
            "a GPU profile without an adapter",
            &[
                "bench",
                "--backend",
                "vulkan",
                "--profile",
                "5",
                "--steps",
                "1",
            ][..],
            "--backend vulkan",
        ),
    ] {
        let mut c = case(name, args, needle);
        if name.ends_with("without an adapter") {
            c.env.push(("GAN_GPU_NO_GPU", "1".into()));
        }
        cases.push(c);
    }
    assert!(cases.len() >= 30, "{}", cases.len());
    eprintln!("{} bad inputs", cases.len());
    run_cases(&cases);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn widths_over_the_adapters_buffer_limit_name_the_flag() {
    let _lock = common::gpu_test_lock();
    let Some(gpu) = common::gpu_backend() else {
        return;
    };
    let limit = gpu
        .limits()
        .max_storage_buffer_binding_size
        .min(gpu.limits().max_buffer_size);
    drop(gpu);
    // A generator whose parameters need more than the limit, under the
    // model-size limit where possible.
    let width = (limit / 4 / (128 + 784) + 16).to_string();
    let root = temp_dir("gpu-limit");
    let good = data_dir(&root, "good", 40, 28, |_, _| {});
    let args: Vec<String> = [
        "train",
        "--backend",
        "vulkan",
        "--batch-size",
        "10",
        "--max-steps",
        "1",
        "--data",
        &s(&good),
        "--out",
        &s(&root.join("out")),
        "--d-hidden",
        "8",
        "--g-hidden",
        &width,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    run_cases(&[Case {
        name: format!("--g-hidden {width} on the GPU"),
        args,
        env: Vec::new(),
        needle: "--g-hidden".into(),
    }]);
    std::fs::remove_dir_all(&root).ok();
}
