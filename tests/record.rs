//! What a run leaves behind: a short CPU run with the run record attached
//! writes its sample grids, `metrics.csv` (header, one parseable row per
//! epoch), `losses.png`, `progress.gif` (one frame per epoch plus epoch 0)
//! and `real.png`, for the unconditional and the conditional layouts; the
//! observer sees executed-step progress in order.

use std::path::{Path, PathBuf};

use gan_gpu::backend::cpu::CpuBackend;
use gan_gpu::data::{self, Dataset, Split};
use gan_gpu::model::{ModelKind, ModelSpec, Overrides};
use gan_gpu::output::metrics::HEADER;
use gan_gpu::output::RunRecord;
use gan_gpu::train::{Observer, Progress, TrainConfig, Trainer};
use image::AnimationDecoder;

/// The first `n` images of the bundled MNIST training set.
fn small_mnist(n: usize) -> Dataset {
    data::load_split(&data::bundled_dir(), Split::Train)
        .expect("bundled MNIST")
        .head(n)
}

fn config(kind: ModelKind, epochs: usize, name: &str) -> TrainConfig {
    let overrides = Overrides {
        batch_size: Some(8),
        epochs: Some(epochs),
        g_hidden: Some(vec![16]),
        d_hidden: Some(vec![16]),
        ..Default::default()
    };
    let out_dir =
        std::env::temp_dir().join(format!("gan-gpu-record-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&out_dir).ok();
    TrainConfig {
        spec: ModelSpec::build(kind, &overrides),
        seed: 3,
        out_dir,
        sample_every: 2,
        max_steps: None,
        grid_batch_stats: false,
    }
}

/// Records every progress report, besides feeding the run record.
#[derive(Default)]
struct Steps(Vec<Progress>);

impl Observer for Steps {
    fn on_progress(&mut self, progress: &Progress) {
        self.0.push(*progress);
    }
}

fn run(kind: ModelKind, epochs: usize, name: &str, data: &Dataset) -> (PathBuf, Vec<Progress>) {
    let cfg = config(kind, epochs, name);
    let dir = cfg.out_dir.clone();
    let mut record = RunRecord::new(&dir, &cfg.spec, data, cfg.seed).unwrap();
    let mut steps = Steps::default();
    let mut backend = CpuBackend::new();
    let mut trainer = Trainer::new(&mut backend, cfg, data).unwrap();
    trainer
        .run_observed(&mut (&mut steps, &mut record))
        .unwrap();
    record.finish().unwrap();
    assert_eq!(record.reports().len(), epochs);
    (dir, steps.0)
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

fn check_metrics(dir: &Path, epochs: usize, steps: usize) {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], HEADER);
    assert_eq!(
        HEADER,
        "epoch,steps,d_loss,g_loss,d_real,d_fake,seconds,steps_per_sec,fid,score,coverage,label_accuracy"
    );
    assert_eq!(lines.len(), epochs + 1, "{text}");
    for (i, line) in lines[1..].iter().enumerate() {
        let all: Vec<&str> = line.split(',').collect();
        assert_eq!(all.len(), 12, "{line}");
        // No evaluation in this run: the four evaluation columns are empty.
        assert!(all[8..].iter().all(|f| f.is_empty()), "{line}");
        let fields: Vec<f64> = all[..8]
            .iter()
            .map(|f| f.parse().unwrap_or_else(|e| panic!("{line}: {f}: {e}")))
            .collect();
        assert_eq!(fields[0], (i + 1) as f64);
        assert_eq!(fields[1], steps as f64);
        assert!(fields.iter().all(|f| f.is_finite()), "{line}");
        assert!((0.0..=1.0).contains(&fields[4]) && (0.0..=1.0).contains(&fields[5]));
    }
}

fn gif_frames(path: &Path) -> Vec<image::Frame> {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    image::codecs::gif::GifDecoder::new(file)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap()
}

#[test]
fn a_short_run_leaves_every_file() {
    let data = small_mnist(32);
    let epochs = 3;
    let (dir, progress) = run(ModelKind::Vanilla, epochs, "vanilla", &data);
    for name in [
        "epoch_000.png",
        "epoch_002.png",
        "epoch_003.png",
        "final.png",
    ] {
        assert_eq!(png_size(&dir.join(name)), (578, 578), "{name}");
    }
    check_metrics(&dir, epochs, 4);

    let (w, h) = png_size(&dir.join("losses.png"));
    assert!(
        (400..=2000).contains(&w) && (300..=2000).contains(&h),
        "{w}x{h}"
    );

    let frames = gif_frames(&dir.join("progress.gif"));
    assert_eq!(frames.len(), epochs + 1);
    let first = frames[0].buffer();
    // The grid at scale 1 (298 px) over a caption strip.
    assert_eq!(first.width(), 298);
    assert!(first.height() > 298 && first.height() < 340);
    assert!(frames
        .iter()
        .all(|f| f.buffer().dimensions() == first.dimensions()));

    // Two 578-px grids side by side, with margins, a gap and titles.
    let (w, h) = png_size(&dir.join("real.png"));
    assert!(w > 2 * 578 && w < 2 * 578 + 100, "{w}");
    assert!(h > 578 && h < 578 + 100, "{h}");

    // Progress counts executed steps, ending at the run's total.
    assert!(!progress.is_empty());
    assert_eq!(progress[0].run_step, 0, "a first report before any step");
    assert!(progress.windows(2).all(|p| p[1].run_step > p[0].run_step));
    let last = progress.last().unwrap();
    assert_eq!((last.run_step, last.run_steps), (12, 12));
    assert_eq!((last.epoch, last.step, last.steps), (3, 4, 4));
    assert!(dir.join("metrics.csv.tmp").metadata().is_err());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_conditional_comparison_is_digit_rows() {
    let data = small_mnist(40);
    let (dir, _) = run(ModelKind::Conditional, 1, "conditional", &data);
    check_metrics(&dir, 1, 5);
    assert_eq!(gif_frames(&dir.join("progress.gif")).len(), 2);
    // Ten 56-px digits across (plus a label column), two rows (plus a header).
    let (w, h) = png_size(&dir.join("real.png"));
    assert!(w > 578 && w < 578 + 150, "{w}");
    assert!(h > 2 * 56 && h < 2 * 56 + 100, "{h}");
    std::fs::remove_dir_all(dir).ok();
}

/// The pictures are written on a background thread: many epochs arriving at
/// once still give one GIF frame each, and a picture that cannot be written
/// comes back as an error naming the file, from the next call or `finish`.
#[test]
fn pictures_written_in_the_background_keep_every_frame_and_report_failures() {
    let data = small_mnist(32);
    let cfg = config(ModelKind::Vanilla, 1, "background");
    let dir = cfg.out_dir.clone();
    let mut record = RunRecord::new(&dir, &cfg.spec, &data, cfg.seed).unwrap();
    let images = vec![128u8; 100 * 28 * 28];
    for epoch in 0..12 {
        record.on_samples(epoch, &images).unwrap();
    }
    record.finish().unwrap();
    assert_eq!(gif_frames(&dir.join("progress.gif")).len(), 12);
    assert!(png_size(&dir.join("real.png")).1 > 0);

    // progress.gif cannot be replaced by a file once it is a directory.
    std::fs::remove_file(dir.join("progress.gif")).unwrap();
    std::fs::create_dir(dir.join("progress.gif")).unwrap();
    record.on_samples(12, &images).unwrap();
    let error = record.finish().unwrap_err().to_string();
    assert!(error.contains("progress.gif"), "{error}");
    // Reported once; the record goes on.
    record.finish().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
