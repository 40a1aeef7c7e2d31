//! Checkpoints: the complete state of a training run in one safetensors file,
//! so a run can stop anywhere and resume to exactly the same bits.
//!
//! Tensors are named as PyTorch would name an `nn.Sequential` of the same
//! modules (`generator.0.weight` [out, in], `generator.0.bias` `[out]`, ...):
//! for the MLPs, module indices count each `Linear`, then its activation
//! module unless it is the identity, then a `Dropout` if p > 0 (see
//! [`module_indices`]); a layer list (`--model dcgan`) counts its modules
//! the same way ([`LayerStack::state_dict`](crate::model::LayerStack::state_dict)),
//! batch norm with `running_mean`, `running_var` and an I64
//! `num_batches_tracked`.
//! Adam's moments are `optimizer.<net>.exp_avg.<i>.weight` and
//! `optimizer.<net>.exp_avg_sq.<i>.weight` (and `.bias`); the partial epoch's
//! loss sums are `train.epoch_stats` (4 values). A run with `--ema` also
//! holds the generator's moving average as `generator_ema.<i>.weight` and
//! so on, every tensor of the generator's state_dict (parameters, running
//! statistics and counters) under that prefix. The `__metadata__` map holds the
//! format version, the run's settings (every flag) as JSON, the clock, the
//! epoch and the step; see README.md, "Checkpoints".
//!
//! Loading is defensive: a missing, truncated, corrupted or newer-version file
//! is an [`Error::Checkpoint`] naming the file; nothing is allocated beyond
//! what the file's own size justifies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::{stat, Clock};
use crate::error::{Error, Result};
use crate::model::{ModelSpec, NetSpec};
use crate::util::{fnv1a, write_atomic, FNV_OFFSET};

mod names;
mod settings;

use names::{architecture, groups, slots, SlotKind};
pub use names::{flat_lengths, module_indices, tensor_shapes};
pub use settings::{ResumeFlags, RunSettings};

/// The format version this program writes; it reads this one and older.
pub const FORMAT_VERSION: u32 = 1;

/// The file name of the checkpoint in a run's output directory.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// Metadata keys of the `__metadata__` map.
pub mod key {
    /// Always `"gan-gpu checkpoint"`.
    pub const FORMAT: &str = "format";
    /// [`super::FORMAT_VERSION`] as a decimal string.
    pub const FORMAT_VERSION: &str = "format_version";
    /// [`super::RunSettings`] as JSON: every flag of the run.
    pub const SETTINGS: &str = "settings";
    /// Both networks' layer lists as JSON (informational).
    pub const ARCHITECTURE: &str = "architecture";
    /// The clock as JSON: `{"seed": .., "step": .., "cursor": ..}`.
    pub const CLOCK: &str = "clock";
    /// Epochs completed (the epoch in progress is this plus one when cursor > 0).
    pub const EPOCH: &str = "epoch";
    /// Training steps completed in the whole run (equals the clock's step).
    pub const STEP: &str = "step";
    /// FNV-1a 64 of every tensor (name, then data bytes, in name order), as
    /// 16 hex digits: catches corrupted tensor data. Optional: files without
    /// it (written before it existed) still load.
    pub const CHECKSUM: &str = "checksum";
}

/// The [`key::CHECKSUM`] of tensors given as (name, little-endian data).
pub fn tensors_checksum<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<(&str, &[u8])> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let hash = sorted.iter().fold(FNV_OFFSET, |h, (name, data)| {
        fnv1a(fnv1a(h, name.as_bytes()), data)
    });
    format!("{hash:016x}")
}

/// The value of the `format` metadata key.
pub const FORMAT_NAME: &str = "gan-gpu checkpoint";

/// Name of the partial epoch's statistics tensor ([`stat`] slots).
pub const STATS_TENSOR: &str = "train.epoch_stats";

/// One network's state: its trainable tensors one after another in
/// state_dict order (for an MLP, its flat
/// [`NetworkLayout`](crate::model::NetworkLayout)), Adam's moments in the
/// same layout, and batch norm's running statistics.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NetworkState {
    pub params: Vec<f32>,
    /// Adam's first moment (PyTorch's `exp_avg`).
    pub adam_m: Vec<f32>,
    /// Adam's second moment (PyTorch's `exp_avg_sq`).
    pub adam_v: Vec<f32>,
    /// Every batch norm's `running_mean` then `running_var`, in state_dict
    /// order (empty without batch norm).
    pub buffers: Vec<f32>,
    /// Training forward passes so far: every batch norm's
    /// `num_batches_tracked` (0 without batch norm).
    pub batches_tracked: i64,
}

