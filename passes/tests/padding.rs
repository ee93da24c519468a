//! PASSES.md §6 test 4, padding-free execution: an encoder with a padding mask, after
//! `remove-padding`, gives the padded baseline's values on valid tokens (≤ 1e-5; in fact
//! identical) and exact zeros on pad rows, for random lengths including 1 and S; the
//! offsets equal an independent prefix sum; graphs whose mask is not a padding mask are
//! left alone.

mod common;

use common::*;
use whittle_ir::eval::{eval_op, run};
use whittle_ir::text::{parse_graph, print_graph};
use whittle_ir::{DType, Graph, Op, Tensor};

/// Two Post-LN encoder layers on `h0 [batch,seq,d]` (fused ops: QKV projections,
/// attention with the additive padding mask from `am [batch,seq]`, output projection with
/// residual, LayerNorm, GELU FFN, residual, LayerNorm). `mask_scale` makes the padding
/// mask `(1 − am)·mask_scale`.
fn encoder(d: usize, heads: usize, mask_scale: f64) -> String {
    let mut seed = 17u64;
    let mut t =
        format!("graph \"enc\" {{\n  input %h0: f32[batch,seq,{d}]\n  input %am: i64[batch,seq]\n");
    let fmt = |v: Vec<f64>| {
        v.iter()
            .map(|x| format!("{}", *x as f32))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut konst = |t: &mut String, name: &str, shape: &[usize], scale: f64| {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = random(n, &mut seed)
            .into_iter()
            .map(|x| x * scale)
            .collect();
        let dims = shape
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        *t += &format!("  %{name} = const f32[{dims}] [{}]\n", fmt(v));
    };
    t += "  %one = const f32[] [1.0]\n";
    t += &format!("  %big = const f32[] [{mask_scale}]\n");
    t += "  %axes = const i64[2] [1,2]\n";
    t += "  %amf = Cast(to:F32) %am : f32[batch,seq]\n";
    t += "  %inv = Binary(Sub) %one, %amf : f32[batch,seq]\n";
    t += "  %neg = Binary(Mul) %inv, %big : f32[batch,seq]\n";
    t += "  %mask = Unsqueeze %neg, %axes : f32[batch,1,1,seq]\n";
    let scale = 1.0 / ((d / heads) as f32).sqrt();
    let ty = format!("f32[batch,seq,{d}]");
    let ty4 = format!("f32[batch,seq,{}]", 4 * d);
    let mut h = "h0".to_string();
    for l in 0..2 {
        for w in ["q", "k", "v", "o"] {
            konst(&mut t, &format!("w{w}{l}"), &[d, d], 0.3);
            konst(&mut t, &format!("b{w}{l}"), &[d], 0.1);
        }
        for w in ["q", "k", "v"] {
            t += &format!(
                "  %{w}{l} = FusedMatMul(activation:Linear) %{h}, %w{w}{l}, %b{w}{l} : {ty}\n"
            );
        }
        t += &format!("  %a{l} = Attention(num_heads:{heads},scale:{scale}) %q{l}, %k{l}, %v{l}, %mask : {ty}\n");
        t += &format!(
            "  %o{l} = FusedMatMul(activation:Linear) %a{l}, %wo{l}, %bo{l}, %{h} : {ty}\n"
        );
        konst(&mut t, &format!("g1{l}"), &[d], 1.0);
        konst(&mut t, &format!("be1{l}"), &[d], 0.1);
        t += &format!(
            "  %n{l} = LayerNormalization(axis:-1,epsilon:0.00001) %o{l}, %g1{l}, %be1{l} : {ty}\n"
        );
        konst(&mut t, &format!("wf{l}"), &[d, 4 * d], 0.3);
        konst(&mut t, &format!("bf{l}"), &[4 * d], 0.1);
        konst(&mut t, &format!("wd{l}"), &[4 * d, d], 0.2);
        t += &format!(
            "  %f{l} = FusedMatMul(activation:Gelu(r#None)) %n{l}, %wf{l}, %bf{l} : {ty4}\n"
        );
        t += &format!("  %r{l} = FusedMatMul(activation:Linear) %f{l}, %wd{l}, _, %n{l} : {ty}\n");
        konst(&mut t, &format!("g2{l}"), &[d], 1.0);
        t += &format!(
            "  %h{} = LayerNormalization(axis:2,epsilon:0.00001) %r{l}, %g2{l} : {ty}\n",
            l + 1
        );
        h = format!("h{}", l + 1);
    }
    t += &format!("  output %{h}\n}}\n");
    t
}

/// A mask of `lens[b]` leading ones per row (length `s`).
fn mask(lens: &[usize], s: usize) -> Tensor {
    let v: Vec<i64> = lens
        .iter()
        .flat_map(|&l| (0..s).map(move |j| (j < l) as i64))
        .collect();
    Tensor::from_vec(vec![lens.len(), s], v)
}

#[test]
fn padding_free_matches_the_padded_baseline_on_valid_rows() {
    let (d, heads, s) = (16, 2, 9);
    let g = parse_graph(&encoder(d, heads, -10000.0)).unwrap();
    let packed = apply(&g, "remove-padding");
    let count = |g: &Graph, f: fn(&Op) -> bool| g.node_ids().filter(|&i| f(&g.node(i).op)).count();
    assert_eq!(count(&packed, |o| matches!(o, Op::Attention { .. })), 0);
    assert_eq!(
        count(&packed, |o| matches!(o, Op::PackedAttention { .. })),
        2
    );
    assert_eq!(count(&packed, |o| matches!(o, Op::PaddingOffsets)), 1);
    // One entry (h0 packed by a Gather) and one exit (the output restored by a Gather):
    // both layers run entirely on packed rows.
    assert_eq!(count(&packed, |o| matches!(o, Op::Gather { .. })), 2);
    assert_eq!(count(&packed, |o| matches!(o, Op::Concat { .. })), 1);
    let mut seed = 5u64;
    let mut lcg = 7u64;
    for round in 0..6 {
        let b = 1 + round % 3;
        // Random lengths in 1..=s, forcing 1 and s to appear.
        let lens: Vec<usize> = (0..b)
            .map(|i| match (round, i) {
                (0, 0) => 1,
                (1, 0) => s,
                _ => {
                    lcg = lcg
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1 + (lcg >> 33) as usize % s
                }
            })
            .collect();
        let h0 = Tensor::from_f64(DType::F32, vec![b, s, d], &random(b * s * d, &mut seed));
        let am = mask(&lens, s);
        let ins = [("h0", h0), ("am", am.clone())];
        let want = run(&g, &ins).unwrap()[0].1.to_f64_vec();
        let got = run(&packed, &ins).unwrap()[0].1.to_f64_vec();
        let scale = want.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
        for bi in 0..b {
            for si in 0..s {
                let row = (bi * s + si) * d..(bi * s + si + 1) * d;
                if si < lens[bi] {
                    let err = want[row.clone()]
                        .iter()
                        .zip(&got[row])
                        .map(|(w, o)| (w - o).abs())
                        .fold(0.0, f64::max);
                    assert!(
                        err <= 1e-5 * scale,
                        "lens {lens:?}: row ({bi},{si}) off by {err:e}"
                    );
                } else {
                    assert!(
                        got[row].iter().all(|&x| x == 0.0),
                        "lens {lens:?}: pad row ({bi},{si}) not 0"
                    );
                }
            }
        }
        // The offsets against an independent prefix sum over the mask.
        let outs = eval_op(&Op::PaddingOffsets, &[Some(&am)], 3).unwrap();
        let mut next = 0i64;
        let mut want_off = Vec::new();
        let mut want_cu = vec![0i64];
        for (bi, &l) in lens.iter().enumerate() {
            for si in 0..l {
                want_off.push((bi * s + si) as i64);
                next += 1;
            }
            want_cu.push(next);
        }
        let as_i64 = |t: &Tensor| {
            t.to_f64_vec()
                .into_iter()
                .map(|x| x as i64)
                .collect::<Vec<_>>()
        };
        assert_eq!(as_i64(&outs[0]), want_off);
        assert_eq!(as_i64(&outs[2]), want_cu);
        let inv = as_i64(&outs[1]);
        for (t, &o) in want_off.iter().enumerate() {
            assert_eq!(inv[o as usize], t as i64 + 1);
        }
        assert_eq!(
            inv.iter().filter(|&&x| x == 0).count(),
            b * s - want_off.len()
        );
    }
}

#[test]
fn a_mask_that_is_not_a_padding_mask_is_left_alone() {
    // (1 − am)·(−1): padded keys keep a weight, so dropping them would change the result.
    let g = parse_graph(&encoder(8, 2, -1.0)).unwrap();
    let h = apply(&g, "remove-padding");
    assert_eq!(print_graph(&g).unwrap(), print_graph(&h).unwrap());
}
