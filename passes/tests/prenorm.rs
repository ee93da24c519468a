//! Numeric tests of `ln-to-rmsnorm` and `crmsnorm` (PASSES.md §1 tests 1–8) on random
//! Pre-LN GPTs and ViTs from `whittle_passes::testing`, run with the reference evaluator.

use whittle_ir::text::print_graph;
use whittle_ir::{DType, Graph, Op};
use whittle_passes::testing::{
    gpt, random_inputs, rel_l2, run_outputs, vit, GptConfig, HeadKind, LnForm, NormPlacement,
    VitConfig,
};
use whittle_passes::{pass_by_name, Changed, PassContext};

fn apply(g: &mut Graph, pass: &str) -> (Changed, Vec<String>) {
    let mut cx = PassContext {
        verify: true,
        ..Default::default()
    };
    let changed = pass_by_name(pass).unwrap().run(g, &mut cx).unwrap();
    if changed == Changed::Yes {
        g.verify().unwrap();
    }
    (changed, cx.explanations)
}

/// Rel. L2 error of the logits after `pass`, over two random inputs.
fn error_after(g: &Graph, pass: &str, int_range: usize) -> f64 {
    let mut h = g.clone();
    let (changed, why) = apply(&mut h, pass);
    assert_eq!(changed, Changed::Yes, "{why:?}");
    assert!(
        !h.node_ids()
            .any(|n| matches!(h.node(n).op, Op::LayerNormalization { .. })),
        "an LN survived"
    );
    (0..2)
        .map(|seed| {
            let ins = random_inputs(g, int_range, seed);
            let want = run_outputs(g, &ins).unwrap();
            let got = run_outputs(&h, &ins).unwrap();
            rel_l2(&got[0], &want[0])
        })
        .fold(0.0, f64::max)
}

fn cfg(dtype: DType) -> GptConfig {
    GptConfig {
        dtype,
        ..GptConfig::default()
    }
}

#[test]
fn t1_gpt_rmsnorm_f64_and_f32() {
    let g = gpt(&cfg(DType::F64));
    let e = error_after(&g, "ln-to-rmsnorm", 23);
    assert!(e <= 1e-12, "f64 rel error {e:e}");
    let g = gpt(&cfg(DType::F32));
    let e = error_after(&g, "ln-to-rmsnorm", 23);
    assert!(e <= 1e-5, "f32 rel error {e:e}");
}

#[test]
fn t1_variants_fused_qkv_layer_scale_no_bias() {
    for (fused, ls, biases, causal) in [(true, true, true, false), (false, true, false, true)] {
        let c = GptConfig {
            fused_qkv: fused,
            layer_scale: ls,
            biases,
            causal,
            seed: 5,
            ..cfg(DType::F64)
        };
        let g = gpt(&c);
        for pass in ["ln-to-rmsnorm", "crmsnorm"] {
            let e = error_after(&g, pass, c.vocab);
            assert!(e <= 1e-12, "{pass} fused={fused} ls={ls}: {e:e}");
        }
    }
}

#[test]
fn t2_gpt_crmsnorm_f64_and_f32() {
    let g = gpt(&cfg(DType::F64));
    let e = error_after(&g, "crmsnorm", 23);
    assert!(e <= 1e-12, "f64 rel error {e:e}");
    let g = gpt(&cfg(DType::F32));
    let e = error_after(&g, "crmsnorm", 23);
    assert!(e <= 1e-5, "f32 rel error {e:e}");
}

#[test]
fn t2_vit_rmsnorm_and_crmsnorm() {
    for dtype in [DType::F64, DType::F32] {
        let g = vit(&VitConfig {
            dtype,
            ..VitConfig::default()
        });
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        for pass in ["ln-to-rmsnorm", "crmsnorm"] {
            let e = error_after(&g, pass, 1);
            assert!(e <= tol, "{pass} {dtype}: {e:e}");
        }
    }
}