impl NetworkState {
    /// Whether every flat buffer has the length `net`'s layout gives it
    /// ([`flat_lengths`]): what a network can be restored from.
    pub fn fits(&self, net: &NetSpec) -> bool {
        let (len, buffers) = flat_lengths(net);
        [&self.params, &self.adam_m, &self.adam_v]
            .iter()
            .all(|v| v.len() == len)
            && self.buffers.len() == buffers
    }
}

/// The complete state of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub settings: RunSettings,
    /// Seed, steps completed, batches completed in the epoch in progress.
    /// Adam's step count is `clock.step`.
    pub clock: Clock,
    /// Epochs completed.
    pub epoch: usize,
    /// The epoch in progress's loss sums so far ([`stat`] slots; zeros at an
    /// epoch boundary).
    pub stats: Vec<f32>,
    pub generator: NetworkState,
    pub discriminator: NetworkState,
    /// The generator's moving average (`--ema`): its weights and running
    /// statistics; its moments are zeros, as it is never trained.
    pub generator_ema: Option<NetworkState>,
}

/// A network of a checkpoint, the name prefix of its tensors, and which
/// tensor groups it has ([`groups`]).
struct Stored<'a, T> {
    name: &'static str,
    net: &'a NetSpec,
    state: T,
    groups: Vec<(String, usize)>,
}

/// Every network a checkpoint of `spec` holds, with `states` the states
/// of the generator, the discriminator and the generator's average.
fn stored<'a, T>(spec: &'a ModelSpec, states: [Option<T>; 3]) -> Vec<Stored<'a, T>> {
    let [g, d, ema] = states;
    let mut out = Vec::new();
    for (name, net, state) in [
        ("generator", &spec.generator, g),
        ("discriminator", &spec.discriminator, d),
        (EMA_NETWORK, &spec.generator, ema),
    ] {
        let Some(state) = state else { continue };
        let groups = if name == EMA_NETWORK {
            groups(name).into_iter().take(1).collect()
        } else {
            groups(name).to_vec()
        };
        out.push(Stored {
            name,
            net,
            state,
            groups,
        });
    }
    out
}

