//! The IDX reader and data-directory loader: small valid files built in code
//! (raw and gzipped) load, and every kind of broken input gives a one-line
//! error naming the file and the problem, never a panic or a huge allocation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::{write::GzEncoder, Compression};
use gan_gpu::data::{self, idx, Split};

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gan-gpu-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An IDX file: magic `00 00 ty ndims`, big-endian dims, then `payload`.
fn idx_bytes(ty: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// `n` images of `r` x `c` with distinct, predictable pixels.
fn pixels(n: usize, r: usize, c: usize) -> Vec<u8> {
    (0..n * r * c).map(|i| (i * 7 % 256) as u8).collect()
}

fn images_file(n: u32, r: u32, c: u32) -> Vec<u8> {
    idx_bytes(
        0x08,
        &[n, r, c],
        &pixels(n as usize, r as usize, c as usize),
    )
}

fn labels_file(n: u32) -> Vec<u8> {
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    idx_bytes(0x08, &[n], &labels)
}

/// Writes a complete, valid train + t10k directory with the given suffix.
fn write_split_dir(dir: &TempDir, suffix: &str, compress: bool) {
    let enc = |b: Vec<u8>| if compress { gzip(&b) } else { b };
    dir.write(
        &format!("train-images-idx3-ubyte{suffix}"),
        &enc(images_file(12, 4, 3)),
    );
    dir.write(
        &format!("train-labels-idx1-ubyte{suffix}"),
        &enc(labels_file(12)),
    );
    dir.write(
        &format!("t10k-images-idx3-ubyte{suffix}"),
        &enc(images_file(5, 4, 3)),
    );
    dir.write(
        &format!("t10k-labels-idx1-ubyte{suffix}"),
        &enc(labels_file(5)),
    );
}

/// The error's one-line message, asserting it names `path` and each of `needles`.
fn assert_error<T: std::fmt::Debug>(result: gan_gpu::Result<T>, path: &Path, needles: &[&str]) {
    let err = result.expect_err("expected an error");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "error is not one line: {msg}");
    let name = path.display().to_string();
    assert!(msg.contains(&name), "error does not name {name}: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "error lacks {needle:?}: {msg}");
    }
}

#[test]
fn raw_files_load() {
    let dir = TempDir::new("raw");
    write_split_dir(&dir, "", false);
    let train = data::load_split(dir.path(), Split::Train).expect("load train");
    assert_eq!((train.count, train.rows, train.cols), (12, 4, 3));
    assert_eq!(train.images, pixels(12, 4, 3));
    assert_eq!(train.labels[11], 1);
    assert_eq!(train.image(1), Some(&pixels(12, 4, 3)[12..24]));
    assert_eq!(train.image(12), None);
    let both = data::load_mnist(dir.path()).expect("load both");
    assert_eq!(both.test.count, 5);
}

#[test]
fn gzipped_files_load() {
    let dir = TempDir::new("gz");
    write_split_dir(&dir, ".gz", true);
    let test = data::load_split(dir.path(), Split::Test).expect("load t10k");
    assert_eq!((test.count, test.rows, test.cols), (5, 4, 3));
    assert_eq!(test.images, pixels(5, 4, 3));
    assert_eq!(test.labels, vec![0, 1, 2, 3, 4]);
}

#[test]
fn gzip_is_detected_by_magic_not_name() {
    let dir = TempDir::new("gzmagic");
    let path = dir.write("images-without-gz-suffix", &gzip(&images_file(3, 2, 2)));
    let images = idx::read_images(&path).expect("read gzipped file without .gz");
    assert_eq!(images.pixels, pixels(3, 2, 2));
    // And a raw file named .gz is read as raw.
    let path = dir.write("raw.gz", &labels_file(4));
    assert_eq!(idx::read_labels(&path).expect("raw .gz"), vec![0, 1, 2, 3]);
}

#[test]
fn dot_variant_names_load() {
    let dir = TempDir::new("dot");
    dir.write("train-images.idx3-ubyte", &images_file(2, 28, 28));
    dir.write("train-labels.idx1-ubyte.gz", &gzip(&labels_file(2)));
    let train = data::load_split(dir.path(), Split::Train).expect("dot names");
    assert_eq!(train.count, 2);
    train.require_shape(1, 28, 28).expect("28x28");
}

#[test]
fn wrong_image_size_for_model() {
    let dir = TempDir::new("size");
    write_split_dir(&dir, "", false);
    let train = data::load_split(dir.path(), Split::Train).expect("load");
    let path = dir.path().join("train-images-idx3-ubyte");
    assert_error(
        train.require_shape(1, 28, 28),
        &path,
        &["4x3", "28x28", "784"],
    );
}

