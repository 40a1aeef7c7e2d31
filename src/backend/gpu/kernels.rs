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

pub use super::matmul::{MatmulKernel, MatmulVariant};
use crate::error::{Error, Result};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const RANDOM: &str = include_str!("../../../shaders/random.wgsl");
const ACTIVATION: &str = include_str!("../../../shaders/activation.wgsl");
const LINEAR: &str = include_str!("../../../shaders/linear.wgsl");
const LINEAR_BLOCKED: &str = include_str!("../../../shaders/linear_blocked.wgsl");
const LINEAR_SPLIT: &str = include_str!("../../../shaders/linear_split.wgsl");
const LOSS: &str = include_str!("../../../shaders/loss.wgsl");
const CLASSIFIER: &str = include_str!("../../../shaders/classifier.wgsl");
const ADAM: &str = include_str!("../../../shaders/adam.wgsl");
const DATA: &str = include_str!("../../../shaders/data.wgsl");
const HEALTH: &str = include_str!("../../../shaders/health.wgsl");
const CONV: &str = include_str!("../../../shaders/conv.wgsl");
const BATCH_NORM: &str = include_str!("../../../shaders/batch_norm.wgsl");
const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
const PENALTY: &str = include_str!("../../../shaders/penalty.wgsl");

/// Every kernel (pipeline) of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    LinearForward,
    LinearBackwardInput,
    LinearBackwardParams,
    BceWithLogits,
    CriticLoss,
    SoftmaxCrossEntropy,
    AdamUpdate,
    RmspropUpdate,
    ClampValues,
    EmaUpdate,
    AddScaled,
    GatherBatch,
    NormalNoise,
    RandomOnehot,
    EndStep,
    FiniteCheck,
    Conv2dForward,
    Conv2dBackwardInput,
    Conv2dBackwardParams,
    Conv2dBiasGrad,
    BatchNormForwardTrain,
    BatchNormNormalize,
    BatchNormForwardEval,
    BatchNormBackward,
    BatchNormBackwardDx,
    ActivationForward,
    ActivationBackward,
    InterpolateRows,
    GradientPenalty,
    ActivationCurvature,
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
    Conv,
    BatchNorm,
    Elementwise,
    Penalty,
}

impl Family {
    const ALL: [Family; 10] = [
        Family::Linear,
        Family::Loss,
        Family::Classifier,
        Family::Adam,
        Family::Data,
        Family::Health,
        Family::Conv,
        Family::BatchNorm,
        Family::Elementwise,
        Family::Penalty,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::Linear => "linear.wgsl",
            Family::Loss => "loss.wgsl",
            Family::Classifier => "classifier.wgsl",
            Family::Adam => "adam.wgsl",
            Family::Data => "data.wgsl",
            Family::Health => "health.wgsl",
            Family::Conv => "conv.wgsl",
            Family::BatchNorm => "batch_norm.wgsl",
            Family::Elementwise => "elementwise.wgsl",
            Family::Penalty => "penalty.wgsl",
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
            Family::Conv => &[COMMON, CONV],
            Family::BatchNorm => &[COMMON, ACTIVATION, BATCH_NORM],
            Family::Elementwise => &[COMMON, RANDOM, ACTIVATION, ELEMENTWISE],
            Family::Penalty => &[COMMON, RANDOM, ACTIVATION, PENALTY],
        };
        parts.join("\n")
    }
}