/// The tensor-name prefix of the generator's moving average.
pub const EMA_NETWORK: &str = "generator_ema";

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Checkpoint {
    /// The run's model spec, or an error naming `path` if the settings name
    /// no model.
    pub fn spec(&self, path: &Path) -> Result<ModelSpec> {
        self.settings
            .spec()
            .ok_or_else(|| problem(path, format!("unknown model {:?}", self.settings.model)))
    }

    /// The checkpoint as safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let path = Path::new("<checkpoint>");
        let spec = self.spec(path)?;
        let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        if spec.game.ema.is_some() != self.generator_ema.is_some() {
            return Err(problem(
                path,
                "the generator's average is present without --ema, or missing with it",
            ));
        }
        let networks = stored(
            &spec,
            [
                Some(&self.generator),
                Some(&self.discriminator),
                self.generator_ema.as_ref(),
            ],
        );
        for Stored {
            name: net_name,
            net,
            state,
            groups,
        } in networks
        {
            for (prefix, which) in groups {
                let trained = [&state.params, &state.adam_m, &state.adam_v][which];
                for s in slots(net) {
                    let name = format!("{prefix}{}", s.suffix);
                    let flat = match (s.kind, which) {
                        (SlotKind::Trainable, _) => trained,
                        (_, 0) => &state.buffers,
                        _ => continue,
                    };
                    if s.kind == SlotKind::Counter {
                        let bytes = state.batches_tracked.to_le_bytes().to_vec();
                        buffers.push((name, Dtype::I64, s.shape, bytes));
                        continue;
                    }
                    let values = flat.get(s.start..s.start + s.len).ok_or_else(|| {
                        problem(path, format!("{net_name} state is shorter than its layout"))
                    })?;
                    buffers.push((name, Dtype::F32, s.shape, le_bytes(values)));
                }
            }
        }
        buffers.push((
            STATS_TENSOR.to_string(),
            Dtype::F32,
            vec![self.stats.len()],
            le_bytes(&self.stats),
        ));
        let mut views = Vec::with_capacity(buffers.len());
        for (name, dtype, shape, bytes) in &buffers {
            let view = TensorView::new(*dtype, shape.clone(), bytes)
                .map_err(|e| problem(path, format!("{name}: {e}")))?;
            views.push((name.clone(), view));
        }
        let json = |v: serde_json::Result<String>| v.map_err(|e| problem(path, e.to_string()));
        let clock = serde_json::json!({
            "seed": self.clock.seed,
            "step": self.clock.step,
            "cursor": self.clock.cursor,
        });
        let metadata: HashMap<String, String> = [
            (key::FORMAT, FORMAT_NAME.to_string()),
            (key::FORMAT_VERSION, FORMAT_VERSION.to_string()),
            (key::SETTINGS, json(serde_json::to_string(&self.settings))?),
            (
                key::ARCHITECTURE,
                json(serde_json::to_string(&architecture(&spec)))?,
            ),
            (key::CLOCK, clock.to_string()),
            (key::EPOCH, self.epoch.to_string()),
            (key::STEP, self.clock.step.to_string()),
            (
                key::CHECKSUM,
                tensors_checksum(
                    buffers
                        .iter()
                        .map(|(n, _, _, b)| (n.as_str(), b.as_slice())),
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| problem(path, e.to_string()))
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync,
    /// rename): a failed write leaves the previous file intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint, naming `path` in every error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            problem(
                path,
                match e.kind() {
                    std::io::ErrorKind::NotFound => "no such checkpoint file".to_string(),
                    _ => format!("cannot read the checkpoint: {e}"),
                },
            )
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses checkpoint `bytes`; `path` names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let header_len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
        match header_len {
            None => {
                return Err(problem(
                    path,
                    format!("truncated: {} bytes, not even a header length", bytes.len()),
                ))
            }
            Some(n) if n > bytes.len() as u64 - 8 => {
                return Err(problem(
                    path,
                    format!(
                        "truncated or corrupted: the header claims {n} bytes, the file has {}",
                        bytes.len()
                    ),
                ))
            }
            Some(_) => {}
        }
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| problem(path, format!("not a valid safetensors file ({e})")))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| problem(path, "no gan-gpu metadata (not a gan-gpu checkpoint)"))?;
        let get = |k: &str| {
            meta.get(k)
                .map(String::as_str)
                .ok_or_else(|| problem(path, format!("metadata key {k:?} is missing")))
        };
        if get(key::FORMAT)? != FORMAT_NAME {
            return Err(problem(path, "not a gan-gpu checkpoint"));
        }
        let version: u32 = get(key::FORMAT_VERSION)?
            .parse()
            .map_err(|_| problem(path, "format_version is not a number"))?;
        if version > FORMAT_VERSION {
            return Err(problem(
                path,
                format!(
                    "checkpoint format version {version} is newer than this program reads \
                     (up to {FORMAT_VERSION}); use a newer gan-gpu"
                ),
            ));
        }
        let settings: RunSettings = serde_json::from_str(get(key::SETTINGS)?)
            .map_err(|e| problem(path, format!("settings: {e}")))?;
        let clock: serde_json::Value = serde_json::from_str(get(key::CLOCK)?)
            .map_err(|e| problem(path, format!("clock: {e}")))?;
        let word = |k: &str| {
            clock
                .get(k)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| problem(path, format!("clock.{k} is missing or not a u32")))
        };
        let clock = Clock {
            seed: word("seed")?,
            step: word("step")?,
            cursor: word("cursor")?,
        };
        let epoch: usize = get(key::EPOCH)?
            .parse()
            .map_err(|_| problem(path, "epoch is not a number"))?;
        if settings.seed != clock.seed {
            return Err(problem(path, "the clock's seed differs from the settings'"));
        }
        let kind = settings
            .kind()
            .ok_or_else(|| problem(path, format!("unknown model {:?}", settings.model)))?;
        ModelSpec::check_overrides(kind, &settings.overrides())
            .map_err(|e| problem(path, format!("settings: {e}")))?;
        let spec = ModelSpec::build(kind, &settings.overrides());
        // Validate before building layouts, so absurd widths in a corrupted
        // header cannot make us allocate: every tensor must be in the file.
        spec.validate(settings.train_images.max(settings.batch_size))
            .map_err(|e| problem(path, format!("settings: {e}")))?;
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| problem(path, format!("not a valid safetensors file ({e})")))?;
        let expected: usize = tensor_shapes(&spec)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() * 4)
            .sum();
        if expected > bytes.len() {
            return Err(problem(
                path,
                format!(
                    "truncated: the model needs {expected} bytes of tensors, the file has {}",
                    bytes.len()
                ),
            ));
        }
        if let Some(expected) = meta.get(key::CHECKSUM) {
            let actual = tensors_checksum(
                tensors
                    .tensors()
                    .iter()
                    .map(|(n, t)| (n.as_str(), t.data())),
            );
            if *expected != actual {
                return Err(problem(
                    path,
                    "corrupted: the tensor data does not match the checksum in the header",
                ));
            }
        }
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = tensors
                .tensor(name)
                .map_err(|_| problem(path, format!("tensor {name} is missing")))?;
            if t.dtype() != Dtype::F32 {
                return Err(problem(path, format!("tensor {name} is not F32")));
            }
            if t.shape() != shape {
                return Err(problem(
                    path,
                    format!(
                        "tensor {name} has shape {:?}, the model needs {shape:?}",
                        t.shape()
                    ),
                ));
            }
            let values: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(problem(
                    path,
                    format!(
                        "tensor {name} holds NaN or infinite values (a diverged or corrupted run)"
                    ),
                ));
            }
            Ok(values)
        };
        let counter = |name: &str| -> Result<i64> {
            let t = tensors
                .tensor(name)
                .map_err(|_| problem(path, format!("tensor {name} is missing")))?;
            match (t.dtype(), t.shape(), t.data()) {
                (Dtype::I64, [], &[a, b, c, d, e, f, g, h]) => {
                    Ok(i64::from_le_bytes([a, b, c, d, e, f, g, h]))
                }
                _ => Err(problem(path, format!("tensor {name} is not an I64 scalar"))),
            }
        };
        // A network without moment groups (the generator's average) gets
        // zero moments.
        let network = |stored: &Stored<()>| -> Result<NetworkState> {
            let (net_name, net) = (stored.name, stored.net);
            let (len, buffers_len) = flat_lengths(net);
            let mut flats = [vec![0.0; len], vec![0.0; len], vec![0.0; len]];
            let mut buffers = vec![0.0; buffers_len];
            let mut tracked: Option<i64> = None;
            for (prefix, which) in stored.groups.iter().cloned() {
                for s in slots(net) {
                    let name = format!("{prefix}{}", s.suffix);
                    match (s.kind, which) {
                        (SlotKind::Trainable, _) => {
                            let values = read(&name, &s.shape)?;
                            flats[which][s.start..s.start + s.len].copy_from_slice(&values);
                        }
                        (SlotKind::Buffer, 0) => {
                            let values = read(&name, &s.shape)?;
                            buffers[s.start..s.start + s.len].copy_from_slice(&values);
                        }
                        (SlotKind::Counter, 0) => {
                            let count = counter(&name)?;
                            if count < 0 || tracked.is_some_and(|t| t != count) {
                                return Err(problem(
                                    path,
                                    format!("tensor {name} ({count}) disagrees with the {net_name}'s other batch norms"),
                                ));
                            }
                            tracked = Some(count);
                        }
                        _ => {}
                    }
                }
            }
            let [params, adam_m, adam_v] = flats;
            Ok(NetworkState {
                params,
                adam_m,
                adam_v,
                buffers,
                batches_tracked: tracked.unwrap_or(0),
            })
        };
        let ema = spec.game.ema.map(|_| ());
        let mut networks = stored(&spec, [Some(()), Some(()), ema])
            .iter()
            .map(network)
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let (Some(generator), Some(discriminator)) = (networks.next(), networks.next()) else {
            unreachable!("a checkpoint always stores both networks")
        };
        let generator_ema = networks.next();
        let stats = read(STATS_TENSOR, &[stat::COUNT])?;
        Ok(Checkpoint {
            settings,
            clock,
            epoch,
            stats,
            generator,
            discriminator,
            generator_ema,
        })
    }
}

fn problem(path: &Path, problem: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: PathBuf::from(path),
        problem: problem.into(),
    }
}
