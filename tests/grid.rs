//! PNG sample grids: size, layout, gutter, upscaling, atomic writes and errors.

use std::path::PathBuf;

use gan_gpu::model::{ImageShape, PixelScaling};
use gan_gpu::output::{images_from_outputs, write_grid, GUTTER_GRAY};

fn grey(rows: usize, cols: usize) -> ImageShape {
    ImageShape {
        channels: 1,
        rows,
        cols,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-grid-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// 100 synthetic 28x28 images: image k is filled with value k, except its
/// top-left pixel, which is 255.
fn synthetic() -> Vec<u8> {
    let mut out = Vec::with_capacity(100 * 784);
    for k in 0..100u8 {
        let mut img = vec![k; 784];
        img[0] = 255;
        out.extend_from_slice(&img);
    }
    out
}

#[test]
fn ten_by_ten_grid_round_trips() {
    let dir = temp_dir("10x10");
    let path = dir.join("samples.png");
    write_grid(&path, &synthetic(), grey(28, 28), (10, 10), 2).expect("write grid");
    assert!(
        !dir.join("samples.png.tmp").exists(),
        "temp file left behind"
    );
    let img = image::open(&path).expect("read back").to_luma8();
    // 10 cells of 56 pixels and 9 gutters of 2.
    assert_eq!(img.dimensions(), (578, 578));
    let px = |x: u32, y: u32| img.get_pixel(x, y).0[0];
    assert_eq!(px(0, 0), 255); // image 0's top-left, scaled to 2x2
    assert_eq!(px(1, 1), 255);
    assert_eq!(px(2, 2), 0); // image 0's body
    assert_eq!(px(56, 10), GUTTER_GRAY); // gutter after the first column
    assert_eq!(px(57, 10), GUTTER_GRAY);
    assert_eq!(px(58 + 10, 10), 1); // image 1 (row 0, col 1)
    assert_eq!(px(10, 58 + 10), 10); // image 10 (row 1, col 0)
    assert_eq!(px(9 * 58 + 30, 9 * 58 + 30), 99); // image 99
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn partial_grid_leaves_cells_black() {
    let dir = temp_dir("partial");
    let path = dir.join("g.png");
    write_grid(&path, &[200; 3 * 4], grey(2, 2), (2, 2), 1).expect("write");
    let img = image::open(&path).expect("read").to_luma8();
    assert_eq!(img.dimensions(), (6, 6));
    assert_eq!(img.get_pixel(0, 0).0[0], 200);
    assert_eq!(img.get_pixel(2, 0).0[0], GUTTER_GRAY);
    assert_eq!(img.get_pixel(4, 4).0[0], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_grids_are_errors_naming_the_file() {
    let dir = temp_dir("bad");
    let path = dir.join("g.png");
    let cases: [(&[u8], usize, u32, &str); 3] = [
        (&[0; 5], 2, 1, "not a whole number"),
        (&[0; 4 * 5], 2, 1, "do not fit"),
        (&[0; 4], 2, 0, "nonzero"),
    ];
    for (images, grid, scale, needle) in cases {
        let err = write_grid(&path, images, grey(2, 2), (grid, grid), scale).expect_err("bad grid");
        let msg = err.to_string();
        assert!(msg.contains("g.png") && msg.contains(needle), "{msg}");
    }
    let unwritable = dir.join("no-such-dir").join("g.png");
    let err = write_grid(&unwritable, &[0; 4], grey(2, 2), (1, 1), 1).expect_err("no dir");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rgb_grids_are_in_colour() {
    let dir = temp_dir("rgb");
    let path = dir.join("c.png");
    let shape = ImageShape {
        channels: 3,
        rows: 2,
        cols: 2,
    };
    // Image 0: red, green and blue planes 10, 20, 30, its top-left pixel
    // (250, 0, 5); image 1: all 99 but blue 1.
    let mut images = Vec::new();
    images.extend([250, 10, 10, 10, 0, 20, 20, 20, 5, 30, 30, 30]);
    images.extend([99, 99, 99, 99, 99, 99, 99, 99, 1, 1, 1, 1]);
    write_grid(&path, &images, shape, (1, 3), 1).expect("write");
    let img = image::open(&path).expect("read");
    assert_eq!(img.color(), image::ColorType::Rgb8);
    let img = img.to_rgb8();
    assert_eq!(img.dimensions(), (3 * 2 + 2 * 2, 2));
    assert_eq!(img.get_pixel(0, 0).0, [250, 0, 5]);
    assert_eq!(img.get_pixel(1, 1).0, [10, 20, 30]);
    assert_eq!(img.get_pixel(2, 0).0, [GUTTER_GRAY; 3]);
    assert_eq!(img.get_pixel(4, 1).0, [99, 99, 1]);
    // The third cell has no image: black.
    assert_eq!(img.get_pixel(8, 0).0, [0, 0, 0]);
    let bad = ImageShape {
        channels: 2,
        rows: 2,
        cols: 2,
    };
    let err = write_grid(&path, &[0; 8], bad, (1, 1), 1).expect_err("two channels");
    assert!(err.to_string().contains("2 channels"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outputs_convert_back_to_pixels() {
    let unit = images_from_outputs(&[0.0, 1.0, 2.0, -1.0, f32::NAN], PixelScaling::UNIT);
    assert_eq!(unit, vec![0, 255, 255, 0, 0]);
    let sym = images_from_outputs(&[-1.0, 1.0, -3.0], PixelScaling::SYMMETRIC);
    assert_eq!(sym, vec![0, 255, 0]);
    // Every pixel survives scaling to network range and back.
    let all: Vec<u8> = (0..=255).collect();
    for scaling in [PixelScaling::UNIT, PixelScaling::SYMMETRIC] {
        let values: Vec<f32> = all
            .iter()
            .map(|&p| f32::from(p) * scaling.scale + scaling.shift)
            .collect();
        assert_eq!(images_from_outputs(&values, scaling), all);
    }
}
