//! ONNX forms of the scatters, Compress, Unique, ReverseSequence, DepthToSpace /
//! SpaceToDepth, CenterCropPad, Col2Im, MaxUnpool, LpPool, the extra normalizations and Det
//! (see `ops/index_norm.rs`), and the opset each form needs.

use super::ops::{attr_f, attr_i, attr_ints, attr_s, window_attrs};
use crate::proto::AttributeProto;
use whittle_ir::{Op, ScatterKind, ScatterReduction};

/// The lowest opset that spells `op` as [`onnx_form`] writes it, for the ops of this file.
pub(crate) fn min_opset(op: &Op) -> Option<i64> {
    use ScatterReduction as R;
    Some(match op {
        Op::SpaceToDepth { crd: true, .. } => 28,
        Op::Scatter {
            kind: ScatterKind::Tensor { .. },
            ..
        } => 24,
        Op::GroupNormalization {
            per_group_affine: false,
            ..
        } => 21,
        Op::Scatter {
            reduction: R::Max | R::Min,
            ..
        }
        | Op::GroupNormalization { .. }
        | Op::CenterCropPad { .. }
        | Op::Col2Im { .. } => 18,
        Op::LpPool {
            window, ceil_mode, ..
        } if *ceil_mode || !window.dilations.is_empty() => 18,
        Op::Scatter {
            reduction: R::Add | R::Mul,
            ..
        } => 16,
        Op::Scatter { .. }
        | Op::Compress { .. }
        | Op::Unique { .. }
        | Op::ReverseSequence { .. }
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::MaxUnpool { .. }
        | Op::LpPool { .. }
        | Op::LpNormalization { .. }
        | Op::Lrn { .. }
        | Op::InstanceNormalization { .. }
        | Op::MeanVarianceNormalization { .. }
        | Op::Det => 13,
        _ => return None,
    })
}

fn mode(crd: bool) -> &'static str {
    if crd {
        "CRD"
    } else {
        "DCR"
    }
}

fn usizes(v: &[usize]) -> impl Iterator<Item = i64> + '_ {
    v.iter().map(|&x| x as i64)
}

/// The op type for `op` (one of this file's ops), pushing its attributes onto `a`.
pub(crate) fn onnx_form(op: &Op, a: &mut Vec<AttributeProto>) -> Option<&'static str> {
    Some(match op {
        Op::Scatter { kind, reduction } => {
            let r = match reduction {
                ScatterReduction::None => "none",
                ScatterReduction::Add => "add",
                ScatterReduction::Mul => "mul",
                ScatterReduction::Max => "max",
                ScatterReduction::Min => "min",
            };
            match kind {
                ScatterKind::Elements { axis } => {
                    a.push(attr_i("axis", *axis));
                    if *reduction != ScatterReduction::None {
                        a.push(attr_s("reduction", r));
                    }
                    "ScatterElements"
                }
                ScatterKind::Nd => {
                    if *reduction != ScatterReduction::None {
                        a.push(attr_s("reduction", r));
                    }
                    "ScatterND"
                }
                ScatterKind::Tensor { axis, circular } => {
                    let m = if *circular { "circular" } else { "linear" };
                    a.extend([attr_i("axis", *axis), attr_s("mode", m)]);
                    "TensorScatter"
                }
            }
        }
        Op::Compress { axis } => {
            if let Some(ax) = axis {
                a.push(attr_i("axis", *ax));
            }
            "Compress"
        }
        Op::Unique { axis, sorted } => {
            if let Some(ax) = axis {
                a.push(attr_i("axis", *ax));
            }
            a.push(attr_i("sorted", *sorted as i64));
            "Unique"
        }
        Op::ReverseSequence {
            batch_axis,
            time_axis,
        } => {
            a.extend([
                attr_i("batch_axis", *batch_axis),
                attr_i("time_axis", *time_axis),
            ]);
            "ReverseSequence"
        }
        Op::DepthToSpace { blocksize, crd } => {
            a.extend([
                attr_i("blocksize", *blocksize as i64),
                attr_s("mode", mode(*crd)),
            ]);
            "DepthToSpace"
        }
        Op::SpaceToDepth { blocksize, crd } => {
            a.push(attr_i("blocksize", *blocksize as i64));
            if *crd {
                a.push(attr_s("mode", mode(true)));
            }
            "SpaceToDepth"
        }
        Op::CenterCropPad { axes } => {
            if let Some(ax) = axes {
                a.push(attr_ints("axes", ax.iter().copied()));
            }
            "CenterCropPad"
        }
        Op::Col2Im {
            dilations,
            pads,
            strides,
        } => {
            for (name, v) in [
                ("dilations", dilations),
                ("pads", pads),
                ("strides", strides),
            ] {
                if !v.is_empty() {
                    a.push(attr_ints(name, usizes(v)));
                }
            }
            "Col2Im"
        }
        Op::MaxUnpool { window } => {
            window_attrs(window, a);
            "MaxUnpool"
        }
        Op::LpPool {
            window,
            ceil_mode,
            p,
        } => {
            window_attrs(window, a);
            if *ceil_mode {
                a.push(attr_i("ceil_mode", 1));
            }
            a.push(attr_i("p", *p));
            "LpPool"
        }
        Op::LpNormalization { axis, p } => {
            a.extend([attr_i("axis", *axis), attr_i("p", *p)]);
            "LpNormalization"
        }
        Op::Lrn {
            alpha,
            beta,
            bias,
            size,
        } => {
            a.extend([
                attr_f("alpha", *alpha),
                attr_f("beta", *beta),
                attr_f("bias", *bias),
                attr_i("size", *size as i64),
            ]);
            "LRN"
        }
        Op::InstanceNormalization { epsilon } => {
            a.push(attr_f("epsilon", *epsilon));
            "InstanceNormalization"
        }
        Op::GroupNormalization {
            epsilon,
            num_groups,
            ..
        } => {
            a.extend([
                attr_f("epsilon", *epsilon),
                attr_i("num_groups", *num_groups as i64),
            ]);
            "GroupNormalization"
        }
        Op::MeanVarianceNormalization { axes } => {
            a.push(attr_ints("axes", axes.iter().copied()));
            "MeanVarianceNormalization"
        }
        Op::Det => "Det",
        _ => return None,
    })
}
