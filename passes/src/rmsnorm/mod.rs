//! LayerNorm → RMSNorm (`ln-to-rmsnorm`) and LayerNorm → CRMSNorm (`crmsnorm`) for Pre-LN
//! transformers: the exact (E1) rewrites of "Pre-RMSNorm and Pre-CRMSNorm Transformers"
//! (Jiang et al., 2023) and SliceGPT's layernorm fusion (Ashkboos et al., 2024); the numeric
//! contract is `shared/design/PASSES.md` §1.
//!
//! `LN(h) = RMSNorm(h − mean h)`: when every writer into the residual stream emits
//! zero-mean vectors, the stream stays zero-mean and every LN becomes an RMSNorm.
//!
//! ```text
//! %e = Gather %wte, %ids                  %e = Gather %wte′, %ids        (rows recentred)
//! %n = LayerNormalization %h, %γ, %β  →   %n = RmsNormalization %h, %1   (same ε)
//! %q = MatMul %n, %W                      %q = MatMul %n, %W′            (W′ = diag(γ)·W)
//! %qb = Add %q, %c                        %qb = Add %q, %c′              (c′ = c + β·W)
//! %o = MatMul %a, %Wo                     %o = MatMul %a, %Wo′           (rows of Wo recentred)
//! ```
//!
//! Choices: γ is folded into the readers too, so the RMSNorm scale is all ones (what
//! SliceGPT's rotation needs); every LN, the final one included, is replaced; tied weights
//! are copied before they are edited (the head is never recentred). `crmsnorm` also drops
//! the last stream coordinate (`x_D = −Σx′`): writers keep `D−1` output columns, readers get
//! `B[:D−1] − B[D−1]`, and the norm is `x′/√((‖x′‖² + (Σx′)²)/D + ε)` spelled with
//! `ReduceSumSquare`, `ReduceSum`, `Mul`, `Add`, `Div`, `Sqrt`.
//!
//! Preconditions (else the pass declines, says why, and leaves the graph untouched): the
//! model is Pre-LN; no stream value is a graph output; every path out of an LN reaches a
//! `MatMul`/`Gemm` with a constant weight (or a `Shape`) through hidden-axis-preserving ops
//! only, or is a graph output — a base model's last hidden state: that LN keeps γ as its
//! RMSNorm scale and adds β after it. Writers are recentred in their constants when they
//! are constant linear ops (`Gather` table, `MatMul`/`Gemm` + bias, patch `Conv`, added or
//! expanded constants, optionally scaled by a constant `Mul(λ)` that is folded in); any
//! other writer (a nonlinear stem, a graph input, an embedding LN that writes the stream)
//! gets an explicit `x − mean x` (PASSES.md §1 transformation 4). `crmsnorm` needs every
//! writer and reader edited and no shape that fixes the width. The LNs must be opset-17
//! `LayerNormalization` over the last axis: run `canonicalize` first for the decomposed
//! spelling, and run the pass before the fusions (`canonicalize,ln-to-rmsnorm,exact`),
//! whose fused ops it does not see into.

mod analysis;
mod apply;

use crate::{Changed, PassContext};
use apply::Variant;
use whittle_ir::{Graph, IrError};

/// Replaces every stream LayerNorm by an RMSNorm (exact, see the module docs).
pub fn ln_to_rmsnorm(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    run(g, cx, Variant::Rms, "ln-to-rmsnorm")
}

/// Replaces every stream LayerNorm by a CRMSNorm over a D−1 stream (exact).
pub fn crmsnorm(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    run(g, cx, Variant::Crms, "crmsnorm")
}

fn run(
    g: &mut Graph,
    cx: &mut PassContext,
    variant: Variant,
    pass: &str,
) -> Result<Changed, IrError> {
    let plan = match analysis::analyze(g) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            cx.explain(pass, "no LayerNormalization over the last axis");
            return Ok(Changed::No);
        }
        Err(reason) => {
            cx.explain(pass, format!("declined: {reason}"));
            return Ok(Changed::No);
        }
    };
    if variant == Variant::Crms {
        let why = plan
            .centre
            .first()
            .map(|c| c.why.clone())
            .or_else(|| plan.lns.iter().find_map(|l| l.keep_affine.clone()));
        let why = why.or_else(|| plan.fixed_width.first().cloned());
        if let Some(why) = why {
            cx.explain(
                pass,
                format!("declined: the stream width cannot drop by one: {why}"),
            );
            return Ok(Changed::No);
        }
    }
    let s = apply::apply(g, &plan, variant)?;
    let mut msg = format!(
        "replaced {} LNs; recentred {} writer constants; folded γ/β into {} readers; \
         folded {} layer scales",
        s.lns, s.writers, s.readers, s.scales
    );
    if s.centred > 0 {
        let why = &plan.centre[0].why;
        msg += &format!(
            "; recentred {} writers explicitly (first: {why})",
            s.centred
        );
    }
    if s.affine_kept > 0 {
        msg += &format!(
            "; {} LNs keep γ/β (their output is a graph output)",
            s.affine_kept
        );
    }
    cx.explain(pass, msg);
    Ok(Changed::Yes)
}