/// After the pass every block input (every RMSNorm input) is zero-mean.
#[test]
fn t3_stream_is_zero_mean() {
    let c = GptConfig {
        layer_scale: true,
        ..cfg(DType::F64)
    };
    let mut g = gpt(&c);
    apply(&mut g, "ln-to-rmsnorm");
    let norms: Vec<_> = g
        .node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::RmsNormalization { .. }))
        .collect();
    assert_eq!(norms.len(), 2 * c.layers + 1);
    for n in norms {
        let x = g.input(n, 0).unwrap();
        g.add_output(x, format!("probe.{}", g.node(n).name));
    }
    let outs = run_outputs(&g, &random_inputs(&g, c.vocab, 3)).unwrap();
    for h in &outs[1..] {
        for row in h.chunks(c.width) {
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let rms = (row.iter().map(|x| x * x).sum::<f64>() / row.len() as f64).sqrt();
            assert!(mean.abs() <= 1e-6 * rms, "mean {mean:e} rms {rms:e}");
        }
    }
}

/// Undoing the recentring of one writer bias breaks exactness visibly.
#[test]
fn t4_negative_control() {
    let g = gpt(&cfg(DType::F64));
    let mut h = g.clone();
    apply(&mut h, "ln-to-rmsnorm");
    let name = "l0.attn.out.b";
    let orig = g.node_ids().find(|&n| g.node(n).name == name).unwrap();
    let edited = h.node_ids().find(|&n| h.node(n).name == name).unwrap();
    h.node_mut(edited).op = g.node(orig).op.clone();
    let ins = random_inputs(&g, 23, 0);
    let e = rel_l2(
        &run_outputs(&h, &ins).unwrap()[0],
        &run_outputs(&g, &ins).unwrap()[0],
    );
    assert!(e > 1e-3, "negative control error only {e:e}");
}

fn column_means_of(g: &Graph, node: &str) -> Vec<f64> {
    let id = g.node_ids().find(|&n| g.node(n).name == node).unwrap();
    let t = g.const_tensor(whittle_ir::Value::new(id, 0)).unwrap();
    t.to_f64_vec()
        .chunks(*t.shape().last().unwrap())
        .map(|r| r.iter().sum::<f64>() / r.len() as f64)
        .collect()
}

/// Tied heads are untied: the embedding is recentred, the head only gets γ.
#[test]
fn t5_tied_embeddings_are_untied() {
    for head in [HeadKind::TiedTranspose, HeadKind::TiedGemm] {
        let c = GptConfig {
            head,
            ..cfg(DType::F64)
        };
        let g = gpt(&c);
        let mut h = g.clone();
        apply(&mut h, "ln-to-rmsnorm");
        let e = error_after(&g, "ln-to-rmsnorm", c.vocab);
        assert!(e <= 1e-12, "{head:?}: {e:e}");
        let consts: Vec<_> = h
            .node_ids()
            .filter(|&n| {
                h.node(n).name.starts_with("wte") && matches!(h.node(n).op, Op::Constant(_))
            })
            .map(|n| h.node(n).name.clone())
            .collect();
        assert_eq!(consts.len(), 2, "{head:?}: {consts:?}");
        // The table the Gather reads has zero-mean rows; the head's copy does not.
        let gather = h
            .node_ids()
            .find(|&n| matches!(h.node(n).op, Op::Gather { .. }))
            .unwrap();
        let table = h.node(h.input(gather, 0).unwrap().node).name.clone();
        assert!(column_means_of(&h, &table).iter().all(|m| m.abs() < 1e-12));
        let head = consts.iter().find(|n| **n != table).unwrap();
        let gamma = g.node_ids().find(|&n| g.node(n).name == "ln_f.g").unwrap();
        let gv = g
            .const_tensor(whittle_ir::Value::new(gamma, 0))
            .unwrap()
            .to_f64_vec();
        let orig = g.node_ids().find(|&n| g.node(n).name == "wte").unwrap();
        let ov = g
            .const_tensor(whittle_ir::Value::new(orig, 0))
            .unwrap()
            .to_f64_vec();
        let hid = h.node_ids().find(|&n| h.node(n).name == *head).unwrap();
        let hv = h
            .const_tensor(whittle_ir::Value::new(hid, 0))
            .unwrap()
            .to_f64_vec();
        // Head weight = diag(γ)·wteᵀ: in [V,D] layout entry (v,k) = γ_k wte[v,k].
        let (v, d) = (c.vocab, c.width);
        for i in 0..v * d {
            let (vi, k) = (i / d, i % d);
            let want = gv[k] * ov[i];
            let got = if hv.len() == v * d && head_is_nd(head, &h) {
                hv[i]
            } else {
                hv[k * v + vi]
            };
            assert!((got - want).abs() < 1e-12, "{head:?} entry {i}");
        }
    }
}