impl Kernel {
    pub const ALL: [Kernel; 30] = [
        Kernel::LinearForward,
        Kernel::LinearBackwardInput,
        Kernel::LinearBackwardParams,
        Kernel::BceWithLogits,
        Kernel::CriticLoss,
        Kernel::SoftmaxCrossEntropy,
        Kernel::AdamUpdate,
        Kernel::RmspropUpdate,
        Kernel::ClampValues,
        Kernel::EmaUpdate,
        Kernel::AddScaled,
        Kernel::GatherBatch,
        Kernel::NormalNoise,
        Kernel::RandomOnehot,
        Kernel::EndStep,
        Kernel::FiniteCheck,
        Kernel::Conv2dForward,
        Kernel::Conv2dBackwardInput,
        Kernel::Conv2dBackwardParams,
        Kernel::Conv2dBiasGrad,
        Kernel::BatchNormForwardTrain,
        Kernel::BatchNormNormalize,
        Kernel::BatchNormForwardEval,
        Kernel::BatchNormBackward,
        Kernel::BatchNormBackwardDx,
        Kernel::ActivationForward,
        Kernel::ActivationBackward,
        Kernel::InterpolateRows,
        Kernel::GradientPenalty,
        Kernel::ActivationCurvature,
    ];

    /// The WGSL entry point (named like the CPU function it mirrors).
    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::LinearForward => "linear_forward",
            Kernel::LinearBackwardInput => "linear_backward_input",
            Kernel::LinearBackwardParams => "linear_backward_params",
            Kernel::BceWithLogits => "bce_with_logits",
            Kernel::CriticLoss => "critic_loss",
            Kernel::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Kernel::AdamUpdate => "adam_update",
            Kernel::RmspropUpdate => "rmsprop_update",
            Kernel::ClampValues => "clamp_values",
            Kernel::EmaUpdate => "ema_update",
            Kernel::AddScaled => "add_scaled",
            Kernel::GatherBatch => "gather_batch",
            Kernel::NormalNoise => "normal_noise",
            Kernel::RandomOnehot => "random_onehot",
            Kernel::EndStep => "end_step",
            Kernel::FiniteCheck => "finite_check",
            Kernel::Conv2dForward => "conv2d_forward",
            Kernel::Conv2dBackwardInput => "conv2d_backward_input",
            Kernel::Conv2dBackwardParams => "conv2d_backward_params",
            Kernel::Conv2dBiasGrad => "conv2d_bias_grad",
            Kernel::BatchNormForwardTrain => "batch_norm_forward_train",
            Kernel::BatchNormNormalize => "batch_norm_normalize",
            Kernel::BatchNormForwardEval => "batch_norm_forward_eval",
            Kernel::BatchNormBackward => "batch_norm_backward",
            Kernel::BatchNormBackwardDx => "batch_norm_backward_dx",
            Kernel::ActivationForward => "activation_forward",
            Kernel::ActivationBackward => "activation_backward",
            Kernel::InterpolateRows => "interpolate_rows",
            Kernel::GradientPenalty => "gradient_penalty",
            Kernel::ActivationCurvature => "activation_curvature",
        }
    }

    /// The entry point built for this kernel with the `matmul` variant: the
    /// convolution products take the direct kernels (suffix `_direct`, no
    /// workgroup memory) where the linear ops do, on CPU adapters.
    pub fn entry_point_for(self, matmul: MatmulVariant) -> String {
        let direct = matmul == MatmulVariant::Direct
            && matches!(
                self,
                Kernel::Conv2dForward | Kernel::Conv2dBackwardInput | Kernel::Conv2dBackwardParams
            );
        if direct {
            format!("{}_direct", self.entry_point())
        } else {
            self.entry_point().to_string()
        }
    }

    /// Whether this is one of the three linear (matmul) ops.
    pub fn is_linear(self) -> bool {
        matches!(
            self,
            Kernel::LinearForward | Kernel::LinearBackwardInput | Kernel::LinearBackwardParams
        )
    }

    fn family(self) -> Family {
        match self {
            Kernel::LinearForward | Kernel::LinearBackwardInput | Kernel::LinearBackwardParams => {
                Family::Linear
            }
            Kernel::BceWithLogits | Kernel::CriticLoss => Family::Loss,
            Kernel::SoftmaxCrossEntropy => Family::Classifier,
            Kernel::AdamUpdate
            | Kernel::RmspropUpdate
            | Kernel::ClampValues
            | Kernel::EmaUpdate
            | Kernel::AddScaled => Family::Adam,
            Kernel::GatherBatch | Kernel::NormalNoise | Kernel::RandomOnehot | Kernel::EndStep => {
                Family::Data
            }
            Kernel::FiniteCheck => Family::Health,
            Kernel::Conv2dForward
            | Kernel::Conv2dBackwardInput
            | Kernel::Conv2dBackwardParams
            | Kernel::Conv2dBiasGrad => Family::Conv,
            Kernel::BatchNormForwardTrain
            | Kernel::BatchNormNormalize
            | Kernel::BatchNormForwardEval
            | Kernel::BatchNormBackward
            | Kernel::BatchNormBackwardDx => Family::BatchNorm,
            Kernel::ActivationForward | Kernel::ActivationBackward => Family::Elementwise,
            Kernel::InterpolateRows | Kernel::GradientPenalty | Kernel::ActivationCurvature => {
                Family::Penalty
            }
        }
    }

    /// Whether binding 0 is a uniform parameter struct.
    pub fn has_uniform(self) -> bool {
        self != Kernel::EndStep
    }

    /// The number of storage bindings (bindings `1..=n`).
    pub fn storage_bindings(self) -> u32 {
        match self {
            // clock, a, b, y, c, the split kernel's partial sums
            Kernel::LinearForward | Kernel::LinearBackwardInput | Kernel::LinearBackwardParams => 6,
            // logits, dlogits, stats
            Kernel::BceWithLogits | Kernel::CriticLoss => 3,
            // logits, targets, dlogits, stats
            Kernel::SoftmaxCrossEntropy => 4,
            // clock, params, grads, m, v
            Kernel::AdamUpdate => 5,
            // params, grads, sq
            Kernel::RmspropUpdate => 3,
            // values
            Kernel::ClampValues => 1,
            // avg, values; dst, src
            Kernel::EmaUpdate | Kernel::AddScaled => 2,
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
            // a (x or dy), b (w or x), bias, c (the output)
            Kernel::Conv2dForward
            | Kernel::Conv2dBackwardInput
            | Kernel::Conv2dBackwardParams
            | Kernel::Conv2dBiasGrad => 4,
            // x and five more by entry point (see batch_norm.wgsl's table)
            Kernel::BatchNormForwardTrain
            | Kernel::BatchNormNormalize
            | Kernel::BatchNormForwardEval
            | Kernel::BatchNormBackward
            | Kernel::BatchNormBackwardDx => 6,
            // clock, a (x or dy), b (y), d (dx; the forward binds y again)
            Kernel::ActivationForward | Kernel::ActivationBackward => 4,
            // clock, real, fake, out; clock (unused), grad, v, stats
            Kernel::InterpolateRows | Kernel::GradientPenalty => 4,
            // clock, u, t, y, out
            Kernel::ActivationCurvature => 5,
        }
    }
}

