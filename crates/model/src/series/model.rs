//! [`SeriesModel`]: the forward pass (layers, then the head) and its
//! backward (the head, then the same layers reversed).

use recurrent_kernels::{MatMut, MatRef, Rng};
use recurrent_nn::linear;
use recurrent_nn::recurrent::{Block, Downstream, LayerGrads, LayerParams, Upstream};
use recurrent_nn::regression::{regression_loss, RegressionLoss};
use recurrent_nn::{LayerCache, RecurrentLayer};

use super::config::{SeriesConfig, SeriesOutput};
use crate::check;
use crate::config::ModelError;
use crate::params::{MissingOrMisshapen, ParamLayout};

/// A sequence-regression model: its configuration and its parameters in one
/// flat buffer (see the [module docs](super)).
#[derive(Clone, Debug)]
pub struct SeriesModel {
    /// The architecture.
    pub config: SeriesConfig,
    /// Every parameter, in the layout's order.
    pub params: Vec<f32>,
    layout: ParamLayout,
}

/// A batch of windows and what to predict from them.
#[derive(Clone, Copy, Debug)]
pub struct SeriesBatch<'a> {
    /// Inputs, time-major `[T, B, F]` (stored `[T*B, F]`).
    pub x: &'a [f32],
    /// Time steps, `T`.
    pub steps: usize,
    /// Windows, `B`.
    pub batch: usize,
    /// Targets in the prediction's shape: `[B, O]` for
    /// [`SeriesOutput::Last`], `[T, B, O]` for [`SeriesOutput::Every`].
    pub target: &'a [f32],
    /// A weight per target element (0 masks it out), or none for a plain mean.
    pub weights: Option<&'a [f32]>,
}

/// Buffers of the forward and backward passes, sized once per shape and reused.
#[derive(Default)]
pub struct SeriesWorkspace {
    caches: Vec<LayerCache>,
    zeros: Vec<f32>,
    pred: Vec<f32>,
    dpred: Vec<f32>,
    /// Gradient arriving at the top layer's outputs, `[T*B, H]`.
    dtop: Vec<f32>,
    /// Gradient arriving at the top layer's final state, `[B, H]`.
    dh_n: Vec<f32>,
    /// Gradients of the layers' inputs, two buffers used in turn.
    dx: [Vec<f32>; 2],
}

impl SeriesModel {
    /// A freshly initialized model: every weight and bias uniform in ±1/√H,
    /// PyTorch's default for `nn.LSTM` and for an `nn.Linear` reading `H` values.
    pub fn new(config: SeriesConfig, rng: &mut Rng) -> Result<SeriesModel, ModelError> {
        let layout = config.layout()?;
        let bound = 1.0 / (config.hidden as f32).sqrt();
        let params = (0..layout.total)
            .map(|_| rng.uniform(-bound, bound))
            .collect();
        Ok(SeriesModel {
            config,
            params,
            layout,
        })
    }

    /// A model from named tensors (e.g. read from safetensors): every tensor of
    /// the architecture must be present with its exact shape, and no other.
    pub fn from_tensors(
        config: SeriesConfig,
        tensors: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<SeriesModel, ModelError> {
        let layout = config.layout()?;
        let params = layout.gather(tensors).map_err(|e| match e {
            MissingOrMisshapen::Missing(name) => ModelError::MissingTensor(name),
            MissingOrMisshapen::Shape {
                name,
                expected,
                found,
            } => ModelError::ShapeMismatch {
                name,
                expected,
                found,
            },
        })?;
        if let Some((name, _, _)) = tensors.iter().find(|(n, _, _)| layout.get(n).is_none()) {
            return Err(ModelError::UnexpectedTensor(name.clone()));
        }
        Ok(SeriesModel {
            config,
            params,
            layout,
        })
    }

    /// Every parameter as a named tensor, in layout order.
    pub fn to_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let entries = self.layout.entries.iter();
        entries
            .map(|e| {
                (
                    e.name.clone(),
                    e.shape.clone(),
                    self.params[e.range()].to_vec(),
                )
            })
            .collect()
    }

    /// The parameters' names, shapes and offsets.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// Rows of the prediction for `steps × batch` inputs: `B`, or `T*B`.
    pub fn prediction_rows(&self, steps: usize, batch: usize) -> usize {
        match self.config.output {
            SeriesOutput::Last => batch,
            SeriesOutput::Every => steps * batch,
        }
    }

