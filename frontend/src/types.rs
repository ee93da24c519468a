//! ONNX `TypeProto` / `ValueInfoProto` <-> IR `TensorType`: known dims, named symbolic dims
//! (`dim_param`) and anonymous dims (given fresh symbols).

use crate::proto::{tensor_shape_proto, type_proto, TensorShapeProto, TypeProto, ValueInfoProto};
use crate::tensor::{dtype_from_onnx, dtype_to_onnx};
use crate::FrontendError;
use whittle_ir::infer::{SymGen, FRESH_PREFIX};
use whittle_ir::{Dim, TensorType};

/// A symbol generator whose symbols (`unk_<n>`, as shape inference makes them) do not
/// clash with any `dim_param` of that form already in `infos`.
pub(crate) fn symgen_after<'a>(infos: impl IntoIterator<Item = &'a ValueInfoProto>) -> SymGen {
    let mut next = 0;
    for vi in infos {
        if let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(t)),
            ..
        }) = &vi.r#type
        {
            for d in t.shape.iter().flat_map(|s| &s.dim) {
                if let Some(tensor_shape_proto::dimension::Value::DimParam(p)) = &d.value {
                    if let Some(n) = p
                        .strip_prefix(FRESH_PREFIX)
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        next = next.max(n + 1);
                    }
                }
            }
        }
    }
    SymGen::starting_at(next)
}

/// The tensor type of a value info; `None` when it has no type at all.
pub(crate) fn tensor_type_from_proto(
    vi: &ValueInfoProto,
    syms: &mut SymGen,
) -> Result<Option<TensorType>, FrontendError> {
    let name = vi.name();
    let Some(tp) = &vi.r#type else {
        return Ok(None);
    };
    let tt = match &tp.value {
        None => return Ok(None),
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => {
            return Err(FrontendError::UnsupportedDType {
                name: name.to_string(),
                dtype: "non-tensor type (sequence, map, optional or sparse)".into(),
            })
        }
    };
    let dtype = dtype_from_onnx(tt.elem_type(), name)?;
    let Some(shape) = &tt.shape else {
        return Ok(Some(TensorType::unknown_rank(dtype)));
    };
    let mut dims = Vec::with_capacity(shape.dim.len().min(64));
    for d in &shape.dim {
        let dim = match &d.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(v)) => match usize::try_from(*v) {
                Ok(n) => Dim::Known(n),
                Err(_) => syms.fresh(),
            },
            Some(tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                Dim::Sym(p.clone())
            }
            _ => syms.fresh(),
        };
        dims.push(dim);
    }
    Ok(Some(TensorType::new(dtype, dims)))
}

/// A value info for `name` with type `ty` (symbolic dims become `dim_param`).
pub(crate) fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    let shape = ty.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                denotation: None,
                value: Some(match d {
                    Dim::Known(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                    Dim::Sym(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
                }),
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype_to_onnx(ty.dtype)),
                shape,
            })),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::DType;

    #[test]
    fn roundtrip_with_symbols() {
        let mut syms = SymGen::default();
        let ty = TensorType::new(DType::F32, vec![Dim::Sym("batch".into()), Dim::Known(3)]);
        let vi = value_info("x", &ty);
        let back = tensor_type_from_proto(&vi, &mut syms).unwrap().unwrap();
        assert_eq!(back, ty);
    }

    #[test]
    fn anonymous_dims_get_fresh_symbols() {
        let mut vi = value_info("x", &TensorType::fixed(DType::I64, &[2, 2]));
        if let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(t)),
            ..
        }) = &mut vi.r#type
        {
            t.shape.as_mut().unwrap().dim[0].value = None;
        }
        let named = value_info(
            "y",
            &TensorType::new(DType::F32, vec![Dim::Sym("unk_4".into())]),
        );
        let mut syms = symgen_after([&named]);
        let back = tensor_type_from_proto(&vi, &mut syms).unwrap().unwrap();
        assert_eq!(
            back.shape.unwrap(),
            vec![Dim::Sym("unk_5".into()), Dim::Known(2)]
        );
    }
}
