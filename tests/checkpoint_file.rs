//! The checkpoint file: PyTorch-style tensor names and shapes, a byte-exact
//! round trip, clear errors (naming the file) for missing, truncated,
//! corrupted and newer-version files, a failed write that leaves the last
//! good checkpoint intact, and flags that contradict the checkpoint on resume.

use std::path::{Path, PathBuf};

use gan_gpu::backend::{stat, Clock};
use gan_gpu::checkpoint::{self, Checkpoint, NetworkState, ResumeFlags, RunSettings};
use gan_gpu::model::{GameFlags, ModelKind, ModelSpec, NetworkLayout, Overrides};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-ckfile-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A checkpoint of `spec` whose values are all distinct (value k of a
/// tensor group is `offset + k`).
fn synthetic(spec: &ModelSpec, offset: f32) -> Checkpoint {
    let net = |n: &gan_gpu::model::NetSpec, o: f32| {
        let (len, buffers) = gan_gpu::checkpoint::flat_lengths(n);
        let ramp = |base: f32, len: usize| (0..len).map(|k| base + k as f32).collect::<Vec<_>>();
        NetworkState {
            params: ramp(o, len),
            adam_m: ramp(o + 1e6, len),
            adam_v: ramp(o + 2e6, len),
            buffers: ramp(o + 3e6, buffers),
            batches_tracked: if buffers > 0 { 2468 } else { 0 },
        }
    };
    Checkpoint {
        settings: RunSettings::new(spec, 5, 10, 10, 60000),
        clock: Clock {
            seed: 5,
            step: 1234,
            cursor: 34,
        },
        epoch: 2,
        stats: vec![1.5, 2.5, 0.25, 0.125],
        generator: net(&spec.generator, offset),
        discriminator: net(&spec.discriminator, offset + 0.5),
        // The average is never trained: zero moments, as a run holds it.
        generator_ema: spec.game.ema.map(|_| {
            let g = net(&spec.generator, offset + 4e6);
            NetworkState {
                adam_m: vec![0.0; g.params.len()],
                adam_v: vec![0.0; g.params.len()],
                ..g
            }
        }),
    }
}

/// The JSON header of a safetensors file.
fn header(bytes: &[u8]) -> serde_json::Value {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

#[test]
fn the_generator_average_is_a_whole_generator_state_dict_and_round_trips() {
    let spec = ModelSpec::build(
        ModelKind::Dcgan,
        &Overrides {
            game: GameFlags {
                ema: Some(0.999),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let saved = synthetic(&spec, 0.0);
    let bytes = saved.to_bytes().unwrap();
    let h = header(&bytes);
    let names: Vec<&str> = h
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|n| *n != "__metadata__")
        .collect();
    // Every generator tensor (weights, batch norm's running statistics and
    // counters) again under generator_ema., with its shape and dtype; no
    // optimizer state for it.
    let generator: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("generator."))
        .collect();
    let average: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("generator_ema."))
        .collect();
    assert!(generator.contains(&"1.running_var") && generator.contains(&"1.num_batches_tracked"));
    assert_eq!(generator, average);
    for suffix in &generator {
        assert_eq!(
            h[format!("generator.{suffix}")]["shape"],
            h[format!("generator_ema.{suffix}")]["shape"]
        );
        assert_eq!(
            h[format!("generator.{suffix}")]["dtype"],
            h[format!("generator_ema.{suffix}")]["dtype"]
        );
    }
    assert!(!names.iter().any(|n| n.contains("optimizer.generator_ema")));
    assert_eq!(
        gan_gpu::checkpoint::tensor_shapes(&spec).len(),
        names.len(),
        "tensor_shapes lists the average's tensors too"
    );
    let back = Checkpoint::from_bytes(Path::new("ema.safetensors"), &bytes).unwrap();
    assert_eq!(back, saved);
    assert_eq!(back.settings.ema, Some(0.999));
    // Without --ema there is no average, and a stray one is refused.
    let plain = ModelSpec::preset(ModelKind::Dcgan);
    let stray = Checkpoint {
        generator_ema: saved.generator_ema.clone(),
        ..synthetic(&plain, 0.0)
    };
    let err = stray.to_bytes().unwrap_err().to_string();
    assert!(err.contains("average"), "{err}");
    let bytes = synthetic(&plain, 0.0).to_bytes().unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("generator_ema"));
}

#[test]
fn names_and_shapes_are_pytorch_sequential() {
    let spec = ModelSpec::preset(ModelKind::Deep);
    let bytes = synthetic(&spec, 0.0).to_bytes().unwrap();
    let h = header(&bytes);
    let shape = |name: &str| -> Vec<u64> {
        h[name]["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("no tensor {name}"))
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    // Generator: Linear, LeakyReLU (x3), Linear, Tanh -> 0, 2, 4, 6.
    assert_eq!(shape("generator.0.weight"), [256, 100]);
    assert_eq!(shape("generator.2.weight"), [512, 256]);
    assert_eq!(shape("generator.4.weight"), [1024, 512]);
    assert_eq!(shape("generator.6.weight"), [784, 1024]);
    assert_eq!(shape("generator.6.bias"), [784]);
    // Discriminator: Linear, LeakyReLU, Dropout, Linear, LeakyReLU, Dropout,
    // Linear, LeakyReLU, Linear -> 0, 3, 6, 8.
    assert_eq!(shape("discriminator.0.weight"), [1024, 784]);
    assert_eq!(shape("discriminator.3.weight"), [512, 1024]);
    assert_eq!(shape("discriminator.6.weight"), [256, 512]);
    assert_eq!(shape("discriminator.8.weight"), [1, 256]);
    assert_eq!(shape("optimizer.discriminator.exp_avg.8.bias"), [1]);
    assert_eq!(shape("optimizer.generator.exp_avg_sq.0.weight"), [256, 100]);
    assert_eq!(shape(checkpoint::STATS_TENSOR), [stat::COUNT as u64]);
    assert_eq!(h["generator.0.weight"]["dtype"], "F32");
    // 8 layers x 2 tensors x 3 groups + stats + __metadata__.
    assert_eq!(h.as_object().unwrap().len(), 8 * 2 * 3 + 1 + 1);
    let meta = &h["__metadata__"];
    assert_eq!(meta["format"], "gan-gpu checkpoint");
    assert_eq!(meta["format_version"], "1");
    assert_eq!(meta["epoch"], "2");
    assert_eq!(meta["step"], "1234");
    let settings: serde_json::Value =
        serde_json::from_str(meta["settings"].as_str().unwrap()).unwrap();
    assert_eq!(settings["model"], "deep");
    assert_eq!(settings["g_hidden"], serde_json::json!([256, 512, 1024]));

    let vanilla = ModelSpec::preset(ModelKind::Vanilla);
    let h = header(&synthetic(&vanilla, 0.0).to_bytes().unwrap());
    // Sequential(Linear, ReLU, Linear, Sigmoid); D ends in a bare Linear (logit).
    assert!(h["generator.2.weight"].is_object() && h["discriminator.2.bias"].is_object());
    assert!(h.get("generator.1.weight").is_none());
}

#[test]
fn weights_are_row_major_out_by_in() {
    let spec = ModelSpec::preset(ModelKind::Vanilla);
    let saved = synthetic(&spec, 0.0);
    let bytes = saved.to_bytes().unwrap();
    let h = header(&bytes);
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let [start, end] = [0, 1]
        .map(|i| h["generator.2.weight"]["data_offsets"][i].as_u64().unwrap() as usize + 8 + n);
    let first = f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
    let slot = NetworkLayout::new(spec.generator.mlp().unwrap()).layers[1];
    // Element [0, 0] is the layer's first weight; the tensor holds out * in values.
    assert_eq!(first, slot.weight as f32);
    assert_eq!(end - start, 784 * 256 * 4);
}

#[test]
fn round_trip_is_exact_for_every_model() {
    let dir = temp_dir("round-trip");
    for kind in ModelKind::ALL {
        let spec = ModelSpec::build(
            kind,
            &Overrides {
                lr: Some(1e-3),
                beta1: Some(0.7),
                epochs: Some(7),
                ..Default::default()
            },
        );
        let saved = synthetic(&spec, 0.25);
        let path = dir.join(format!("{kind:?}.safetensors"));
        saved.save(&path).unwrap();
        let loaded = Checkpoint::load(&path).unwrap();
        assert_eq!(loaded, saved, "{kind:?}");
        assert_eq!(loaded.spec(&path).unwrap(), spec, "{kind:?}: spec");
    }
    std::fs::remove_dir_all(dir).ok();
}

fn load_error(path: &Path) -> String {
    let err = Checkpoint::load(path)
        .expect_err("must not load")
        .to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "error does not name the file: {err}"
    );
    err
}

#[test]
fn bad_files_are_clear_errors_naming_the_file() {
    let dir = temp_dir("bad");
    let spec = ModelSpec::preset(ModelKind::Conditional);
    let good = synthetic(&spec, 0.0).to_bytes().unwrap();

    let missing = dir.join("missing.safetensors");
    assert!(load_error(&missing).contains("no such checkpoint"));

    for cut in [0, 7, 8, 100, good.len() / 2, good.len() - 1] {
        let path = dir.join(format!("truncated-{cut}.safetensors"));
        std::fs::write(&path, &good[..cut]).unwrap();
        load_error(&path);
    }

    // A header length far beyond the file must not allocate it.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let path = dir.join("huge-header.safetensors");
    std::fs::write(&path, &huge).unwrap();
    load_error(&path);

    // Garbage in the JSON header.
    let mut corrupt = good.clone();
    corrupt[8..40].fill(b'#');
    let path = dir.join("corrupt.safetensors");
    std::fs::write(&path, &corrupt).unwrap();
    load_error(&path);

    // A newer format version (same length, so the file stays well-formed).
    let needle = b"\"format_version\":\"1\"";
    let at = good
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("format_version in the header");
    let mut newer = good.clone();
    newer[at + needle.len() - 2] = b'9';
    let path = dir.join("newer.safetensors");
    std::fs::write(&path, &newer).unwrap();
    let err = load_error(&path);
    assert!(err.contains("version 9") && err.contains("newer"), "{err}");

    // A plain safetensors file that is not ours.
    let plain = safetensors::tensor::serialize(
        [(
            "x",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4])
                .unwrap(),
        )],
        None,
    )
    .unwrap();
    let path = dir.join("plain.safetensors");
    std::fs::write(&path, plain).unwrap();
    assert!(load_error(&path).contains("not a gan-gpu checkpoint"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_failed_write_keeps_the_last_good_checkpoint() {
    let dir = temp_dir("atomic");
    let spec = ModelSpec::preset(ModelKind::Vanilla);
    let path = dir.join(checkpoint::FILE_NAME);
    let first = synthetic(&spec, 0.0);
    first.save(&path).unwrap();
    // The temporary file cannot be created (a directory is in its way).
    std::fs::create_dir(dir.join("checkpoint.safetensors.tmp")).unwrap();
    let err = synthetic(&spec, 9.0)
        .save(&path)
        .expect_err("write must fail")
        .to_string();
    assert!(err.contains("checkpoint.safetensors.tmp"), "{err}");
    assert_eq!(Checkpoint::load(&path).unwrap(), first);
    // A parent that is a file.
    let blocked = path.join("inside.safetensors");
    let err = first
        .save(&blocked)
        .expect_err("write must fail")
        .to_string();
    assert!(err.contains("inside.safetensors"), "{err}");
    assert_eq!(Checkpoint::load(&path).unwrap(), first);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn contradicting_flags_name_the_flag_and_both_values() {
    let spec = ModelSpec::preset(ModelKind::Vanilla);
    let settings = RunSettings::new(&spec, 1, 10, 10, 60000);
    let given = |f: fn(&mut ResumeFlags)| {
        let mut flags = ResumeFlags::default();
        f(&mut flags);
        settings.resume_with(&flags)
    };
    let err = |f: fn(&mut ResumeFlags)| given(f).expect_err("must be refused").to_string();
    let e = err(|f| f.model = Some(ModelKind::Deep));
    assert!(
        e.contains("--model") && e.contains("vanilla") && e.contains("deep"),
        "{e}"
    );
    let e = err(|f| f.overrides.noise_dim = Some(64));
    assert!(
        e.contains("--noise-dim") && e.contains("128") && e.contains("64"),
        "{e}"
    );
    let e = err(|f| f.overrides.g_hidden = Some(vec![512]));
    assert!(
        e.contains("--g-hidden") && e.contains("256") && e.contains("512"),
        "{e}"
    );
    assert!(err(|f| f.overrides.batch_size = Some(64)).contains("--batch-size"));
    assert!(err(|f| f.overrides.lr = Some(1e-3)).contains("--lr"));
    assert!(err(|f| f.seed = Some(2)).contains("--seed"));
    // The same values, and the flags that may change, are accepted.
    let ok = given(|f| {
        f.model = Some(ModelKind::Vanilla);
        f.overrides.noise_dim = Some(128);
        f.overrides.epochs = Some(200);
        f.sample_every = Some(5);
        f.checkpoint_every = Some(2);
    })
    .unwrap();
    assert_eq!(
        (ok.epochs, ok.sample_every, ok.checkpoint_every),
        (200, 5, 2)
    );
    assert_eq!(ok.spec().unwrap().generator, spec.generator);
}