/// Whether constant `name` is stored `[V,D]` (Gemm transB) rather than `[D,V]`.
fn head_is_nd(name: &str, g: &Graph) -> bool {
    g.node_ids().any(|n| {
        matches!(g.node(n).op, Op::Gemm { trans_b: true, .. })
            && g.node(g.input(n, 1).unwrap().node).name == name
    })
}

#[test]
fn t6_parallel_blocks() {
    let c = GptConfig {
        parallel: true,
        layer_scale: true,
        ..cfg(DType::F64)
    };
    let g = gpt(&c);
    for pass in ["ln-to-rmsnorm", "crmsnorm"] {
        let e = error_after(&g, pass, c.vocab);
        assert!(e <= 1e-12, "{pass}: {e:e}");
    }
    let g = gpt(&GptConfig {
        dtype: DType::F32,
        ..c
    });
    let e = error_after(&g, "ln-to-rmsnorm", 23);
    assert!(e <= 1e-5, "f32 {e:e}");
}

fn assert_declines(c: &GptConfig, reason: &str) {
    let g = gpt(c);
    for pass in ["ln-to-rmsnorm", "crmsnorm"] {
        let mut h = g.clone();
        let before = print_graph(&g).unwrap();
        let (changed, why) = apply(&mut h, pass);
        assert_eq!(changed, Changed::No, "{pass}");
        assert_eq!(
            print_graph(&h).unwrap(),
            before,
            "{pass} changed a declined graph"
        );
        assert_eq!(
            whittle_passes::rewrite::fingerprint(&h),
            whittle_passes::rewrite::fingerprint(&g)
        );
        assert!(why.iter().any(|w| w.contains(reason)), "{pass}: {why:?}");
    }
}

#[test]
fn t7_rejections_leave_graph_identical() {
    assert_declines(
        &GptConfig {
            placement: NormPlacement::PostLn,
            ..cfg(DType::F32)
        },
        "model is Post-LN",
    );
    assert_declines(
        &GptConfig {
            hidden_output: true,
            ..cfg(DType::F32)
        },
        "is a graph output",
    );
    assert_declines(
        &GptConfig {
            ln_into_nonlinearity: true,
            ..cfg(DType::F32)
        },
        "which is not a linear op with constant weights",
    );
}

/// A decomposed LN, canonicalised first, gives the same rewrite as `LayerNormalization`.
#[test]
fn t8_decomposed_and_op_forms_rewrite_identically() {
    for pass in ["ln-to-rmsnorm", "crmsnorm"] {
        // Both go through canonicalize (it also turns the erf GELU into `Gelu`).
        let mut a = gpt(&cfg(DType::F64));
        apply(&mut a, "canonicalize");
        apply(&mut a, "dce");
        apply(&mut a, pass);
        let mut b = gpt(&GptConfig {
            ln_form: LnForm::Decomposed,
            ..cfg(DType::F64)
        });
        let (changed, why) = apply(&mut b, "canonicalize");
        assert_eq!(changed, Changed::Yes, "{why:?}");
        apply(&mut b, "dce");
        let (changed, why) = apply(&mut b, pass);
        assert_eq!(changed, Changed::Yes, "{why:?}");
        // Node ids differ (the decomposed graph had more nodes), so the printed order may
        // too: compare the sorted lines.
        let sorted = |g: &Graph| {
            // `canonicalize` names the LN it builds `<name>_1` (the old name is still taken
            // when it is created): drop such suffixes.
            let raw = print_graph(g).unwrap();
            let mut t = String::with_capacity(raw.len());
            let cs: Vec<char> = raw.chars().collect();
            let mut i = 0;
            while i < cs.len() {
                let next = cs.get(i + 2).copied().unwrap_or(' ');
                if cs[i] == '_' && cs.get(i + 1) == Some(&'1') && !next.is_alphanumeric() {
                    i += 2;
                    continue;
                }
                t.push(cs[i]);
                i += 1;
            }
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            l.sort();
            l.join("\n")
        };
        let (ta, tb) = (sorted(&a), sorted(&b));
        let short = |l: &str| l.chars().take(160).collect::<String>();
        for (la, lb) in ta.lines().zip(tb.lines()) {
            assert_eq!(short(lb), short(la), "{pass}: first difference");
            assert_eq!(lb, la, "{pass}: constants differ");
        }
        assert_eq!(ta.lines().count(), tb.lines().count(), "{pass}");
    }
}