#[test]
fn truncated_image_file() {
    let dir = TempDir::new("trunc-img");
    let mut bytes = images_file(60000, 28, 28);
    bytes.truncate(1000);
    let path = dir.write("train-images-idx3-ubyte", &bytes);
    assert_error(
        idx::read_images(&path),
        &path,
        &[
            "truncated",
            "60000 images of 28x28",
            "47040016 bytes",
            "holds 1000 bytes",
        ],
    );
    let gz = dir.write("train-images-idx3-ubyte.gz", &gzip(&bytes));
    assert_error(
        idx::read_images(&gz),
        &gz,
        &[
            "truncated",
            "47040016 bytes",
            "decompressed data holds 1000 bytes",
        ],
    );
}

#[test]
fn truncated_label_file() {
    let dir = TempDir::new("trunc-lab");
    let mut bytes = labels_file(100);
    bytes.truncate(50);
    let path = dir.write("train-labels-idx1-ubyte", &bytes);
    assert_error(
        idx::read_labels(&path),
        &path,
        &["truncated", "100 labels", "108 bytes", "holds 50 bytes"],
    );
}

#[test]
fn truncated_header() {
    let dir = TempDir::new("trunc-hdr");
    let path = dir.write("h", &images_file(1, 2, 2)[..10]);
    assert_error(
        idx::read_images(&path),
        &path,
        &["truncated", "16 bytes", "holds 10"],
    );
    let path = dir.write("m", &[0, 0]);
    assert_error(
        idx::read_labels(&path),
        &path,
        &["truncated", "4-byte IDX magic"],
    );
}

#[test]
fn trailing_bytes() {
    let dir = TempDir::new("trailing");
    let mut bytes = images_file(2, 3, 3);
    bytes.extend_from_slice(&[1, 2, 3]);
    let path = dir.write("raw", &bytes);
    assert_error(
        idx::read_images(&path),
        &path,
        &[
            "trailing bytes",
            "2 images of 3x3",
            "34 bytes",
            "holds 37 bytes",
        ],
    );
    let gz = dir.write("gz", &gzip(&bytes));
    assert_error(
        idx::read_images(&gz),
        &gz,
        &["trailing bytes", "34 bytes", "holds 37 bytes"],
    );
}

#[test]
fn wrong_magic() {
    let dir = TempDir::new("magic");
    let mut bytes = images_file(1, 2, 2);
    bytes[0] = 0x12;
    bytes[1] = 0x34;
    let path = dir.write("x", &bytes);
    assert_error(
        idx::read_images(&path),
        &path,
        &["not an IDX file", "12 34 08 03", "00 00 08 03"],
    );
}

#[test]
fn wrong_element_type() {
    let dir = TempDir::new("type");
    let path = dir.write("f", &idx_bytes(0x0D, &[1, 2, 2], &[0; 16]));
    assert_error(
        idx::read_images(&path),
        &path,
        &["element type 0x0D", "32-bit float", "unsigned bytes"],
    );
}

#[test]
fn wrong_dimension_count() {
    let dir = TempDir::new("ndims");
    let path = dir.write("i", &idx_bytes(0x08, &[4, 4], &[0; 16]));
    assert_error(
        idx::read_images(&path),
        &path,
        &["wrong dimension count", "declares 2", "expected 3"],
    );
    // An image file where labels are expected.
    let path = dir.write("l", &images_file(1, 2, 2));
    assert_error(
        idx::read_labels(&path),
        &path,
        &["declares 3", "expected 1"],
    );
}

#[test]
fn zero_dimensions() {
    let dir = TempDir::new("zero");
    let path = dir.write("rows", &idx_bytes(0x08, &[3, 0, 28], &[]));
    assert_error(
        idx::read_images(&path),
        &path,
        &["zero dimension", "rows = 0"],
    );
    let path = dir.write("count", &idx_bytes(0x08, &[0], &[]));
    assert_error(
        idx::read_labels(&path),
        &path,
        &["zero dimension", "label count = 0"],
    );
}

#[test]
fn huge_declared_dimensions_error_without_allocating() {
    let dir = TempDir::new("huge");
    let mut bytes = idx_bytes(0x08, &[1 << 31, 28, 28], &[]);
    bytes.resize(100, 0);
    let path = dir.write("raw", &bytes);
    assert_error(
        idx::read_images(&path),
        &path,
        &["truncated", "2147483648 images of 28x28", "holds 100 bytes"],
    );
    // Gzipped, the length is unknown until read: the size cap stops it.
    let gz = dir.write("gz", &gzip(&bytes));
    assert_error(idx::read_images(&gz), &gz, &["too large", "limit"]);
    // Under the cap but far beyond the data: reads what is there, then errors.
    let mut big = idx_bytes(0x08, &[1 << 20, 28, 28], &[]);
    big.resize(100, 0);
    let gz = dir.write("gz2", &gzip(&big));
    assert_error(
        idx::read_images(&gz),
        &gz,
        &["truncated", "holds 100 bytes"],
    );
    // Dimensions whose product overflows 64 bits.
    let path = dir.write("overflow", &idx_bytes(0x08, &[u32::MAX; 3], &[]));
    assert_error(idx::read_images(&path), &path, &["overflows"]);
}

