//! Canonicalization: rewrites composite ops that exporters spell out in elementary ops
//! into their single IR op, so that later passes (LN→RMSNorm, fusion) and backends see one
//! form. Patterns: decomposed LayerNorm and RMSNorm (`canon_norm`), erf- and tanh-GELU and
//! HardSwish (`canon_act`); the other way, onnxruntime's `BiasGelu` into `Add` + `Gelu`
//! (`canon_contrib`).
//!
//! ```text
//! %a = Binary(Add) %x, %three : f32[n]
//! %r = Clip %a, %zero, %six : f32[n]          →   %y = Unary(HardSwish) %x : f32[n]
//! %m = Binary(Mul) %x, %r : f32[n]
//! %y = Binary(Div) %m, %six : f32[n]
//! ```
//! See each pattern file for its formula and source. Exactness E1: the single op computes
//! the same real-valued function; rounding differs (f32 results agree to ~1e-6).

use crate::rewrite::Namer;
use crate::{canon_act, canon_contrib, canon_norm, Changed, PassContext};
use whittle_ir::{Graph, IrError};

pub fn canonicalize(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) {
            continue;
        }
        if let Some(m) = canon_norm::match_norm(g, id) {
            let kind = if m.layer_norm {
                "LayerNormalization"
            } else {
                "RmsNormalization"
            };
            let name = canon_norm::apply(g, &mut namer, m);
            cx.explain("canonicalize", format!("{kind} at node '{name}'"));
            count += 1;
        } else if let Some(name) = canon_contrib::split_bias_gelu(g, &mut namer, id) {
            cx.explain(
                "canonicalize",
                format!("BiasGelu split into Add and Gelu at node '{name}'"),
            );
            count += 1;
        } else if let Some(m) = canon_act::match_activation(g, id) {
            let kind = m.op.kind_name();
            let name = canon_act::apply(g, &mut namer, m);
            cx.explain("canonicalize", format!("{kind} at node '{name}'"));
            count += 1;
        }
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
