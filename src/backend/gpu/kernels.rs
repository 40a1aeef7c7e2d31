//! The kernel registry: every compute pipeline of the backend, built once when
//! the backend is created. Each kernel family is one WGSL file under
//! `shaders/`, prefixed with the shared definitions it needs (`common.wgsl`,
//! and `random.wgsl` / `activation.wgsl` where the family draws random numbers
//! or applies activations). Bind group layouts follow one convention: binding 0
//! is the op's uniform parameter struct (if any), bindings `1..=n` are storage
//! buffers. All storage bindings are `read_write`: a buffer may then be bound
//! twice in one dispatch (a read view and a written view of the same tensor,
//! e.g. `[x ; one-hot]` filled by one gather), which wgpu forbids for a
//! read-only plus a writable binding.

use crate::error::{Error, Result};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const RANDOM: &str = include_str!("../../../shaders/random.wgsl");
const ACTIVATION: &str = include_str!("../../../shaders/activation.wgsl");
const LINEAR: &str = include_str!("../../../shaders/linear.wgsl");
const LOSS: &str = include_str!("../../../shaders/loss.wgsl");
const CLASSIFIER: &str = include_str!("../../../shaders/classifier.wgsl");
const ADAM: &str = include_str!("../../../shaders/adam.wgsl");
const DATA: &str = include_str!("../../../shaders/data.wgsl");
const HEALTH: &str = include_str!("../../../shaders/health.wgsl");

/// Which matmul kernels `shaders/linear.wgsl` provides the linear ops with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// Workgroup-memory tiles, 16 x 16 threads of 2 x 2 outputs: for GPUs.
    Tiled,
    /// No workgroup memory and no barriers, 8 x 8 threads of 4 x 4 outputs:
    /// for adapters that are CPUs (lavapipe, llvmpipe), where workgroup
    /// memory is plain memory and barriers switch between invocations.
    Direct,
}

impl MatmulVariant {
    /// The variant for an adapter of this type: direct on CPUs, tiled elsewhere.
    pub fn for_device(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            MatmulVariant::Direct
        } else {
            MatmulVariant::Tiled
        }
    }

    /// Parses `tiled` or `direct`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiled" => Ok(MatmulVariant::Tiled),
            "direct" => Ok(MatmulVariant::Direct),
            other => Err(Error::config(
                "--matmul",
                format!("unknown matmul variant {other:?} (expected tiled or direct)"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Direct => "direct",
        }
    }
}

/// Every kernel (pipeline) of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    LinearForward,
    LinearBackwardInput,
    LinearBackwardParams,
    BceWithLogits,
    SoftmaxCrossEntropy,
    AdamUpdate,
    GatherBatch,
    NormalNoise,
    RandomOnehot,
    EndStep,
    FiniteCheck,
}

/// A shader family: its file and the shared parts it is prefixed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Linear,
    Loss,
    Classifier,
    Adam,
    Data,
    Health,
}

impl Family {
    const ALL: [Family; 6] = [
        Family::Linear,
        Family::Loss,
        Family::Classifier,
        Family::Adam,
        Family::Data,
        Family::Health,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::Linear => "linear.wgsl",
            Family::Loss => "loss.wgsl",
            Family::Classifier => "classifier.wgsl",
            Family::Adam => "adam.wgsl",
            Family::Data => "data.wgsl",
            Family::Health => "health.wgsl",
        }
    }

    /// The module source: shared parts first, then the family file.
    fn source(self) -> String {
        let parts: &[&str] = match self {
            Family::Linear => &[COMMON, RANDOM, ACTIVATION, LINEAR],
            Family::Loss => &[COMMON, ACTIVATION, LOSS],
            Family::Classifier => &[COMMON, CLASSIFIER],
            Family::Adam => &[COMMON, ADAM],
            Family::Data => &[COMMON, RANDOM, DATA],
            Family::Health => &[COMMON, HEALTH],
        };
        parts.join("\n")
    }
}

impl Kernel {
    pub const ALL: [Kernel; 11] = [
        Kernel::LinearForward,
        Kernel::LinearBackwardInput,
        Kernel::LinearBackwardParams,
        Kernel::BceWithLogits,
        Kernel::SoftmaxCrossEntropy,
        Kernel::AdamUpdate,
        Kernel::GatherBatch,
        Kernel::NormalNoise,
        Kernel::RandomOnehot,
        Kernel::EndStep,
        Kernel::FiniteCheck,
    ];

