//! The binary's checkpoint features as a user runs them: `train` writes a
//! checkpoint, `train --resume` continues it (and refuses contradicting
//! flags and bad files with one-line errors), Ctrl-C saves and exits 130, and
//! `sample` writes PNG, IDX and NPY files that load back with the right shape.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gan_gpu::checkpoint::Checkpoint;
use gan_gpu::data::idx;

fn gan_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .args(args)
        .output()
        .expect("run gan-gpu")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-ckcli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn succeeds(args: &[&str]) -> String {
    let out = gan_gpu(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{args:?} failed: {stderr}\n{stdout}");
    stdout.into_owned()
}

/// Runs `args`, expects failure with a one-line `error:` that contains every
/// one of `needles`, and no panic.
fn fails(args: &[&str], needles: &[&str]) {
    let out = gan_gpu(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{args:?}: no error line: {stderr}"));
    for needle in needles {
        assert!(
            line.contains(needle),
            "{args:?}: {needle:?} not in {line:?}"
        );
    }
}

/// A tiny CPU run of `model` for `steps` steps into `out`.
fn tiny_run(model: &str, steps: &str, out: &Path) -> PathBuf {
    let out_s = out.to_str().unwrap();
    let stdout = succeeds(&[
        "train",
        "--backend",
        "cpu",
        "--model",
        model,
        "--g-hidden",
        "16",
        "--d-hidden",
        "16",
        "--batch-size",
        "100",
        "--epochs",
        "2",
        "--max-steps",
        steps,
        "--out",
        out_s,
    ]);
    let path = out.join("checkpoint.safetensors");
    assert!(stdout.contains("checkpoint: "), "{stdout}");
    assert!(path.is_file());
    path
}

#[test]
fn resume_continues_and_refuses_contradicting_flags() {
    let dir = temp_dir("resume");
    let ckpt = tiny_run("vanilla", "3", &dir);
    let c = ckpt.to_str().unwrap();
    fails(
        &["train", "--resume", c, "--model", "deep"],
        &["--model", "vanilla", "deep"],
    );
    fails(
        &["train", "--resume", c, "--noise-dim", "64"],
        &["--noise-dim", "128", "64"],
    );
    fails(
        &["train", "--resume", c, "--g-hidden", "32"],
        &["--g-hidden", "16", "32"],
    );
    fails(
        &["train", "--resume", c, "--batch-size", "50"],
        &["--batch-size", "100", "50"],
    );
    let missing = dir.join("nope.safetensors");
    fails(
        &["train", "--resume", missing.to_str().unwrap()],
        &["nope.safetensors", "no such checkpoint"],
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\0\0\0\0\0\0\0{not json at all").unwrap();
    fails(
        &["train", "--resume", garbage.to_str().unwrap()],
        &["garbage.safetensors"],
    );
    // Same flags (and the ones that may change) resume; output goes next to
    // the checkpoint by default.
    let stdout = succeeds(&[
        "train",
        "--resume",
        c,
        "--backend",
        "cpu",
        "--model",
        "vanilla",
        "--max-steps",
        "5",
        "--sample-every",
        "1",
    ]);
    assert!(stdout.contains("resuming from"), "{stdout}");
    let saved = Checkpoint::load(&ckpt).unwrap();
    assert_eq!((saved.clock.step, saved.clock.cursor), (5, 5));
    fails(
        &[
            "train",
            "--resume",
            c,
            "--backend",
            "cpu",
            "--max-steps",
            "5",
        ],
        &["--max-steps", "step 5"],
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_130() {
    let dir = temp_dir("ctrl-c");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .args([
            "train",
            "--backend",
            "cpu",
            "--g-hidden",
            "16",
            "--d-hidden",
            "16",
            "--epochs",
            "1000",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("training"), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    // Where it saved and how to resume go to stderr.
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    let ckpt = dir.join("checkpoint.safetensors");
    assert!(rest.contains("Ctrl-C: stopped at step"), "{rest}");
    assert!(
        rest.contains(&format!("gan-gpu train --resume {}", ckpt.display())),
        "{rest}"
    );
    let saved = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(saved.settings.epochs, 1000);
    assert!(saved.epoch < 1000);
    std::fs::remove_dir_all(dir).ok();
}

/// The (count, rows, cols) of a uint8 `.npy` file, checking its header.
fn npy_shape(bytes: &[u8]) -> (usize, usize, usize) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '|u1'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap();
    let dims: Vec<usize> = shape
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(bytes.len(), 10 + len + dims.iter().product::<usize>());
    (dims[0], dims[1], dims[2])
}

#[test]
fn sample_writes_png_idx_and_npy() {
    let dir = temp_dir("sample");
    let ckpt = tiny_run("vanilla", "4", &dir);
    let c = ckpt.to_str().unwrap();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    // Defaults (100 images, the run's seed) redraw the run's final grid.
    succeeds(&[
        "sample",
        "--checkpoint",
        c,
        "--backend",
        "cpu",
        "--out",
        &out("s.png"),
    ]);
    assert_eq!(
        std::fs::read(out("s.png")).unwrap(),
        std::fs::read(dir.join("final.png")).unwrap(),
        "100 default samples differ from the run's final.png"
    );
    let sample = |n: &str, seed: &str, file: &str| {
        succeeds(&[
            "sample",
            "--checkpoint",
            c,
            "--backend",
            "cpu",
            "--n",
            n,
            "--seed",
            seed,
            "--out",
            &out(file),
        ]);
        std::fs::read(out(file)).unwrap()
    };
    let a = sample("7", "3", "a.idx");
    let images = idx::read_images(Path::new(&out("a.idx"))).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (7, 28, 28));
    assert!(images.pixels.iter().any(|&p| p > 0));
    assert_eq!(a, sample("7", "3", "b.idx"), "same seed, other images");
    assert_ne!(a, sample("7", "4", "c.idx"), "another seed, same images");
    let npy = sample("7", "3", "a.npy");
    assert_eq!(npy_shape(&npy), (7, 28, 28));
    assert_eq!(
        &npy[npy.len() - 7 * 784..],
        &images.pixels[..],
        "npy and idx differ"
    );
    let grid = image::open(out("s.png")).unwrap();
    assert_eq!(grid.width(), 10 * 56 + 9 * 2);
    sample("5", "3", "five.png");
    let grid = image::open(out("five.png")).unwrap();
    // Near-square: 3 columns, 2 rows.
    assert_eq!((grid.width(), grid.height()), (3 * 56 + 2 * 2, 2 * 56 + 2));

    fails(
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "3",
            "--out",
            &out("x.png"),
        ],
        &["--label", "not conditional"],
    );
    fails(
        &["sample", "--checkpoint", c, "--out", &out("x.jpg")],
        &["x.jpg", "unknown extension"],
    );
    fails(
        &[
            "sample",
            "--checkpoint",
            c,
            "--n",
            "0",
            "--out",
            &out("x.png"),
        ],
        &["--n"],
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn conditional_samples_follow_the_label() {
    let dir = temp_dir("sample-cond");
    let ckpt = tiny_run("conditional", "3", &dir);
    let c = ckpt.to_str().unwrap();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let draw = |label: Option<&str>, file: &str| {
        let mut args = vec![
            "sample",
            "--checkpoint",
            c,
            "--backend",
            "cpu",
            "--n",
            "20",
            "--out",
        ];
        let path = out(file);
        args.push(&path);
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        succeeds(&args);
        idx::read_images(Path::new(&path)).unwrap().pixels
    };
    let cycling = draw(None, "cycle.idx");
    let threes = draw(Some("3"), "threes.idx");
    let ones = draw(Some("1"), "ones.idx");
    let image = |v: &[u8], i: usize| v[i * 784..(i + 1) * 784].to_vec();
    // Same noise: image i with label 1 is the cycle's image i when that is a 1
    // (rows of ten: images 10..20 are ones), and differs with label 3.
    assert_eq!(image(&ones, 12), image(&cycling, 12));
    assert_ne!(image(&threes, 12), image(&cycling, 12));
    assert_ne!(image(&ones, 2), image(&cycling, 2));
    fails(
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "10",
            "--out",
            &out("x.png"),
        ],
        &["--label", "10"],
    );
    std::fs::remove_dir_all(dir).ok();
}

/// The dcgan as a user runs it, narrow: train, resume (a contradicting
/// channel list refused), then `sample` with the running statistics and
/// with `--batch-stats`, which draw different images from the same noise
/// (after 3 steps the running estimates are still near their start, mean 0
/// and variance 1, far from any batch's statistics).
#[test]
fn dcgan_trains_resumes_and_samples_with_either_statistics() {
    let dir = temp_dir("dcgan");
    let out = dir.to_str().unwrap();
    let narrow = [
        "--model",
        "dcgan",
        "--g-hidden",
        "8,4,4",
        "--d-hidden",
        "4,8",
        "--batch-size",
        "16",
        "--backend",
        "cpu",
    ];
    let mut first = vec!["train", "--max-steps", "2", "--out", out];
    first.extend(narrow);
    succeeds(&first);
    let ckpt = dir.join("checkpoint.safetensors");
    let c = ckpt.to_str().unwrap();
    let saved = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(saved.clock.step, 2);
    assert_eq!(saved.generator.batches_tracked, 4);
    assert_eq!(saved.generator.buffers.len(), 2 * (8 * 49 + 4 + 4));
    fails(
        &["train", "--resume", c, "--g-hidden", "8,4,8"],
        &["--g-hidden", "[8, 4, 4]", "[8, 4, 8]"],
    );
    succeeds(&[
        "train",
        "--resume",
        c,
        "--max-steps",
        "3",
        "--backend",
        "cpu",
    ]);
    let resumed = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(resumed.clock.step, 3);
    assert_eq!(resumed.generator.batches_tracked, 6);

    let eval = dir.join("eval.npy");
    let batch = dir.join("batch.npy");
    for (file, extra) in [(&eval, None), (&batch, Some("--batch-stats"))] {
        let mut args = vec!["sample", "--checkpoint", c, "--n", "32", "--backend", "cpu"];
        args.extend(["--out", file.to_str().unwrap()]);
        args.extend(extra);
        succeeds(&args);
    }
    let (eval, batch) = (
        std::fs::read(&eval).unwrap(),
        std::fs::read(&batch).unwrap(),
    );
    assert_eq!(npy_shape(&eval), (32, 28, 28));
    assert_eq!(npy_shape(&batch), (32, 28, 28));
    assert_ne!(
        eval, batch,
        "--batch-stats draws with the batch's own statistics"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `--ema` as a user runs it: train says the grids draw from the average,
/// the checkpoint holds it, `sample` draws from it and says so (`eval`:
/// tests/folder_eval.rs),
/// `--no-ema` draws from the generator itself (other images), and a resume
/// that changes the decay is refused.
#[test]
fn the_generator_average_is_trained_saved_sampled_and_kept_on_resume() {
    let out = temp_dir("ema");
    let out_s = out.to_str().unwrap();
    let stdout = succeeds(&[
        "train",
        "--backend",
        "cpu",
        "--model",
        "vanilla",
        "--g-hidden",
        "16",
        "--d-hidden",
        "16",
        "--batch-size",
        "100",
        "--epochs",
        "2",
        "--max-steps",
        "3",
        "--ema",
        "0.5",
        "--out",
        out_s,
    ]);
    assert!(
        stdout.contains("draw from the generator's moving average (decay 0.5)"),
        "{stdout}"
    );
    let path = out.join("checkpoint.safetensors");
    let saved = Checkpoint::load(&path).unwrap();
    assert_eq!(saved.settings.ema, Some(0.5));
    let average = saved.generator_ema.as_ref().expect("the average is saved");
    assert_ne!(average.params, saved.generator.params);
    let path_s = path.to_str().unwrap();

    let averaged = out.join("averaged.npy");
    let stdout = succeeds(&[
        "sample",
        "--backend",
        "cpu",
        "--checkpoint",
        path_s,
        "--n",
        "8",
        "--out",
        averaged.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("8 images from the generator's moving average (decay 0.5)"),
        "{stdout}"
    );
    let raw = out.join("raw.npy");
    let stdout = succeeds(&[
        "sample",
        "--backend",
        "cpu",
        "--checkpoint",
        path_s,
        "--n",
        "8",
        "--no-ema",
        "--out",
        raw.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("8 images from the generator ->"),
        "{stdout}"
    );
    let (a, b) = (
        std::fs::read(&averaged).unwrap(),
        std::fs::read(&raw).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "--no-ema draws from other weights");

    fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--resume",
            path_s,
            "--ema",
            "0.9",
        ],
        &["--ema", "0.5", "0.9"],
    );
    fails(
        &[
            "train",
            "--backend",
            "cpu",
            "--model",
            "vanilla",
            "--ema",
            "1",
            "--out",
            out_s,
        ],
        &["--ema", "between 0 and 1"],
    );
    // Resuming keeps the average: 2 more steps from step 3.
    succeeds(&[
        "train",
        "--backend",
        "cpu",
        "--resume",
        path_s,
        "--max-steps",
        "5",
        "--quiet",
    ]);
    let resumed = Checkpoint::load(&path).unwrap();
    assert_eq!(resumed.clock.step, 5);
    assert_ne!(
        resumed.generator_ema.unwrap().params,
        average.params,
        "the average moved on"
    );
    std::fs::remove_dir_all(out).ok();
}