/// A built kernel: its pipeline and bind group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// All pipelines, indexed by [`Kernel`]; the linear ops once per matmul
/// kernel of the variant.
pub struct Kernels {
    pipelines: Vec<Pipeline>,
    linear: Vec<(Kernel, MatmulKernel, wgpu::ComputePipeline)>,
    /// The split kernel's reducing second dispatch per linear op (K chunked).
    split_reduce: Vec<(Kernel, wgpu::ComputePipeline)>,
    /// The backward ops' dz pass before a large (blocked) product.
    dz: Vec<(Kernel, wgpu::ComputePipeline)>,
    matmul: MatmulVariant,
}

/// The module source of a matmul kernel: `linear.wgsl` for tiled and direct,
/// followed by `linear_split.wgsl`, or by `linear_blocked.wgsl` (after its tile
/// constants) and the generated body.
fn matmul_source(mk: MatmulKernel) -> String {
    match mk {
        MatmulKernel::Tiled | MatmulKernel::Direct => Family::Linear.source(),
        MatmulKernel::Split => format!("{}\n{LINEAR_SPLIT}", Family::Linear.source()),
        _ => format!(
            "const BM: u32 = {}u;\nconst BK: u32 = {}u;\n{}\n{LINEAR_BLOCKED}\n{}",
            mk.tile(),
            mk.k_step(),
            Family::Linear.source(),
            super::blocked::gemm_blocked(mk.tile(), mk.k_step())
        ),
    }
}

