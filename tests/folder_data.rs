//! `--data` as a folder of images (`gan_gpu::data::folder`), on folders the
//! tests write themselves: the image forms (grey, RGB, RGBA over black,
//! 16-bit, palette, JPEG) give the documented bytes; subfolders are classes
//! (sorted, nested files belong to their top folder); Resize + CenterCrop;
//! mixed sizes need --image-size; corrupt and non-image files are skipped
//! and named; an empty folder is an error; symbolic links are followed and
//! a link loop is walked once; and the binary trains on such a folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use gan_gpu::data::folder::{load_folder, FolderOptions, FolderSet};
use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-folder-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(
    dir: &Path,
    image_size: Option<usize>,
    channels: Option<usize>,
) -> gan_gpu::error::Result<FolderSet> {
    load_folder(
        dir,
        &FolderOptions {
            image_size,
            channels,
        },
        |_, _| {},
    )
}

fn grey(dir: &Path, name: &str, w: u32, h: u32, value: u8) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_pixel(w, h, Luma([value]))
        .save(path)
        .unwrap();
}

/// A 2x2 palette PNG whose pixels are palette entries 0, 1, 1, 0.
fn palette_png(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 2, 2);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(vec![10, 20, 30, 200, 100, 50]);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[0, 1, 1, 0]).unwrap();
}

/// PIL's grey of an RGB triple.
fn luma(r: u32, g: u32, b: u32) -> u8 {
    ((r * 299 + g * 587 + b * 114 + 500) / 1000) as u8
}

#[test]
fn every_image_form_gives_the_documented_bytes() {
    let dir = temp_dir("forms");
    grey(&dir, "a_grey.png", 2, 2, 77);
    RgbImage::from_pixel(2, 2, Rgb([200, 100, 50]))
        .save(dir.join("b_rgb.png"))
        .unwrap();
    // Alpha 128 over black: c * 128 / 255, rounded.
    RgbaImage::from_pixel(2, 2, Rgba([255, 100, 0, 128]))
        .save(dir.join("c_rgba.png"))
        .unwrap();
    image::ImageBuffer::<Rgb<u16>, Vec<u16>>::from_pixel(2, 2, Rgb([0xFFFF, 0x8080, 0x0000]))
        .save(dir.join("d_rgb16.png"))
        .unwrap();
    palette_png(&dir.join("e_palette.png"));
    RgbImage::from_pixel(8, 8, Rgb([40, 160, 220]))
        .save(dir.join("f_rgb.jpg"))
        .unwrap();
    let set = load(&dir, Some(2), Some(3)).unwrap();
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    assert!(set.dataset.classes.is_empty());
    let d = &set.dataset;
    assert_eq!((d.count, d.channels, d.rows, d.cols), (6, 3, 2, 2));
    let image = |i: usize| &d.images[i * 12..(i + 1) * 12];
    // Planar: four values of R, then of G, then of B.
    assert_eq!(image(0), &[77; 12]);
    assert_eq!(
        image(1),
        &[200, 200, 200, 200, 100, 100, 100, 100, 50, 50, 50, 50]
    );
    let over = |c: u32| ((c * 128 + 127) / 255) as u8;
    assert_eq!(image(2)[0], over(255));
    assert_eq!(image(2)[4], over(100));
    assert_eq!(image(2)[8], 0);
    assert_eq!((image(3)[0], image(3)[4], image(3)[8]), (255, 128, 0));
    assert_eq!(
        image(4),
        &[10, 200, 200, 10, 20, 100, 100, 20, 30, 50, 50, 30],
        "palette"
    );
    // JPEG is lossy: a flat colour comes back within a few levels.
    for (c, want) in [40, 160, 220].into_iter().enumerate() {
        for v in &image(5)[c * 4..(c + 1) * 4] {
            assert!((i32::from(*v) - want).abs() <= 3, "jpeg channel {c}: {v}");
        }
    }
    // Grey is PIL's L of the composited RGB.
    let set = load(&dir, Some(2), Some(1)).unwrap();
    let grey_of = |i: usize| set.dataset.images[i * 4];
    assert_eq!(grey_of(1), luma(200, 100, 50));
    assert_eq!(grey_of(2), luma(over(255).into(), over(100).into(), 0));
    assert_eq!(grey_of(4), luma(10, 20, 30));
}