#[test]
fn label_image_count_mismatch() {
    let dir = TempDir::new("mismatch");
    write_split_dir(&dir, "", false);
    dir.write("train-labels-idx1-ubyte", &labels_file(11));
    let images = dir.path().join("train-images-idx3-ubyte");
    assert_error(
        data::load_split(dir.path(), Split::Train),
        &images,
        &["12 images", "train-labels-idx1-ubyte holds 11 labels"],
    );
}

#[test]
fn label_out_of_range() {
    let dir = TempDir::new("label10");
    write_split_dir(&dir, "", false);
    let mut labels = labels_file(12);
    labels[8 + 7] = 10;
    let path = dir.write("train-labels-idx1-ubyte", &labels);
    assert_error(
        data::load_split(dir.path(), Split::Train),
        &path,
        &["label 10 at index 7", "out of range"],
    );
}

#[test]
fn missing_file() {
    let dir = TempDir::new("missing");
    write_split_dir(&dir, "", false);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).expect("remove");
    assert_error(
        data::load_split(dir.path(), Split::Test),
        dir.path(),
        &[
            "no t10k labels file",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-labels.idx1-ubyte",
        ],
    );
    // The train split is still complete.
    data::load_split(dir.path(), Split::Train).expect("train still loads");
}

#[test]
fn missing_directory() {
    let dir = TempDir::new("nodir");
    let gone = dir.path().join("does-not-exist");
    assert_error(data::load_split(&gone, Split::Train), &gone, &["not found"]);
    let file = dir.write("a-file", b"x");
    assert_error(
        data::load_split(&file, Split::Train),
        &file,
        &["not a directory"],
    );
    let missing = dir.path().join("absent-idx");
    assert_error(idx::read_images(&missing), &missing, &[]);
}

#[test]
fn empty_file() {
    let dir = TempDir::new("empty");
    let path = dir.write("e", &[]);
    assert_error(idx::read_images(&path), &path, &["empty"]);
    let gz = dir.write("e.gz", &gzip(&[]));
    assert_error(idx::read_labels(&gz), &gz, &["empty"]);
}

#[test]
fn corrupt_gzip_stream() {
    let dir = TempDir::new("corrupt");
    let good = gzip(&images_file(20, 8, 8));
    let mut bad = good.clone();
    for b in &mut bad[12..40] {
        *b ^= 0xA5;
    }
    let path = dir.write("bad.gz", &bad);
    assert_error(idx::read_images(&path), &path, &["gzip"]);
    // A gzip stream cut short.
    let path = dir.write("short.gz", &good[..good.len() / 2]);
    assert_error(idx::read_images(&path), &path, &[]);
    // Only the gzip magic.
    let path = dir.write("magic.gz", &[0x1f, 0x8b]);
    assert_error(idx::read_images(&path), &path, &["gzip"]);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let dir = TempDir::new("fuzz");
    let base = images_file(3, 4, 4);
    let gz = gzip(&base);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..400 {
        let src = if round % 2 == 0 { &base } else { &gz };
        let mut bytes = src.clone();
        for _ in 0..1 + round % 4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % bytes.len();
            bytes[i] = (state >> 32) as u8;
        }
        bytes.truncate(bytes.len() - (round % 3));
        let path = dir.write("f", &bytes);
        let _ = idx::read_images(&path);
        let _ = idx::read_labels(&path);
    }
}

#[test]
fn bundled_mnist_loads() {
    let dir = data::bundled_dir();
    let mnist = data::load_mnist(&dir).expect("bundled MNIST");
    for (set, count) in [(&mnist.train, 60000), (&mnist.test, 10000)] {
        assert_eq!((set.count, set.rows, set.cols), (count, 28, 28));
        assert_eq!(set.images.len(), count * 784);
        assert_eq!(set.labels.len(), count);
        assert!(set.labels.iter().all(|&l| l < 10));
        set.require_shape(1, 28, 28).expect("28x28");
    }
    let mut per_class = [0usize; 10];
    for &l in &mnist.test.labels {
        per_class[l as usize] += 1;
    }
    assert_eq!(
        per_class,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}