/// Runs `make` inside validation and internal error scopes (a backend that
/// cannot translate a shader, e.g. OpenGL below 4.3, reports an internal
/// error) and returns the first error as one line.
fn scoped<T>(device: &wgpu::Device, make: impl FnOnce() -> T) -> (T, Option<String>) {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let value = make();
    let first = pollster::block_on(internal.pop());
    let second = pollster::block_on(validation.pop());
    let error = first.or(second).map(|e| {
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    });
    (value, error)
}

fn compile(device: &wgpu::Device, name: &str, source: String) -> Result<wgpu::ShaderModule> {
    let (module, error) = scoped(device, || {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        })
    });
    match error {
        Some(e) => Err(Error::Gpu(format!("shader {name} does not compile: {e}"))),
        None => Ok(module),
    }
}

fn bind_group_layout(device: &wgpu::Device, kernel: Kernel) -> wgpu::BindGroupLayout {
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
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(kernel.entry_point()),
        entries: &entries,
    })
}

fn pipeline(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    module: &wgpu::ShaderModule,
    entry_point: &str,
    file: &str,
) -> Result<wgpu::ComputePipeline> {
    let (pipeline, error) = scoped(device, || {
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry_point),
            bind_group_layouts: &[Some(layout)],
            immediate_size: 0,
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module,
            entry_point: Some(entry_point),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        })
    });
    match error {
        Some(e) => Err(Error::Gpu(format!(
            "pipeline {entry_point} ({file}) cannot be built: {e}"
        ))),
        None => Ok(pipeline),
    }
}

impl Kernels {
    /// Compiles every shader family and builds every pipeline, the linear
    /// ops once for each matmul kernel of the `matmul` variant. Shader or
    /// pipeline errors come back as [`Error::Gpu`] naming the kernel.
    pub fn new(device: &wgpu::Device, matmul: MatmulVariant) -> Result<Self> {
        let mut modules = Vec::new();
        for family in Family::ALL {
            modules.push((family, compile(device, family.name(), family.source())?));
        }
        let mut matmul_modules = Vec::new();
        for &mk in matmul.kernels() {
            let module = match mk {
                MatmulKernel::Tiled | MatmulKernel::Direct => None,
                MatmulKernel::Split => {
                    Some(compile(device, "linear_split.wgsl", matmul_source(mk))?)
                }
                _ => Some(compile(device, "linear_blocked.wgsl", matmul_source(mk))?),
            };
            matmul_modules.push((mk, module));
        }
        let mut pipelines = Vec::new();
        let mut linear = Vec::new();
        let mut split_reduce = Vec::new();
        let mut dz = Vec::new();
        for kernel in Kernel::ALL {
            let module = modules
                .iter()
                .find(|(f, _)| *f == kernel.family())
                .map(|(_, m)| m)
                .ok_or_else(|| Error::Gpu(format!("no shader module for {kernel:?}")))?;
            let layout = bind_group_layout(device, kernel);
            let file = kernel.family().name();
            if !kernel.is_linear() {
                let entry = kernel.entry_point_for(matmul);
                let pipeline = pipeline(device, &layout, module, &entry, file)?;
                pipelines.push(Pipeline { pipeline, layout });
                continue;
            }
            if kernel != Kernel::LinearForward && matmul.kernels().iter().any(|mk| mk.is_blocked())
            {
                let entry = format!("{}_dz", kernel.entry_point());
                dz.push((kernel, pipeline(device, &layout, module, &entry, file)?));
            }
            let mut first = None;
            for (mk, own) in &matmul_modules {
                let entry = format!("{}{}", kernel.entry_point(), mk.suffix());
                let p = pipeline(
                    device,
                    &layout,
                    own.as_ref().unwrap_or(module),
                    &entry,
                    file,
                )?;
                first.get_or_insert_with(|| p.clone());
                linear.push((kernel, *mk, p));
                if let (MatmulKernel::Split, Some(own)) = (mk, own) {
                    let entry = format!("{}_split_reduce", kernel.entry_point());
                    let reduce = pipeline(device, &layout, own, &entry, "linear_split.wgsl")?;
                    split_reduce.push((kernel, reduce));
                }
            }
            let pipeline = first.ok_or_else(|| Error::Gpu("no matmul kernel to build".into()))?;
            pipelines.push(Pipeline { pipeline, layout });
        }
        Ok(Kernels {
            pipelines,
            linear,
            split_reduce,
            dz,
            matmul,
        })
    }