#[test]
fn subfolders_are_sorted_classes_and_anything_else_is_unlabelled() {
    let dir = temp_dir("classes");
    grey(&dir, "zebra/1.png", 3, 3, 1);
    grey(&dir, "ant/2.png", 3, 3, 2);
    grey(&dir, "ant/deeper/3.png", 3, 3, 3);
    grey(&dir, "moth/4.png", 3, 3, 4);
    let set = load(&dir, None, Some(1)).unwrap();
    assert_eq!(set.dataset.classes, ["ant", "moth", "zebra"]);
    // Files in path order: ant/2, ant/deeper/3, moth/4, zebra/1.
    assert_eq!(set.dataset.labels, [0, 0, 1, 2]);
    assert_eq!(set.dataset.images[0], 2);
    assert_eq!(set.dataset.images[9], 3);

    // An image directly in the folder makes it one unlabelled set.
    grey(&dir, "loose.png", 3, 3, 5);
    let set = load(&dir, None, Some(1)).unwrap();
    assert!(set.dataset.classes.is_empty());
    assert_eq!(set.dataset.count, 5);
    assert_eq!(set.dataset.labels, [0; 5]);

    // So does a subfolder without an image.
    std::fs::remove_file(dir.join("loose.png")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("empty/readme.txt"), "no images here").unwrap();
    let set = load(&dir, None, Some(1)).unwrap();
    assert!(set.dataset.classes.is_empty());
    assert_eq!(set.skipped.len(), 1);
}

#[test]
fn resize_and_centre_crop_follow_torchvision() {
    let dir = temp_dir("resize");
    // 8 wide, 4 high: black left half, white right half. The shorter side
    // is already 4, so only the crop acts: columns 2..6.
    let halves = RgbImage::from_fn(8, 4, |x, _| if x < 4 { Rgb([0; 3]) } else { Rgb([255; 3]) });
    halves.save(dir.join("a.png")).unwrap();
    // A flat 10x6 image scaled to 4 (6 -> 4, 10 -> floor(4 * 10 / 6) = 6) stays flat.
    RgbImage::from_pixel(10, 6, Rgb([90, 90, 90]))
        .save(dir.join("b.png"))
        .unwrap();
    let set = load(&dir, Some(4), Some(1)).unwrap();
    assert_eq!((set.dataset.rows, set.dataset.cols), (4, 4));
    assert_eq!(&set.dataset.images[..4], &[0, 0, 255, 255]);
    assert!(set.dataset.images[16..32].iter().all(|&v| v == 90));
}

#[test]
fn mixed_sizes_need_an_image_size() {
    let dir = temp_dir("mixed");
    grey(&dir, "a.png", 5, 5, 1);
    grey(&dir, "b.png", 7, 5, 1);
    let err = load(&dir, None, Some(1)).unwrap_err().to_string();
    assert!(err.contains("--image-size"), "{err}");
    assert!(err.contains("a.png") && err.contains("b.png"), "{err}");
    let set = load(&dir, Some(5), Some(1)).unwrap();
    assert_eq!((set.dataset.count, set.dataset.rows), (2, 5));
}

