//! The `.npy` reader on valid and broken files: every error is one line
//! naming the file, and a header declaring a huge shape is rejected without
//! allocating for it.

use std::path::PathBuf;

use gan_gpu::data::npy::{encode_u8, parse_u8, read_images, read_labels};

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A version 1.0 file with the given header text (padded) and data.
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn error_of(name: &str, bytes: &[u8]) -> String {
    let path = write(name, bytes);
    let e = read_images(&path)
        .expect_err("a broken file was accepted")
        .to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    assert!(!e.contains('\n'), "error is not one line: {e}");
    e
}

#[test]
fn reads_images_of_both_shapes_and_labels() {
    let data: Vec<u8> = (0..3 * 784).map(|i| (i % 251) as u8).collect();
    let a = read_images(&write("a.npy", &encode_u8(&[3, 28, 28], &data))).unwrap();
    assert_eq!((a.count, a.channels, a.rows, a.cols), (3, 1, 28, 28));
    assert_eq!(a.pixels, data);
    let b = read_images(&write("b.npy", &encode_u8(&[3, 784], &data))).unwrap();
    assert_eq!((b.count, b.channels, b.rows, b.cols), (3, 1, 28, 28));
    assert_eq!(b.pixels, data);
    // RGB (N, H, W, 3) comes back channel-planar: pixel p's red, green and
    // blue bytes 3p, 3p + 1, 3p + 2 land in planes 0, 1 and 2.
    let rgb: Vec<u8> = (0..2 * 2 * 3 * 3).map(|i| i as u8).collect();
    let c = read_images(&write("c.npy", &encode_u8(&[2, 2, 3, 3], &rgb))).unwrap();
    assert_eq!((c.count, c.channels, c.rows, c.cols), (2, 3, 2, 3));
    let first: Vec<u8> = c.pixels[..18].to_vec();
    assert_eq!(
        first,
        vec![0, 3, 6, 9, 12, 15, 1, 4, 7, 10, 13, 16, 2, 5, 8, 11, 14, 17]
    );
    assert_eq!(c.pixels[18], 18);
    let e = read_images(&write("d.npy", &encode_u8(&[2, 2, 3, 4], &[0; 48])))
        .expect_err("4 channels were accepted")
        .to_string();
    assert!(e.contains("(N, H, W, 3)"), "{e}");
    let labels = read_labels(&write("l.npy", &encode_u8(&[4], &[1, 2, 3, 9]))).unwrap();
    assert_eq!(labels, vec![1, 2, 3, 9]);
    // numpy's own spelling, with double quotes and no trailing comma, in version 2.0.
    let h = "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (2,)}";
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&(h.len() as u32).to_le_bytes());
    v2.extend_from_slice(h.as_bytes());
    v2.extend_from_slice(&[5, 6]);
    assert_eq!(parse_u8(&v2).unwrap().data, vec![5, 6]);
    // An empty set is read (the CLI then says it is too small).
    assert_eq!(
        parse_u8(&encode_u8(&[0, 28, 28], &[])).unwrap().shape,
        vec![0, 28, 28]
    );
}

#[test]
fn rejects_broken_files_with_one_line_naming_the_file() {
    let good = encode_u8(&[2, 28, 28], &[0; 2 * 784]);
    let mut bad_magic = good.clone();
    bad_magic[1] = b'X';
    let e = error_of("magic.npy", &bad_magic);
    assert!(e.contains("magic"), "{e}");
    let mut v3 = good.clone();
    v3[6] = 3;
    assert!(error_of("v3.npy", &v3).contains("version 3.0"));
    let f4 = with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 28, 28), }",
        &[0; 2 * 784 * 4],
    );
    assert!(error_of("f4.npy", &f4).contains("'<f4'"));
    let fortran = with_header(
        "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 28, 28), }",
        &[0; 2 * 784],
    );
    assert!(error_of("fortran.npy", &fortran).contains("Fortran"));
    let e = error_of("short.npy", &good[..good.len() - 1]);
    assert!(e.contains("truncated"), "{e}");
    assert!(error_of("header.npy", &good[..40]).contains("truncated"));
    assert!(error_of("tiny.npy", &good[..5]).contains("magic"));
    let mut long = good.clone();
    long.push(0);
    assert!(error_of("long.npy", &long).contains("trailing"));
    let wrong_shape = encode_u8(&[2, 27], &[0; 2 * 27]);
    assert!(error_of("shape.npy", &wrong_shape).contains("(N, H, W)"));
    let no_shape = with_header("{'descr': '|u1', 'fortran_order': False, }", &[]);
    assert!(error_of("noshape.npy", &no_shape).contains("'shape'"));
    let garbage = with_header(
        "{'descr': '|u1', 'fortran_order': Nope, 'shape': (1,), }",
        &[0],
    );
    assert!(error_of("garbage.npy", &garbage).contains("malformed"));
    let negative = with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 784), }",
        &[],
    );
    assert!(error_of("negative.npy", &negative).contains("malformed"));
}

#[test]
fn a_huge_shape_is_rejected_without_allocating_for_it() {
    // 10^9 images (784 GB) declared, 10 bytes present: truncated.
    let huge = with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }",
        &[0; 10],
    );
    let e = error_of("huge.npy", &huge);
    assert!(e.contains("truncated"), "{e}");
    // A shape whose size overflows usize.
    let overflow = with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (18446744073709551615, 28, 28), }",
        &[],
    );
    assert!(error_of("overflow.npy", &overflow).contains("too large"));
    // A dimension that does not even fit in usize.
    let digits = with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999999, 784), }",
        &[],
    );
    assert!(error_of("digits.npy", &digits).contains("malformed"));
}