#[cfg(test)]
mod tests {
    use super::apply::{drop_last, recentre, scale_along};
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    #[test]
    fn tensor_helpers_hand_checked() {
        // [[1,2,3],[4,6,8]] recentred along axis 1: means 2 and 6.
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0];
        recentre(&[2, 3], &mut v, 1);
        assert_eq!(v, vec![-1.0, 0.0, 1.0, -2.0, 0.0, 2.0]);
        // Along axis 0: column means 2.5, 4, 5.5.
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0];
        recentre(&[2, 3], &mut v, 0);
        assert_eq!(v, vec![-1.5, -2.0, -2.5, 1.5, 2.0, 2.5]);
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0];
        scale_along(&[2, 3], &mut v, 1, &[1.0, 0.5, 2.0]);
        assert_eq!(v, vec![1.0, 1.0, 6.0, 4.0, 3.0, 16.0]);
        let (s, v) = drop_last(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0], 1);
        assert_eq!((s, v), (vec![2, 2], vec![1.0, 2.0, 4.0, 6.0]));
        let (s, v) = drop_last(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0], 0);
        assert_eq!((s, v), (vec![1, 3], vec![1.0, 2.0, 3.0]));
    }

    /// One writer (bias-free embedding), one LN, one reader: the rewritten constants are
    /// hand-checked.
    #[test]
    fn tiny_rewrite_hand_checked() {
        let src = r#"graph "g" {
  input %ids: i64[1]
  %wte = const f64[2,2] [1.0, 3.0, 2.0, 2.0]
  %g = const f64[2] [2.0, 0.5]
  %b = const f64[2] [1.0, -1.0]
  %w = const f64[2,1] [1.0, 4.0]
  %e = Gather(axis:0) %wte, %ids : f64[1,2]
  %n = LayerNormalization(axis:-1,epsilon:0.0) %e, %g, %b : f64[1,2]
  %y = MatMul %n, %w : f64[1,1]
  output %y
}"#;
        let mut g = parse_graph(src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(ln_to_rmsnorm(&mut g, &mut cx).unwrap(), Changed::Yes);
        let out = print_graph(&g).unwrap();
        // Table rows recentred: [1,3] → [-1,1], [2,2] → [0,0].
        assert!(
            out.contains("%wte = const f64[2,2] [-1.0, 1.0, 0.0, 0.0]"),
            "{out}"
        );
        // W′ = diag(γ)·W = [2, 2]; β·W = 1 − 4 = −3 as a new bias.
        assert!(out.contains("[2.0, 2.0]"), "{out}");
        assert!(out.contains("[-3.0]"), "{out}");
        assert!(
            out.contains("RmsNormalization(axis:-1,epsilon:0.0)"),
            "{out}"
        );
        // LN([1,3]) = [-1, 1] → γ,β: [-1, -0.5] → ·W = -3; after: rms([-1,1]) = 1 → 2·(-1)+2·1-3 = -3.
        let ids = whittle_ir::Tensor::from_vec(vec![1], vec![0i64]);
        let y = whittle_ir::eval::run(&g, &[("ids", ids)]).unwrap();
        assert!((y[0].1.get_f64(0) + 3.0).abs() < 1e-12);
    }

    #[test]
    fn declines_without_layernorm() {
        let src =
            "graph \"g\" {\n  input %x: f32[4]\n  %a = Unary(Relu) %x : f32[4]\n  output %a\n}\n";
        let mut g = parse_graph(src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(crmsnorm(&mut g, &mut cx).unwrap(), Changed::No);
        assert!(cx.explanations[0].contains("no LayerNormalization"));
    }
}
