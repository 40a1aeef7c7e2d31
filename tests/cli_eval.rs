//! `gan-gpu eval` as a user runs it: bad inputs get a one-line error naming
//! the flag or file before any classifier work, a broken checkpoint included. (A full evaluation trains or loads the standard
//! classifier, about a minute on 2 cores: see `tests/eval.rs` for the
//! metrics on a tiny classifier.)

use std::path::PathBuf;
use std::process::Command;

use gan_gpu::data::npy::encode_u8;

fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .args(args)
        .output()
        .expect("run gan-gpu");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or_default()
            .starts_with("error: "),
        "{args:?}: {stderr}"
    );
    stderr
}

fn write(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("gan-gpu-cli-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn eval_needs_a_source() {
    let e = fails(&["eval"]);
    assert!(e.contains("--checkpoint") || e.contains("--images"), "{e}");
    let e = fails(&["eval", "--images", "a.npy", "--checkpoint", "b"]);
    assert!(e.contains("cannot be used with"), "{e}");
}

#[test]
fn a_missing_or_broken_checkpoint_is_named() {
    let e = fails(&["eval", "--checkpoint", "/nonexistent/gen.safetensors"]);
    assert!(e.contains("/nonexistent/gen.safetensors"), "{e}");
    let broken = write(
        "broken.safetensors",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}",
    );
    let e = fails(&["eval", "--checkpoint", &broken]);
    assert!(e.contains(&broken), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn bad_images_and_labels_name_the_file() {
    let e = fails(&["eval", "--images", "/nonexistent/x.npy"]);
    assert!(e.contains("/nonexistent/x.npy"), "{e}");
    let f4 = write("bad.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}");
    let e = fails(&["eval", "--images", &f4]);
    assert!(e.contains("bad.npy"), "{e}");
    let images = write("ok.npy", &encode_u8(&[3, 28, 28], &[0; 3 * 784]));
    let labels = write("labels.npy", &encode_u8(&[2], &[1, 2]));
    let e = fails(&["eval", "--images", &images, "--labels", &labels]);
    assert!(e.contains("2 labels for the 3 images"), "{e}");
    let labels = write("labels11.npy", &encode_u8(&[3], &[1, 2, 11]));
    let e = fails(&["eval", "--images", &images, "--labels", &labels]);
    assert!(e.contains("label 11"), "{e}");
    let e = fails(&["eval", "--images", &images, "--n", "5"]);
    assert!(e.contains("--n"), "{e}");
    let one = write("one.npy", &encode_u8(&[1, 784], &[0; 784]));
    let e = fails(&["eval", "--images", &one]);
    assert!(e.contains("at least 2"), "{e}");
}
