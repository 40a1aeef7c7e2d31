//! The `gan-gpu` binary as a user runs it: a short training run works, and bad
//! input gets a one-line error naming the flag or file, a non-zero exit and no
//! panic.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn gan_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .args(args)
        .output()
        .expect("run gan-gpu")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-cli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// Runs `args`, expects failure, and returns stderr after checking it is one
/// `error:` line (clap's usage hints aside) with no panic or backtrace.
fn fails(args: &[&str]) -> String {
    let out = gan_gpu(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {stderr}"
    );
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: "),
        "{args:?}: first line is not an error: {stderr}"
    );
    stderr
}

#[test]
fn bad_flags_are_rejected_naming_the_flag() {
    let out = temp_dir("bad-flags");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "--epochs"),
        (&["--epochs", "-3"], "--epochs"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--batch-size", "60001"], "larger than the data set"),
        (&["--lr", "NaN"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--lr", "-0.1"], "--lr"),
        (&["--beta1", "1"], "--beta1"),
        (&["--beta2", "nan"], "--beta2"),
        (&["--noise-dim", "0"], "--noise-dim"),
        (&["--g-hidden", "256,0"], "--g-hidden"),
        (&["--d-hidden", "abc"], "--d-hidden"),
        (&["--sample-every", "0"], "--sample-every"),
        (&["--max-steps", "0"], "--max-steps"),
        (&["--eval-every", "0"], "--eval-every"),
        (&["--eval-every", "1", "--eval-count", "1"], "--eval-count"),
        (&["--model", "resnet"], "--model"),
        (&["--backend", "cuda"], "--backend"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["train", "--backend", "cpu", "--out", out];
        args.extend_from_slice(flags);
        let stderr = fails(&args);
        assert!(
            stderr.contains(expected),
            "{flags:?}: error does not mention {expected}: {stderr}"
        );
    }
}

#[test]
fn bad_data_directories_are_reported_by_name() {
    let out = temp_dir("bad-data-out");
    let missing = temp_dir("no-such-dir");
    let stderr = fails(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");

    let broken = temp_dir("broken-data");
    std::fs::create_dir_all(&broken).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(broken.join(name), b"not an idx file").unwrap();
    }
    let stderr = fails(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        broken.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains("train-images-idx3-ubyte"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(broken).ok();
}

#[test]
fn an_unavailable_backend_names_what_is_available() {
    let out = temp_dir("metal");
    let stderr = fails(&[
        "train",
        "--backend",
        "metal",
        "--max-steps",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains("Metal"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_short_cpu_run_writes_its_grids() {
    let out = temp_dir("cpu-run");
    let o = gan_gpu(&[
        "train",
        "--backend",
        "cpu",
        "--model",
        "conditional",
        "--max-steps",
        "3",
        "--g-hidden",
        "16",
        "--d-hidden",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("epoch   1/100  D loss"), "{stdout}");
    // Piped stdout: plain lines, no progress bar.
    assert!(
        !stdout.contains('\r') && !stdout.contains('\x1b'),
        "{stdout:?}"
    );
    assert!(
        stdout.starts_with("training conditional on cpu"),
        "{stdout}"
    );
    let files = [
        "epoch_000.png",
        "epoch_001.png",
        "final.png",
        "metrics.csv",
        "losses.png",
        "progress.gif",
        "real.png",
    ];
    for name in files {
        assert!(
            out.join(name).is_file(),
            "{name} missing in {}",
            out.display()
        );
    }
    std::fs::remove_dir_all(&out).ok();

    // --quiet: the epoch lines and the summary only.
    let o = gan_gpu(&[
        "train",
        "--backend",
        "cpu",
        "--max-steps",
        "2",
        "--g-hidden",
        "16",
        "--d-hidden",
        "16",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("epoch   1/100  D loss"), "{stdout}");
    assert!(lines[1].starts_with("2 steps; samples in"), "{stdout}");
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn a_short_vulkan_run_trains_on_the_gpu() {
    let _lock = common::gpu_test_lock();
    // Only where an adapter exists (and always in CI, where one must).
    if common::gpu_backend().is_none() {
        return;
    }
    let out = temp_dir("vulkan-run");
    let o = gan_gpu(&[
        "train",
        "--backend",
        "vulkan",
        "--model",
        "deep",
        "--max-steps",
        "2",
        "--batch-size",
        "16",
        "--g-hidden",
        "16,16,16",
        "--d-hidden",
        "16,16,16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("(vulkan,"), "{stdout}");
    assert!(out.join("final.png").is_file());
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn bench_prints_a_summary_line_and_rejects_bad_flags() {
    let out = gan_gpu(&[
        "bench",
        "--backend",
        "cpu",
        "--synthetic",
        "--batch-size",
        "10",
        "--warmup",
        "1",
        "--steps",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("bench model=vanilla backend=cpu batch=10 steps=3 ms_per_step="),
        "{last}"
    );
    for (args, flag) in [
        (&["bench", "--steps", "0"][..], "--steps"),
        (&["bench", "--sync-every", "0"][..], "--sync-every"),
        (
            &["bench", "--batch-size", "0", "--backend", "cpu"][..],
            "--batch-size",
        ),
        (&["bench", "--matmul", "fast"][..], "--matmul"),
        (&["bench", "--model", "huge"][..], "--model"),
    ] {
        let stderr = fails(args);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