    /// The pipeline of `kernel`. `pipelines` is built in the order of
    /// [`Kernel::ALL`], one per kernel (`new` fails otherwise), so this
    /// fails only for a kernel missing from `Kernel::ALL`: an
    /// [`Error::Gpu`] naming it.
    pub fn get(&self, kernel: Kernel) -> Result<&Pipeline> {
        Kernel::ALL
            .iter()
            .position(|k| *k == kernel)
            .and_then(|index| self.pipelines.get(index))
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "kernel {} ({kernel:?}) has no pipeline: it is missing from Kernel::ALL",
                    kernel.entry_point()
                ))
            })
    }

    /// The pipeline of a linear op's `kernel` built from matmul kernel `mk`,
    /// if the variant built it.
    pub fn linear(&self, kernel: Kernel, mk: MatmulKernel) -> Option<&wgpu::ComputePipeline> {
        self.linear
            .iter()
            .find(|(k, m, _)| *k == kernel && *m == mk)
            .map(|(_, _, p)| p)
    }

    /// The split kernel's reducing pipeline for linear op `kernel`, if built.
    pub fn split_reduce(&self, kernel: Kernel) -> Option<&wgpu::ComputePipeline> {
        self.split_reduce
            .iter()
            .find(|(k, _)| *k == kernel)
            .map(|(_, p)| p)
    }

    /// The dz pass of backward linear op `kernel`.
    pub fn dz(&self, kernel: Kernel) -> Option<&wgpu::ComputePipeline> {
        self.dz.iter().find(|(k, _)| *k == kernel).map(|(_, p)| p)
    }

    /// The matmul variant the linear ops were built from.
    pub fn matmul(&self) -> MatmulVariant {
        self.matmul
    }

    /// The matmul kernel a linear op with an M x N output runs.
    pub fn matmul_kernel(&self, m: u32, n: u32, k: u32) -> MatmulKernel {
        self.matmul.kernel_for(m, n, k)
    }

    /// How many pipelines were built. A linear op's entry in `pipelines` is
    /// a clone of its first matmul kernel's pipeline, which `linear` holds
    /// too, so those entries are counted once, in `linear`.
    pub fn len(&self) -> usize {
        let linear_ops = Kernel::ALL.iter().filter(|k| k.is_linear()).count();
        self.pipelines.len() - linear_ops
            + self.linear.len()
            + self.split_reduce.len()
            + self.dz.len()
    }

    /// Whether no pipeline was built (never, once `new` succeeded).
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    /// `Kernels::get` finds a kernel's pipeline by its place in `Kernel::ALL`:
    /// each kernel must be listed once.
    #[test]
    fn all_lists_each_kernel_once() {
        for (i, k) in Kernel::ALL.iter().enumerate() {
            assert_eq!(Kernel::ALL.iter().position(|o| o == k), Some(i), "{k:?}");
        }
    }
}