/// The figures quoted in the report: rel. L2 error of the logits of a 2-block GPT.
#[test]
fn report_errors() {
    for dtype in [DType::F64, DType::F32] {
        let g = gpt(&cfg(dtype));
        for pass in ["ln-to-rmsnorm", "crmsnorm"] {
            let e = error_after(&g, pass, 23);
            eprintln!("2-block GPT {dtype} {pass}: rel L2 {e:.2e}");
        }
    }
}

/// Rel. L2 error of the first output of `h` against `g`, over two random inputs.
fn error_between(g: &Graph, h: &Graph, int_range: usize) -> f64 {
    (0..2)
        .map(|seed| {
            let ins = random_inputs(g, int_range, seed);
            let want = run_outputs(g, &ins).unwrap();
            let got = run_outputs(h, &ins).unwrap();
            rel_l2(&got[0], &want[0])
        })
        .fold(0.0, f64::max)
}

fn count_lns(g: &Graph) -> usize {
    g.node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::LayerNormalization { .. }))
        .count()
}

/// BLOOM: the embedding LN writes the stream. It stays a LayerNorm, its output is
/// recentred explicitly (PASSES.md §1 transformation 4), every block LN becomes an RMSNorm;
/// CRMSNorm declines (the writer's width cannot drop).
#[test]
fn t9_embedding_ln_is_recentred_explicitly() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let c = GptConfig {
            embed_ln: true,
            ..cfg(dtype)
        };
        let g = gpt(&c);
        let mut h = g.clone();
        let (changed, why) = apply(&mut h, "ln-to-rmsnorm");
        assert_eq!(changed, Changed::Yes, "{why:?}");
        assert!(why[0].contains("recentred 1 writers explicitly"), "{why:?}");
        assert_eq!(count_lns(&h), 1, "only the embedding LN stays");
        let e = error_between(&g, &h, c.vocab);
        assert!(e <= tol, "{dtype}: {e:e}");
        let mut k = g.clone();
        let (changed, why) = apply(&mut k, "crmsnorm");
        assert_eq!(changed, Changed::No);
        assert!(why[0].contains("cannot drop by one"), "{why:?}");
    }
}

/// A base model without a head: the final LN's output is the graph output, so that LN
/// keeps γ (as the RMSNorm scale) and β (added after it); the others fold into readers.
#[test]
fn t10_final_ln_as_graph_output_keeps_its_affine() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let c = GptConfig {
            head: HeadKind::None,
            ..cfg(dtype)
        };
        let g = gpt(&c);
        let mut h = g.clone();
        let (changed, why) = apply(&mut h, "ln-to-rmsnorm");
        assert_eq!(changed, Changed::Yes, "{why:?}");
        assert!(why[0].contains("1 LNs keep γ/β"), "{why:?}");
        assert_eq!(count_lns(&h), 0);
        assert_eq!(h.outputs()[0].name, "last_hidden_state");
        let e = error_between(&g, &h, c.vocab);
        assert!(e <= tol, "{dtype}: {e:e}");
    }
}
