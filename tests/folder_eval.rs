//! The built-in metrics on a labelled folder of images: the held-back
//! share (`data::folder::hold_out`: every 10th image of each class), the
//! classifier trained on the rest for the folder's shape and classes, and
//! `eval` and `train --eval-every` measuring against the share; an
//! unlabelled folder gets the message that points to clean-fid.

use std::path::{Path, PathBuf};
use std::process::Command;

use gan_gpu::data::folder::{hold_out, load_folder, FolderOptions, HOLD_OUT_EVERY};
use image::{Rgb, RgbImage};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gan-gpu-folder-eval-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` 8x8 RGB PNGs of one colour with a pattern that varies by image, so
/// that every image is different and each class is told by its colour.
fn colour_pngs(dir: &Path, n: usize, colour: [u8; 3]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let image = RgbImage::from_fn(8, 8, |x, y| {
            let jitter = ((x * 7 + y * 3 + i as u32 * 11) % 40) as u8;
            Rgb(colour.map(|c| c.saturating_add(jitter)))
        });
        image.save(dir.join(format!("{i:03}.png"))).unwrap();
    }
}

/// Three classes of `per_class` images each, in `dir/images`.
fn three_classes(dir: &Path, per_class: usize) -> PathBuf {
    let data = dir.join("images");
    colour_pngs(&data.join("blue"), per_class, [20, 40, 200]);
    colour_pngs(&data.join("green"), per_class, [30, 190, 40]);
    colour_pngs(&data.join("red"), per_class, [200, 30, 30]);
    data
}

fn options() -> FolderOptions {
    FolderOptions {
        image_size: None,
        channels: None,
    }
}

#[test]
fn every_tenth_image_of_each_class_is_held_back() {
    let dir = temp_dir("share");
    let data = three_classes(&dir, 25);
    let set = load_folder(&data, &options(), |_, _| {}).unwrap().dataset;
    assert_eq!((set.count, set.channels), (75, 3));
    let split = hold_out(&set).unwrap();
    // 25 images a class hold back their 10th and 20th: 2 a class.
    assert_eq!((split.train.count, split.test.count), (69, 6));
    assert_eq!(split.test.labels, [0, 0, 1, 1, 2, 2]);
    assert_eq!(split.test.classes, ["blue", "green", "red"]);
    assert_eq!(split.train.classes, split.test.classes);
    // The held-back images are exactly files 009 and 019 (the 10th and
    // 20th) of each class, and the training share is the rest in order.
    let len = set.image_len();
    let image = |i: usize| &set.images[i * len..(i + 1) * len];
    let held: Vec<usize> = (0..75usize)
        .filter(|i| (i % 25 + 1).is_multiple_of(HOLD_OUT_EVERY))
        .collect();
    assert_eq!(held, [9, 19, 34, 44, 59, 69]);
    let test_images: Vec<u8> = held.iter().flat_map(|&i| image(i).to_vec()).collect();
    assert_eq!(split.test.images, test_images);
    let train_images: Vec<u8> = (0..75)
        .filter(|i| !held.contains(i))
        .flat_map(|i| image(i).to_vec())
        .collect();
    assert_eq!(split.train.images, train_images);
    assert_eq!(split.train.labels.len(), 69);

    // Too small to hold back two images, and unlabelled: one-line errors.
    let small = three_classes(&temp_dir("small"), 9);
    let set = load_folder(&small, &options(), |_, _| {}).unwrap().dataset;
    let e = hold_out(&set).unwrap_err().to_string();
    assert!(e.contains("0 image(s)") && e.contains("at least 2"), "{e}");
    let flat = temp_dir("flat");
    colour_pngs(&flat, 30, [100, 100, 100]);
    let set = load_folder(&flat, &options(), |_, _| {}).unwrap().dataset;
    let e = hold_out(&set).unwrap_err().to_string();
    assert!(
        e.contains("no class subfolders") && e.contains("clean-fid") && !e.contains('\n'),
        "{e}"
    );
}

fn gan(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The figure in the first column of a report line that starts with `label`.
fn figure(report: &str, label: &str) -> String {
    let line = report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {report}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_labelled_colour_folder_is_measured_against_its_held_back_share() {
    let dir = temp_dir("cli");
    let data = three_classes(&dir, 40);
    let data_arg = data.to_str().unwrap();
    let run = dir.join("run");
    // Conditional training with the metrics every epoch: the classifier
    // trains on the folder's 108-image training share for 3x8x8 images and
    // 3 classes, and the epoch's figures reach metrics.csv.
    let (ok, _, stderr) = gan(
        &dir,
        &[
            "train",
            "--backend",
            "cpu",
            "--model",
            "conditional",
            "--quiet",
            "--data",
            data_arg,
            "--batch-size",
            "30",
            "--epochs",
            "1",
            "--g-hidden",
            "8",
            "--d-hidden",
            "8",
            "--eval-every",
            "1",
            "--eval-count",
            "30",
            "--ema",
            "0.5",
            "--out",
            run.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("192-512-256-3"),
        "the classifier is built for the folder: {stderr}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    let fid_column = header.iter().position(|h| *h == "fid").unwrap();
    let fid: f64 = row[fid_column].parse().unwrap();
    assert!(fid.is_finite() && fid > 0.0, "{metrics}");

    // eval of the checkpoint measures against the folder it remembers.
    let checkpoint = run.join("checkpoint.safetensors");
    let (ok, report, stderr) = gan(
        &dir,
        &[
            "eval",
            "--backend",
            "cpu",
            "--n",
            "30",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        report.contains("held-back share") && report.contains("12 of its 120 images"),
        "{report}"
    );
    // The run kept the generator's average (--ema): eval measures it, and says so.
    assert!(
        report.contains("(the generator's moving average (decay 0.5))"),
        "{report}"
    );
    assert_eq!(figure(&report, "count"), "30");
    // The real-data floor is as many images spread over the training share
    // (108 images, sorted by class) against the held-back share: a third of
    // each class. The classifier tells these colours apart, so the floor
    // covers all three classes and has every label right.
    let floor_line = report.lines().find(|l| l.starts_with("count")).unwrap();
    assert!(floor_line.ends_with("30"), "{report}");
    assert!(
        report.contains("histogram % (real floor): blue:33.3 green:33.3 red:33.3"),
        "{report}"
    );
    let accuracy = report
        .lines()
        .find(|l| l.starts_with("label accuracy"))
        .unwrap();
    assert!(accuracy.ends_with("100.00%"), "{report}");
    let coverage = report.lines().find(|l| l.starts_with("coverage")).unwrap();
    assert!(
        coverage.contains("(>= 6.7%)") && coverage.ends_with("3/3"),
        "{report}"
    );
    assert!(
        report.contains("blue:") && report.contains("red:"),
        "{report}"
    );

    // Images as a file, measured against a folder named by --data.
    let images = dir.join("samples.npy");
    let (ok, _, stderr) = gan(
        &dir,
        &[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--n",
            "20",
            "--out",
            images.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    let labels = dir.join("labels.npy");
    let requested: Vec<u8> = (0..20).map(|i| (i / 10 % 3) as u8).collect();
    std::fs::write(&labels, gan_gpu::data::npy::encode_u8(&[20], &requested)).unwrap();
    let by_file = |images: &Path, labels: Option<&Path>| {
        let mut args = vec![
            "eval",
            "--backend",
            "cpu",
            "--images",
            images.to_str().unwrap(),
            "--data",
            data_arg,
        ];
        if let Some(l) = labels {
            args.extend(["--labels", l.to_str().unwrap()]);
        }
        gan(&dir, &args)
    };
    let (ok, report, stderr) = by_file(&images, Some(&labels));
    assert!(ok, "{stderr}");
    assert_eq!(figure(&report, "count"), "20");
    assert!(report.contains("held-back share"), "{report}");
    // Images of another shape: the folder is decoded in their shape (here
    // Resize + CenterCrop to 28 and PIL's grey), and its classifier is built
    // for it. IDX test files of another shape are an error.
    let grey = dir.join("grey.npy");
    let pattern: Vec<u8> = (0..4 * 784).map(|i| (i * 37 % 251) as u8).collect();
    std::fs::write(&grey, gan_gpu::data::npy::encode_u8(&[4, 28, 28], &pattern)).unwrap();
    let (ok, _, stderr) = by_file(&grey, None);
    assert!(ok && stderr.contains("784-512-256-3"), "{stderr}");
    let small = dir.join("small.npy");
    std::fs::write(
        &small,
        gan_gpu::data::npy::encode_u8(&[4, 8, 8], &[0; 4 * 64]),
    )
    .unwrap();
    let (ok, _, stderr) = gan(
        &dir,
        &[
            "eval",
            "--backend",
            "cpu",
            "--images",
            small.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && stderr.contains("holds grey 8x8 images, but the test set")
            && stderr.contains("grey 28x28"),
        "{stderr}"
    );
    let bad_labels = dir.join("bad-labels.npy");
    let mut out_of_range = requested.clone();
    out_of_range[3] = 3;
    std::fs::write(
        &bad_labels,
        gan_gpu::data::npy::encode_u8(&[20], &out_of_range),
    )
    .unwrap();
    let (ok, _, stderr) = by_file(&images, Some(&bad_labels));
    assert!(
        !ok && stderr.contains("label 3 at index 3") && stderr.contains("0 to 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unlabelled_folder_names_the_flag_and_points_to_clean_fid() {
    let dir = temp_dir("unlabelled");
    let data = dir.join("flat");
    colour_pngs(&data, 30, [90, 90, 90]);
    let (ok, _, stderr) = gan(
        &dir,
        &[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            "10",
            "--max-steps",
            "1",
            "--g-hidden",
            "8",
            "--d-hidden",
            "8",
            "--eval-every",
            "1",
            "--out",
            dir.join("run").to_str().unwrap(),
        ],
    );
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert!(!ok && error.len() == 1, "{stderr}");
    assert!(
        error[0].contains("--eval-every")
            && error[0].contains("no class subfolders")
            && error[0].contains("sample --out DIR/"),
        "{stderr}"
    );
    assert!(!dir.join("run/checkpoint.safetensors").exists());
}