    /// The WGSL entry point (named like the CPU function it mirrors).
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::LinearForward => "linear_forward",
            Kernel::LinearBackwardInput => "linear_backward_input",
            Kernel::LinearBackwardParams => "linear_backward_params",
            Kernel::BceWithLogits => "bce_with_logits",
            Kernel::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Kernel::AdamUpdate => "adam_update",
            Kernel::GatherBatch => "gather_batch",
            Kernel::NormalNoise => "normal_noise",
            Kernel::RandomOnehot => "random_onehot",
            Kernel::EndStep => "end_step",
            Kernel::FiniteCheck => "finite_check",
        }
    }

    /// The entry point built for this kernel under `variant` (the direct
    /// matmul kernels carry the suffix `_direct`).
    fn entry_point_for(self, variant: MatmulVariant) -> &'static str {
        match (self, variant) {
            (Kernel::LinearForward, MatmulVariant::Direct) => "linear_forward_direct",
            (Kernel::LinearBackwardInput, MatmulVariant::Direct) => "linear_backward_input_direct",
            (Kernel::LinearBackwardParams, MatmulVariant::Direct) => {
                "linear_backward_params_direct"
            }
            _ => self.entry_point(),
        }
    }

    fn family(self) -> Family {
        match self {
            Kernel::LinearForward | Kernel::LinearBackwardInput | Kernel::LinearBackwardParams => {
                Family::Linear
            }
            Kernel::BceWithLogits => Family::Loss,
            Kernel::SoftmaxCrossEntropy => Family::Classifier,
            Kernel::AdamUpdate => Family::Adam,
            Kernel::GatherBatch | Kernel::NormalNoise | Kernel::RandomOnehot | Kernel::EndStep => {
                Family::Data
            }
            Kernel::FiniteCheck => Family::Health,
        }
    }

    /// Whether binding 0 is a uniform parameter struct.
    pub fn has_uniform(self) -> bool {
        self != Kernel::EndStep
    }

    /// The number of storage bindings (bindings `1..=n`).
    pub fn storage_bindings(self) -> u32 {
        match self {
            // clock, a, b, y, c
            Kernel::LinearForward | Kernel::LinearBackwardInput | Kernel::LinearBackwardParams => 5,
            // logits, dlogits, stats
            Kernel::BceWithLogits => 3,
            // logits, targets, dlogits, stats
            Kernel::SoftmaxCrossEntropy => 4,
            // clock, params, grads, m, v
            Kernel::AdamUpdate => 5,
            // clock, images, labels, order, x, onehot
            Kernel::GatherBatch => 6,
            // clock, out
            Kernel::NormalNoise => 2,
            // clock, out, also
            Kernel::RandomOnehot => 3,
            // clock
            Kernel::EndStep => 1,
            // values, stats
            Kernel::FiniteCheck => 2,
        }
    }
}

/// A built kernel: its pipeline and bind group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// All pipelines, indexed by [`Kernel`].
pub struct Kernels {
    pipelines: Vec<Pipeline>,
    matmul: MatmulVariant,
}

impl Kernels {
    /// Compiles every shader family and builds every pipeline, the linear
    /// ops from the `matmul` variant. Shader or pipeline errors come back as
    /// [`Error::Gpu`] naming the kernel.
    pub fn new(device: &wgpu::Device, matmul: MatmulVariant) -> Result<Self> {
        let mut modules = Vec::new();
        for family in Family::ALL {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(family.name()),
                source: wgpu::ShaderSource::Wgsl(family.source().into()),
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(Error::Gpu(format!(
                    "shader {} does not compile: {e}",
                    family.name()
                )));
            }
            modules.push((family, module));
        }
        let mut pipelines = Vec::new();
        for kernel in Kernel::ALL {
            let module = modules
                .iter()
                .find(|(f, _)| *f == kernel.family())
                .map(|(_, m)| m)
                .ok_or_else(|| Error::Gpu(format!("no shader module for {kernel:?}")))?;
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let mut entries = Vec::new();
            if kernel.has_uniform() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            for binding in 1..=kernel.storage_bindings() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.entry_point()),
                entries: &entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry_point()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry_point()),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(kernel.entry_point_for(matmul)),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(Error::Gpu(format!(
                    "pipeline {} ({}) cannot be built: {e}",
                    kernel.entry_point_for(matmul),
                    kernel.family().name()
                )));
            }
            pipelines.push(Pipeline { pipeline, layout });
        }
        Ok(Kernels { pipelines, matmul })
    }

    /// The pipeline of `kernel`.
    pub fn get(&self, kernel: Kernel) -> &Pipeline {
        // `pipelines` is built in the order of `Kernel::ALL`, which lists every variant.
        let index = Kernel::ALL
            .iter()
            .position(|k| *k == kernel)
            .unwrap_or_default();
        &self.pipelines[index]
    }

    /// The matmul variant the linear ops were built from.
    pub fn matmul(&self) -> MatmulVariant {
        self.matmul
    }

    /// How many pipelines were built.
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    /// Whether no pipeline was built (never, once `new` succeeded).
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }
}
