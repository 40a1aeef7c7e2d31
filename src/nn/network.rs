//! One network on a backend: its flat parameters, gradients and Adam moments,
//! the per-layer output buffers, and the forward and backward passes written
//! once against [`Backend`].

use crate::backend::{Backend, Dropout, Mat, Tensor};
use crate::error::Result;
use crate::model::{NetworkLayout, NetworkSpec};
use crate::rng;

/// A network resident on a backend.
pub struct Network {
    pub spec: NetworkSpec,
    pub layout: NetworkLayout,
    /// All weights and biases, laid out per [`NetworkLayout`].
    pub params: Tensor,
    /// Gradients, same layout.
    pub grads: Tensor,
    /// Adam's first and second moments, same layout.
    pub adam_m: Tensor,
    pub adam_v: Tensor,
    /// Output of each layer: [max_rows, out_dim].
    outputs: Vec<Tensor>,
    /// Gradient with respect to each hidden layer's output: [max_rows, out_dim].
    output_grads: Vec<Tensor>,
}

impl Network {
    /// Allocates the network on `backend` with room for `max_rows` rows, and
    /// uploads its initial parameters (zero moments).
    pub fn new<B: Backend>(
        backend: &mut B,
        spec: &NetworkSpec,
        max_rows: usize,
        seed: u32,
        network_id: u32,
    ) -> Result<Self> {
        let layout = NetworkLayout::new(spec);
        let params = backend.alloc(layout.len)?;
        backend.write(params, &layout.initial_params(spec, seed, network_id))?;
        let grads = backend.alloc(layout.len)?;
        let adam_m = backend.alloc(layout.len)?;
        let adam_v = backend.alloc(layout.len)?;
        let mut outputs = Vec::new();
        let mut output_grads = Vec::new();
        for layer in &spec.layers {
            outputs.push(backend.alloc(max_rows * layer.out_dim)?);
            output_grads.push(backend.alloc(max_rows * layer.out_dim)?);
        }
        Ok(Network {
            spec: spec.clone(),
            layout,
            params,
            grads,
            adam_m,
            adam_v,
            outputs,
            output_grads,
        })
    }

    /// The output of layer `i` for `rows` rows.
    pub fn layer_output(&self, i: usize, rows: usize) -> Mat {
        Mat::dense(self.outputs[i], rows, self.spec.layers[i].out_dim)
    }

    /// The network's own output buffer (the last layer's) for `rows` rows.
    pub fn output(&self, rows: usize) -> Mat {
        self.layer_output(self.spec.layers.len() - 1, rows)
    }

    /// Dropout of layer `i` in training pass `pass` (None when not training).
    fn dropout(&self, i: usize, pass: Option<u32>) -> Option<Dropout> {
        let p = self.spec.layers[i].dropout;
        match pass {
            Some(pass) if p > 0.0 => Some(Dropout {
                p,
                stream: rng::stream::DROPOUT + 16 * pass + i as u32,
            }),
            _ => None,
        }
    }

    /// Input and output views of every layer, given the network's input and
    /// where its last layer writes.
    fn views(&self, input: Mat, output: Mat) -> Vec<(Mat, Mat)> {
        let rows = input.rows as usize;
        let last = self.spec.layers.len() - 1;
        (0..=last)
            .map(|i| {
                let x = if i == 0 {
                    input
                } else {
                    self.layer_output(i - 1, rows)
                };
                let y = if i == last {
                    output
                } else {
                    self.layer_output(i, rows)
                };
                (x, y)
            })
            .collect()
    }

    /// Forward pass: `input` [rows, in] through every layer into `output`
    /// [rows, out]. `pass` selects the dropout masks (None: no dropout).
    pub fn forward<B: Backend>(&self, backend: &mut B, input: Mat, pass: Option<u32>, output: Mat) {
        for (i, (x, y)) in self.views(input, output).into_iter().enumerate() {
            let layer = &self.spec.layers[i];
            let dropout = self.dropout(i, pass);
            backend.linear_forward(
                x,
                self.params,
                self.layout.layers[i],
                layer.activation,
                dropout,
                y,
            );
        }
    }

    /// Backward pass after [`forward`](Self::forward) with the same `input`,
    /// `pass` and `output`. `d_output` is the loss gradient with respect to
    /// `output`. Writes parameter gradients when `param_grads`, and the
    /// gradient with respect to the input's leading `d_input.cols` columns
    /// when `d_input` is given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        backend: &mut B,
        input: Mat,
        pass: Option<u32>,
        output: Mat,
        d_output: Mat,
        param_grads: bool,
        d_input: Option<Mat>,
    ) {
        let rows = input.rows as usize;
        let views = self.views(input, output);
        let last = views.len() - 1;
        for i in (0..=last).rev() {
            let (x, y) = views[i];
            let layer = &self.spec.layers[i];
            let slot = self.layout.layers[i];
            let dropout = self.dropout(i, pass);
            let dy = if i == last {
                d_output
            } else {
                Mat::dense(self.output_grads[i], rows, layer.out_dim)
            };
            if param_grads {
                backend.linear_backward_params(
                    dy,
                    y,
                    layer.activation,
                    dropout,
                    x,
                    self.grads,
                    slot,
                );
            }
            let dx = if i > 0 {
                Some(Mat::dense(self.output_grads[i - 1], rows, layer.in_dim))
            } else {
                d_input
            };
            if let Some(dx) = dx {
                backend.linear_backward_input(
                    dy,
                    y,
                    layer.activation,
                    dropout,
                    self.params,
                    slot,
                    dx,
                );
            }
        }
    }
}
