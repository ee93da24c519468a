//! Lowering of Resize: scales/sizes/roi must be constants (bound at plan time); the output
//! shape and per-axis scales follow `whittle_ir::eval::resize`, the taps come from
//! [`crate::kernels::resize::axis_taps`].

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::resize::{axis_taps, AxisPlan, ResizePlan};
use whittle_ir::eval::util::norm_axes;
use whittle_ir::{AspectPolicy, CoordTransform, NodeId, Op, ResizeMode, Value};
use whittle_runtime::RuntimeError;

impl Lowerer<'_> {
    /// Lowers Resize; `Ok(false)` for other ops.
    pub(super) fn host_resize(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let Op::Resize(attrs) = &g.node(id).op else {
            return self.host_quant(id);
        };
        let err = |m: String| unsupported(g, id, m);
        let x = self.input_value(id, 0)?;
        let out = Value::new(id, 0);
        let in_shape = self.shape(x);
        let r = in_shape.len();
        let konst = |p: usize| -> Result<Option<Vec<f64>>, RuntimeError> {
            match g.input(id, p) {
                None => Ok(None),
                Some(v) => match self.const_of(v) {
                    Some(t) if t.is_empty() => Ok(None),
                    Some(t) => Ok(Some(t.to_f64_vec())),
                    None => Err(err(format!("input {p} must be a constant"))),
                },
            }
        };
        let axes: Vec<usize> = match &attrs.axes {
            Some(a) => norm_axes(a, r).map_err(err)?,
            None => (0..r).collect(),
        };
        let na = axes.len();
        let mut scales = vec![1.0f64; r];
        let mut oshape = in_shape.clone();
        if let Some(sv) = konst(3)? {
            if sv.len() != na {
                return Err(err(format!("sizes must have {na} entries")));
            }
            for (i, &a) in axes.iter().enumerate() {
                oshape[a] = sv[i].max(0.0) as usize;
                scales[a] = sv[i] / in_shape[a] as f64;
            }
            if attrs.aspect != AspectPolicy::Stretch {
                let it = axes.iter().map(|&a| scales[a]);
                let s = if attrs.aspect == AspectPolicy::NotLarger {
                    it.fold(f64::INFINITY, f64::min)
                } else {
                    it.fold(f64::NEG_INFINITY, f64::max)
                };
                for &a in &axes {
                    scales[a] = s;
                    oshape[a] = (s * in_shape[a] as f64 + 0.5) as usize;
                }
            }
        } else if let Some(sv) = konst(2)? {
            if sv.len() != na {
                return Err(err(format!("scales must have {na} entries")));
            }
            for (i, &a) in axes.iter().enumerate() {
                if !(sv[i] > 0.0 && sv[i].is_finite()) {
                    return Err(err(format!("scale {} must be positive", sv[i])));
                }
                scales[a] = sv[i];
                oshape[a] = (sv[i] * in_shape[a] as f64) as usize;
            }
        } else {
            return Err(err("Resize needs scales or sizes".into()));
        }
        if oshape != self.shape(out) {
            return Err(err(format!(
                "computed output shape {oshape:?} differs from the graph's {:?}",
                self.shape(out)
            )));
        }
        let roi = match konst(1)? {
            Some(v) if v.len() == 2 * na => {
                let mut full = vec![0.0; r];
                full.extend(vec![1.0; r]);
                for (i, &a) in axes.iter().enumerate() {
                    full[a] = v[i];
                    full[r + a] = v[na + i];
                }
                Some(full)
            }
            Some(_) => return Err(err("roi must have two entries per axis".into())),
            None => None,
        };
        if attrs.coord == CoordTransform::TfCropAndResize && roi.is_none() {
            return Err(err("tf_crop_and_resize needs a roi input".into()));
        }
        if attrs.mode == ResizeMode::Nearest && attrs.antialias {
            return Err(err("antialias is not supported with mode nearest".into()));
        }
        let mut plans = Vec::new();
        for &a in &axes {
            let trivial_roi = roi
                .as_ref()
                .is_none_or(|v| v[a] == 0.0 && (v[r + a] - 1.0).abs() <= 1e-9);
            if (scales[a] - 1.0).abs() <= 1e-9 * scales[a].abs().max(1.0)
                && oshape[a] == in_shape[a]
                && trivial_roi
            {
                continue;
            }
            let axis_roi = roi.as_ref().map(|v| (v[a], v[r + a]));
            let taps =
                axis_taps(attrs, in_shape[a], oshape[a], scales[a], axis_roi).map_err(err)?;
            plans.push(AxisPlan { axis: a, taps });
        }
        let plan = ResizePlan {
            in_shape,
            axes: plans,
            dt: self.dtype(x),
        };
        self.push_ext_op(id, ExtOp::Resize(plan), &[x], &[out])?;
        Ok(true)
    }
}