    /// Predictions for `x: [T, B, F]`: `[B, O]` (last step) or `[T, B, O]`
    /// (every step), in `ws`.
    pub fn predict<'w>(
        &self,
        ws: &'w mut SeriesWorkspace,
        x: &[f32],
        steps: usize,
        batch: usize,
    ) -> Result<&'w [f32], ModelError> {
        self.check_inputs(x, steps, batch)?;
        self.forward(ws, x, steps, batch, false);
        Ok(&ws.pred[..self.prediction_rows(steps, batch) * self.config.outputs])
    }

    /// The mean loss of the batch's predictions against its targets.
    pub fn loss(
        &self,
        ws: &mut SeriesWorkspace,
        b: &SeriesBatch<'_>,
        loss: RegressionLoss,
    ) -> Result<f64, ModelError> {
        self.check_batch(b)?;
        self.forward(ws, b.x, b.steps, b.batch, false);
        let n = self.prediction_rows(b.steps, b.batch) * self.config.outputs;
        Ok(regression_loss(
            loss,
            &ws.pred[..n],
            b.target,
            b.weights,
            None,
            1.0,
        ))
    }

    /// The mean loss of the batch, and its gradient in every parameter added
    /// into `grads` (`[num_params]`).
    pub fn loss_and_grad(
        &self,
        ws: &mut SeriesWorkspace,
        b: &SeriesBatch<'_>,
        loss: RegressionLoss,
        grads: &mut [f32],
    ) -> Result<f64, ModelError> {
        self.check_batch(b)?;
        check::len("grads", self.layout.total, grads.len())?;
        self.forward(ws, b.x, b.steps, b.batch, true);
        let n = self.prediction_rows(b.steps, b.batch) * self.config.outputs;
        ws.dpred.resize(n, 0.0);
        let value = regression_loss(
            loss,
            &ws.pred[..n],
            b.target,
            b.weights,
            Some(&mut ws.dpred[..n]),
            1.0,
        );
        self.backward(ws, b.x, b.steps, b.batch, grads);
        Ok(value)
    }

    fn check_inputs(&self, x: &[f32], steps: usize, batch: usize) -> Result<(), ModelError> {
        check::nonzero("steps", steps)?;
        check::nonzero("batch", batch)?;
        let want = steps
            .checked_mul(batch)
            .and_then(|n| n.checked_mul(self.config.inputs));
        check::len("x", want.unwrap_or(usize::MAX), x.len())
    }

    fn check_batch(&self, b: &SeriesBatch<'_>) -> Result<(), ModelError> {
        self.check_inputs(b.x, b.steps, b.batch)?;
        let n = self.prediction_rows(b.steps, b.batch) * self.config.outputs;
        check::len("target", n, b.target.len())?;
        if let Some(w) = b.weights {
            check::len("weights", n, w.len())?;
        }
        Ok(())
    }

    /// Layer `k` of the stack.
    fn layer(&self, k: usize) -> RecurrentLayer {
        RecurrentLayer {
            cell: self.config.cell,
            input_size: self.config.layer_input(k),
            hidden_size: self.config.hidden,
        }
    }

    /// Layer `k`'s parameters.
    fn layer_params(&self, k: usize) -> LayerParams<'_> {
        let e = &self.layout.entries[4 * k..4 * k + 4];
        let p = &self.params;
        LayerParams {
            w_ih: &p[e[0].range()],
            w_hh: &p[e[1].range()],
            b_ih: &p[e[2].range()],
            b_hh: &p[e[3].range()],
        }
    }

    /// The head's weight `[O, H]` and bias `[O]`.
    fn head(&self) -> (&[f32], &[f32]) {
        let l = self.config.layers;
        let e = &self.layout.entries;
        (
            &self.params[e[4 * l].range()],
            &self.params[e[4 * l + 1].range()],
        )
    }

    /// What the head reads: the top layer's last step `[B, H]` or every step `[T*B, H]`.
    fn head_input<'c>(&self, caches: &'c [LayerCache]) -> &'c [f32] {
        let top = &caches[self.config.layers - 1];
        match self.config.output {
            SeriesOutput::Last => top.last_h(self.config.hidden),
            SeriesOutput::Every => top.output(self.config.hidden),
        }
    }

    // x is (T*B, F); every layer starts from zeros; pred is (rows, O).
    fn forward(
        &self,
        ws: &mut SeriesWorkspace,
        x: &[f32],
        steps: usize,
        batch: usize,
        for_backward: bool,
    ) {
        let (h, o) = (self.config.hidden, self.config.outputs);
        ws.caches
            .resize_with(self.config.layers, LayerCache::default);
        ws.zeros.clear();
        ws.zeros.resize(batch * h, 0.0);
        for k in 0..self.config.layers {
            let (below, rest) = ws.caches.split_at_mut(k);
            let input = match below.last() {
                None => x,
                Some(c) => c.output(h),
            };
            let block = Block::new(steps, batch, &ws.zeros, &ws.zeros);
            let p = self.layer_params(k);
            self.layer(k)
                .forward(p, input, block, &mut rest[0], for_backward);
        }
        let rows = self.prediction_rows(steps, batch);
        ws.pred.resize(rows * o, 0.0);
        let (w, b) = self.head();
        linear::forward(
            MatRef::new(self.head_input(&ws.caches), rows, h),
            MatRef::new(w, o, h),
            b,
            MatMut::new(&mut ws.pred, rows, o),
        );
    }

    // Backward of forward, from ws.dpred (rows, O): the head, then the layers top down.
    fn backward(
        &self,
        ws: &mut SeriesWorkspace,
        x: &[f32],
        steps: usize,
        batch: usize,
        grads: &mut [f32],
    ) {
        let (h, o, l) = (self.config.hidden, self.config.outputs, self.config.layers);
        let rows = self.prediction_rows(steps, batch);
        let mut g = self.layout.split_mut(grads);
        let (w, _) = self.head();
        let (layer_g, head_g) = g.split_at_mut(4 * l);
        let [dw, db] = head_g else {
            unreachable!("the layout ends with the head's two tensors")
        };
        // y = x_head · Wᵀ + b  →  dW += dyᵀ·x_head, db += Σ dy, dx_head = dy·W.
        let dhead = match self.config.output {
            SeriesOutput::Last => &mut ws.dh_n,
            SeriesOutput::Every => &mut ws.dtop,
        };
        dhead.resize(rows * h, 0.0);
        linear::backward(
            MatRef::new(self.head_input(&ws.caches), rows, h),
            MatRef::new(w, o, h),
            MatRef::new(&ws.dpred[..rows * o], rows, o),
            dw,
            db,
            Some(&mut dhead[..rows * h]),
        );
        if self.config.output == SeriesOutput::Last {
            // Only the last step reaches the head: its gradient enters as dh_n.
            ws.dtop.clear();
            ws.dtop.resize(steps * batch * h, 0.0);
        }
        let n = steps * batch;
        let [dx_a, dx_b] = &mut ws.dx;
        let mut upper: &mut Vec<f32> = &mut ws.dtop;
        let mut spare: [&mut Vec<f32>; 2] = [dx_a, dx_b];
        for k in (0..l).rev() {
            let (below, rest) = ws.caches.split_at_mut(k);
            let input = match below.last() {
                None => x,
                Some(c) => c.output(h),
            };
            let up = Upstream {
                dy: &upper[..n * h],
                dh_n: (k == l - 1 && self.config.output == SeriesOutput::Last)
                    .then(|| &ws.dh_n[..batch * h]),
                ..Upstream::default()
            };
            let [gw_ih, gw_hh, gb_ih, gb_hh] = &mut layer_g[4 * k..4 * k + 4] else {
                unreachable!("four tensors per layer")
            };
            let lg = LayerGrads {
                w_ih: gw_ih,
                w_hh: gw_hh,
                b_ih: gb_ih,
                b_hh: gb_hh,
            };
            let next = &mut spare[k % 2];
            let dx = if k > 0 {
                next.resize(n * h, 0.0);
                Some(&mut next[..n * h])
            } else {
                None
            };
            let down = Downstream {
                dx,
                ..Downstream::default()
            };
            self.layer(k)
                .backward(self.layer_params(k), lg, input, up, &mut rest[0], down);
            if k > 0 {
                std::mem::swap(&mut upper, &mut spare[k % 2]);
            }
        }
    }
}