#[test]
fn bad_files_are_skipped_and_named_and_no_image_is_an_error() {
    let dir = temp_dir("bad");
    grey(&dir, "good.png", 4, 4, 9);
    let good = std::fs::read(dir.join("good.png")).unwrap();
    std::fs::write(dir.join("broken.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let set = load(&dir, None, Some(1)).unwrap();
    assert_eq!(set.dataset.count, 1);
    let names: Vec<String> = set
        .skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["broken.png", "notes.txt"]);
    assert!(set.skipped[0].1.contains("decode"), "{:?}", set.skipped);
    assert_eq!(set.skipped[1].1, "not an image");

    std::fs::remove_file(dir.join("good.png")).unwrap();
    let err = load(&dir, None, Some(1)).unwrap_err().to_string();
    assert!(
        err.contains("no usable image") && err.contains("2 files skipped"),
        "{err}"
    );
    let empty = temp_dir("empty");
    let err = load(&empty, None, Some(1)).unwrap_err().to_string();
    assert!(err.contains("holds no files"), "{err}");
    let err = load(&empty, None, Some(2)).unwrap_err().to_string();
    assert!(err.contains("--channels"), "{err}");
}

#[test]
fn without_channels_a_set_is_grey_only_if_every_image_is_stored_grey() {
    let dir = temp_dir("auto-channels");
    grey(&dir, "a.png", 2, 2, 90);
    image::GrayAlphaImage::from_pixel(2, 2, image::LumaA([200, 255]))
        .save(dir.join("b.png"))
        .unwrap();
    let set = load(&dir, None, None).unwrap();
    assert_eq!(set.dataset.channels, 1);
    assert_eq!(set.dataset.images, [[90; 4], [200; 4]].concat());
    RgbImage::from_pixel(2, 2, Rgb([1, 2, 3]))
        .save(dir.join("c.png"))
        .unwrap();
    let set = load(&dir, None, None).unwrap();
    assert_eq!(set.dataset.channels, 3);
    assert_eq!(&set.dataset.images[..12], &[90; 12]);
    assert_eq!(
        &set.dataset.images[24..],
        &[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    );
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_followed_and_a_loop_walked_once() {
    let dir = temp_dir("links");
    grey(&dir, "a/one.png", 2, 2, 1);
    std::os::unix::fs::symlink(dir.join("a/one.png"), dir.join("a/two.png")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("a/loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("missing.png"), dir.join("a/dangling.png")).unwrap();
    let set = load(&dir, None, Some(1)).unwrap();
    assert_eq!(set.dataset.count, 2, "one.png and the link to it");
    assert_eq!(set.skipped.len(), 1, "the dangling link: {:?}", set.skipped);
}

/// The first `n` bundled MNIST training images as 28x28 grey PNGs.
fn mnist_pngs(dir: &Path, n: usize) {
    let data =
        gan_gpu::data::load_split(&gan_gpu::data::bundled_dir(), gan_gpu::data::Split::Train)
            .unwrap()
            .head(n);
    for i in 0..n {
        let pixels = data.image(i).unwrap().to_vec();
        GrayImage::from_raw(28, 28, pixels)
            .unwrap()
            .save(dir.join(format!("{i:03}.png")))
            .unwrap();
    }
}

#[test]
fn the_binary_trains_on_a_folder_and_refuses_what_does_not_fit() {
    let dir = temp_dir("train");
    let data = dir.join("images");
    std::fs::create_dir_all(&data).unwrap();
    mnist_pngs(&data, 32);
    std::fs::write(data.join("junk.txt"), "x").unwrap();
    let run = |extra: &[&str]| {
        let model = if extra.contains(&"--model") {
            &[][..]
        } else {
            &["--model", "vanilla"][..]
        };
        Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .args(["train", "--backend", "cpu", "--quiet"])
            .args(model)
            .args(["--batch-size", "8", "--max-steps", "2", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(dir.join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped 1 of the files") && stderr.contains("junk.txt"),
        "{stderr}"
    );
    assert!(dir.join("out/checkpoint.safetensors").is_file());

    // The MLP models take the data's shape: channels x rows x cols inputs.
    for extra in [&["--channels", "3"][..], &["--image-size", "32"][..]] {
        std::fs::remove_dir_all(dir.join("out")).ok();
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        let saved =
            gan_gpu::checkpoint::Checkpoint::load(&dir.join("out/checkpoint.safetensors")).unwrap();
        let spec = saved.spec(&dir.join("out")).unwrap();
        let want = if extra[0] == "--channels" {
            (3, 28, 28)
        } else {
            (1, 32, 32)
        };
        assert_eq!(
            (spec.image_channels, spec.image_rows, spec.image_cols),
            want
        );
        assert_eq!(spec.discriminator_input(), want.0 * want.1 * want.2);
    }
    for (extra, expect) in [
        (&["--channels", "4"][..], "--channels"),
        (&["--model", "dcgan64"][..], "--image-size 64"),
        (&["--eval-every", "1"][..], "--eval-every"),
    ] {
        std::fs::remove_dir_all(dir.join("out")).ok();
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(error.contains(expect), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `n` 8x8 RGB PNGs of one flat colour (with a little noise) under `dir`.
fn colour_pngs(dir: &Path, n: usize, colour: [u8; 3]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let image = RgbImage::from_fn(8, 8, |x, y| {
            let jitter = ((x + 3 * y + i as u32) % 5) as u8;
            Rgb(colour.map(|c| c.saturating_add(jitter)))
        });
        image.save(dir.join(format!("{i:02}.png"))).unwrap();
    }
}

#[test]
fn a_labelled_colour_folder_trains_conditionally_and_samples_by_class_name() {
    let dir = temp_dir("colour-classes");
    let data = dir.join("images");
    colour_pngs(&data.join("blue sky"), 8, [20, 40, 220]);
    colour_pngs(&data.join("red"), 8, [220, 30, 30]);
    let gan = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (data_arg, out_arg) = (data.to_str().unwrap(), dir.join("run"));
    let out_arg = out_arg.to_str().unwrap();
    let (ok, stderr) = gan(&[
        "train",
        "--backend",
        "cpu",
        "--model",
        "conditional",
        "--quiet",
        "--data",
        data_arg,
        "--batch-size",
        "4",
        "--max-steps",
        "3",
        "--g-hidden",
        "8",
        "--d-hidden",
        "8",
        "--out",
        out_arg,
    ]);
    assert!(ok, "{stderr}");
    let checkpoint = dir.join("run/checkpoint.safetensors");
    let saved = gan_gpu::checkpoint::Checkpoint::load(&checkpoint).unwrap();
    let spec = saved.spec(&checkpoint).unwrap();
    assert_eq!(spec.class_names, ["blue sky", "red"]);
    assert_eq!((spec.image_channels, spec.image_rows), (3, 8));
    // The grids are in colour.
    let grid = image::open(dir.join("run/final.png")).unwrap();
    assert_eq!(grid.color(), image::ColorType::Rgb8);
    let checkpoint = checkpoint.to_str().unwrap();
    let sample = |label: &str, out: &Path| {
        gan(&[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            checkpoint,
            "--n",
            "5",
            "--label",
            label,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // By name and by index, the same images.
    let (by_name, by_index) = (dir.join("name.npy"), dir.join("index.npy"));
    assert!(sample("red", &by_name).0);
    assert!(sample("1", &by_index).0);
    let bytes = std::fs::read(&by_name).unwrap();
    assert_eq!(bytes, std::fs::read(&by_index).unwrap());
    let array = gan_gpu::data::npy::parse_u8(&bytes).unwrap();
    assert_eq!(array.shape, [5, 8, 8, 3], "NumPy and PIL's (N, H, W, 3)");
    let (ok, stderr) = sample("green", &dir.join("x.npy"));
    assert!(
        !ok && stderr.contains("--label") && stderr.contains("blue sky, red"),
        "{stderr}"
    );
    let (ok, stderr) = sample("red", &dir.join("x.idx"));
    assert!(
        !ok && stderr.contains("IDX files hold grey images"),
        "{stderr}"
    );
    // A directory: one numbered RGB PNG per image, each the npy's image.
    let folder = dir.join("pngs/");
    let (ok, stderr) = sample("red", &folder);
    assert!(ok, "{stderr}");
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        names,
        [
            "000000.png",
            "000001.png",
            "000002.png",
            "000003.png",
            "000004.png"
        ]
    );
    let first = image::open(folder.join("000000.png")).unwrap().to_rgb8();
    assert_eq!(first.dimensions(), (8, 8));
    let header = bytes.len() - 5 * 192;
    assert_eq!(first.as_raw().as_slice(), &bytes[header..header + 192]);
}

#[test]
fn the_decode_cache_is_reused_then_rebuilt_after_a_change() {
    use gan_gpu::data::cache::{load_cached, CacheUse};
    let dir = temp_dir("cache");
    let (data, cache) = (dir.join("images"), dir.join("cache"));
    colour_pngs(&data.join("a"), 3, [10, 20, 30]);
    colour_pngs(&data.join("b"), 2, [200, 100, 0]);
    std::fs::write(data.join("a/notes.txt"), "not an image").unwrap();
    let options = FolderOptions {
        image_size: Some(4),
        channels: None,
    };
    let fresh = load_folder(&data, &options, |_, _| {}).unwrap();
    let (first, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    let CacheUse::Built(file) = used else {
        panic!("{used:?}")
    };
    assert!(file.is_file());
    let (second, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    assert_eq!(used, CacheUse::Hit(file.clone()));
    for set in [&first, &second] {
        assert_eq!(set.dataset, fresh.dataset);
        assert_eq!(set.skipped, fresh.skipped);
    }
    assert_eq!(second.dataset.classes, ["a", "b"]);
    assert_eq!(second.skipped.len(), 1);
    // Other settings are another cache file.
    let grey = FolderOptions {
        image_size: Some(4),
        channels: Some(1),
    };
    let (_, used) = load_cached(&data, &grey, &cache, |_, _| {}).unwrap();
    assert!(
        matches!(used, CacheUse::Built(ref f) if *f != file),
        "{used:?}"
    );
    // A new image changes the listing: decoded again, the file replaced.
    colour_pngs(&data.join("b/more"), 1, [0, 0, 255]);
    let (changed, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    assert_eq!(
        used,
        CacheUse::Rebuilt(file.clone(), "the folder changed".into())
    );
    assert_eq!(changed.dataset.count, 6);
    let (_, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    assert_eq!(used, CacheUse::Hit(file.clone()));
    // A corrupt file is rebuilt, not trusted.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let (repaired, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    assert!(
        matches!(used, CacheUse::Rebuilt(_, ref why) if why.contains("checksum")),
        "{used:?}"
    );
    assert_eq!(repaired.dataset, changed.dataset);
    std::fs::write(&file, &bytes[..20]).unwrap();
    let (_, used) = load_cached(&data, &options, &cache, |_, _| {}).unwrap();
    assert!(matches!(used, CacheUse::Rebuilt(..)), "{used:?}");
}

#[test]
fn a_checkpoint_remembers_its_data_and_eval_looks_there() {
    let dir = temp_dir("remembered-data");
    let copy = dir.join("mnist-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(gan_gpu::data::bundled_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("-ubyte") {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    mnist_pngs(&images, 16);
    let gan = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gan-gpu"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (data, out) in [(&copy, "idx-run"), (&images, "folder-run")] {
        let (ok, stderr) = gan(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--batch-size",
            "8",
            "--max-steps",
            "1",
            "--g-hidden",
            "8",
            "--d-hidden",
            "8",
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.join(out).to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
    }
    let checkpoint = |run: &str| dir.join(run).join("checkpoint.safetensors");
    let saved = gan_gpu::checkpoint::Checkpoint::load(&checkpoint("idx-run")).unwrap();
    let recorded = std::fs::canonicalize(&copy).unwrap();
    assert_eq!(saved.settings.data.as_deref(), recorded.to_str());
    // eval measures against the run's own data: an unlabelled folder has
    // nothing the built-in metrics can score, and data that has gone is named.
    let eval = |run: &str| {
        gan(&[
            "eval",
            "--backend",
            "cpu",
            "--n",
            "10",
            "--checkpoint",
            checkpoint(run).to_str().unwrap(),
        ])
    };
    let (ok, stderr) = eval("folder-run");
    assert!(
        !ok && stderr.contains("no class subfolders") && stderr.contains("sample --out DIR/"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&copy).unwrap();
    let (ok, stderr) = eval("idx-run");
    assert!(
        !ok && stderr.contains("not there any more") && stderr.contains("mnist-copy"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
