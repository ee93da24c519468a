//! Numeric and structural tests of the fusion passes (PASSES.md §6 tests 1, 2, 3, 5, 6):
//! every `fuse-matmul` / `fuse-attention` / `fuse-qkv` / `fuse-add-norm` filetest input keeps
//! its outputs under
//! `ir::eval` (f32 ≤ 1e-5 relative), declined files stay byte-identical, the passes are
//! idempotent, erf-GELU stays erf-GELU, and attention with padding and causal masks of
//! lengths around 80 and head sizes 64 and 128 is fused and exact, so are decoder
//! attentions (causal select masks, KV caches, GQA `repeat_kv`), declined attention
//! filetests say why, and fused-QKV splits are bit-identical to the separate GEMMs.

mod common;

use common::*;
use std::path::Path;
use whittle_ir::text::{parse_graph, print_graph};
use whittle_ir::{Graph, Op};

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.node_ids().filter(|&id| pred(&g.node(id).op)).count()
}

#[test]
fn filetests_keep_outputs_and_are_idempotent() {
    let mut checked = 0;
    for dir in ["fuse-matmul", "fuse-attention", "fuse-qkv", "fuse-add-norm"] {
        for t in filetests(dir) {
            let (f, passes) = (&t.path, &t.passes);
            let g = parse_graph(&t.head).unwrap();
            let h = apply(&g, passes);
            let err = max_err(&g, &h, 7, 2);
            assert!(err <= 1e-5, "{}: relative error {err:e}", f.display());
            let (before, after) = (print_graph(&g).unwrap(), print_graph(&h).unwrap());
            if t.declined() {
                assert_eq!(before, after, "{}: declined must be untouched", f.display());
            } else {
                assert_ne!(before, after, "{}", f.display());
            }
            let again = apply(&h, passes);
            assert_eq!(
                after,
                print_graph(&again).unwrap(),
                "{}: not idempotent",
                f.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} filetests checked");
}

#[test]
fn erf_gelu_is_never_turned_into_tanh_gelu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests/fuse-matmul");
    for (file, want) in [
        ("bias_gelu_erf.wir", whittle_ir::GeluApprox::None),
        ("bias_gelu_tanh.wir", whittle_ir::GeluApprox::Tanh),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let g = parse_graph(text.split("# expected:").next().unwrap()).unwrap();
        let h = apply(&g, "fuse-matmul");
        let act = whittle_ir::Activation::Gelu(want);
        assert_eq!(
            count(&h, |op| *op == Op::FusedMatMul { activation: act }),
            1,
            "{file}"
        );
    }
}

/// BERT-style attention text: batch `b`, length `s`, `h` heads of size `d`; the mask is a
/// graph input of shape `mask` or, when `causal`, a constant `[1,1,s,s]` with −1e4 above
/// the diagonal.
fn attention_graph(b: usize, s: usize, h: usize, d: usize, mask: &[usize], causal: bool) -> String {
    let e = h * d;
    let dims = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut t = format!(
        "graph \"g\" {{\n  input %q: f32[{b},{s},{e}]\n  input %k: f32[{b},{s},{e}]\n  input %v: f32[{b},{s},{e}]\n"
    );
    let mask_dims = if causal {
        let vals: Vec<String> = (0..s * s)
            .map(|i| {
                if i % s > i / s {
                    "-10000.0".into()
                } else {
                    "0.0".into()
                }
            })
            .collect();
        t += &format!("  %mask = const f32[1,1,{s},{s}] [{}]\n", vals.join(","));
        vec![1, 1, s, s]
    } else {
        t += &format!("  input %mask: f32[{}]\n", dims(mask));
        mask.to_vec()
    };
    let _ = mask_dims;
    let c = (d as f64).sqrt() as f32;
    t += &format!(
        "  %split = const i64[4] [0,0,{h},{d}]\n  %merge = const i64[3] [0,0,{e}]\n  %c = const f32[] [{c:?}]\n"
    );
    for (x, perm, out) in [
        ("q", "[0,2,1,3]", format!("{b},{h},{s},{d}")),
        ("k", "[0,2,3,1]", format!("{b},{h},{d},{s}")),
        ("v", "[0,2,1,3]", format!("{b},{h},{s},{d}")),
    ] {
        t += &format!(
            "  %{x}4 = Reshape(allowzero:false) %{x}, %split : f32[{b},{s},{h},{d}]\n  %{x}h = Transpose(perm:Some({perm})) %{x}4 : f32[{out}]\n"
        );
    }
    t += &format!(
        "  %s = MatMul %qh, %kh : f32[{b},{h},{s},{s}]\n  %sd = Binary(Div) %s, %c : f32[{b},{h},{s},{s}]\n  %sm = Binary(Add) %sd, %mask : f32[{b},{h},{s},{s}]\n  %p = Softmax(axis:-1,coerce_2d:false) %sm : f32[{b},{h},{s},{s}]\n  %o = MatMul %p, %vh : f32[{b},{h},{s},{d}]\n  %ot = Transpose(perm:Some([0,2,1,3])) %o : f32[{b},{s},{h},{d}]\n  %y = Reshape(allowzero:false) %ot, %merge : f32[{b},{s},{e}]\n  output %y\n}}\n"
    );
    t
}

#[test]
fn attention_with_masks_lengths_and_head_sizes() {
    for (b, s, h, d, mask, causal) in [
        (2, 79, 2, 64, vec![2, 1, 1, 79], false),
        (1, 81, 1, 128, vec![1, 1, 81, 81], true),
        (1, 5, 3, 4, vec![5], false),
        (2, 7, 2, 8, vec![2, 2, 7, 7], false),
        // Lengths straddling 256, 384 and 1024 (PASSES.md §6 test 3).
        (1, 255, 1, 64, vec![1, 1, 1, 255], false),
        (1, 257, 1, 128, vec![1, 1, 257, 257], true),
        (1, 383, 1, 64, vec![1, 1, 1, 383], false),
        (1, 385, 1, 64, vec![1, 1, 385, 385], true),
        (1, 1023, 1, 64, vec![1, 1, 1, 1023], false),
        (1, 1025, 1, 64, vec![1, 1, 1025, 1025], true),
    ] {
        let g = parse_graph(&attention_graph(b, s, h, d, &mask, causal)).unwrap();
        let fused = apply(&g, "fuse-attention");
        assert_eq!(count(&fused, |op| matches!(op, Op::Attention { .. })), 1);
        assert_eq!(count(&fused, |op| matches!(op, Op::Softmax { .. })), 0);
        let err = max_err(&g, &fused, 7, 2);
        assert!(err <= 1e-5, "b{b} s{s} h{h} d{d}: relative error {err:e}");
    }
}

/// A text graph: `x [b,s,k]`, Q/K/V projections (`FusedMatMul` with biases, or plain
/// `MatMul`s) of `nq`, `nq`, `nv` columns with random weights, attention with `h` heads,
/// and Q, K, V themselves as graph outputs too.
fn qkv_graph(b: usize, s: usize, k: usize, nq: usize, nv: usize, h: usize, bias: bool) -> String {
    let mut seed = (b * 131 + s * 31 + k * 7 + nv) as u64;
    let mut t = format!("graph \"qkv\" {{\n  input %x: f32[{b},{s},{k}]\n");
    let fmt = |v: Vec<f64>| {
        v.iter()
            .map(|x| format!("{}", *x as f32))
            .collect::<Vec<_>>()
            .join(",")
    };
    for (name, n) in [("q", nq), ("k", nq), ("v", nv)] {
        let w = fmt(random(k * n, &mut seed));
        t += &format!("  %w{name} = const f32[{k},{n}] [{w}]\n");
        if bias {
            let c = fmt(random(n, &mut seed));
            t += &format!("  %b{name} = const f32[{n}] [{c}]\n");
            t += &format!(
                "  %{name} = FusedMatMul(activation:Linear) %x, %w{name}, %b{name} : f32[{b},{s},{n}]\n"
            );
        } else {
            t += &format!("  %{name} = MatMul %x, %w{name} : f32[{b},{s},{n}]\n");
        }
    }
    let scale = 1.0 / ((nq / h) as f32).sqrt();
    t += &format!("  %y = Attention(num_heads:{h},scale:{scale}) %q, %k, %v : f32[{b},{s},{nv}]\n");
    t += "  output %y\n  output %q\n  output %k\n  output %v\n}\n";
    t
}

#[test]
fn fused_qkv_splits_equal_the_separate_gemms() {
    for (b, s, k, nq, nv, h, bias) in [
        (1, 7, 16, 8, 8, 2, true),
        (2, 5, 33, 12, 6, 3, true),
        (1, 130, 40, 64, 32, 2, false),
    ] {
        let g = parse_graph(&qkv_graph(b, s, k, nq, nv, h, bias)).unwrap();
        let f = apply(&g, "fuse-qkv");
        let gemms = |g: &Graph| count(g, |op| matches!(op, Op::MatMul | Op::FusedMatMul { .. }));
        assert_eq!((gemms(&g), gemms(&f)), (3, 1), "{b} {s} {k}: not fused");
        assert_eq!(count(&f, |op| matches!(op, Op::Split { .. })), 1);
        // E0: every output (Q, K, V and the attention) is bit-identical under ir::eval.
        assert_eq!(max_err(&g, &f, 5, 2), 0.0, "{b} {s} {k} {nq} {nv}");
        let again = apply(&f, "fuse-qkv");
        assert_eq!(print_graph(&f).unwrap(), print_graph(&again).unwrap());
    }
}

/// Largest relative L2 error (‖a − b‖ / ‖a‖) of `h`'s outputs against `g`'s.
fn rel_l2_err(g: &Graph, h: &Graph, mut seed: u64, rounds: usize) -> f64 {
    let mut worst = 0.0f64;
    for _ in 0..rounds {
        let ins = inputs(g, &mut seed);
        let refs: Vec<(&str, whittle_ir::Tensor)> =
            ins.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let want = whittle_ir::eval::run(g, &refs).unwrap();
        let got = whittle_ir::eval::run(h, &refs).unwrap();
        for ((_, w), (_, o)) in want.iter().zip(&got) {
            let (w, o) = (w.to_f64_vec(), o.to_f64_vec());
            let num: f64 = w.iter().zip(&o).map(|(a, b)| (a - b) * (a - b)).sum();
            let den: f64 = w.iter().map(|a| a * a).sum();
            worst = worst.max((num / den.max(1e-300)).sqrt());
        }
    }
    worst
}

/// PASSES.md §6 test 1 for fp16: the same filetest graphs in f16 keep their outputs within
/// 1e-3 relative (L2) under `ir::eval` after the fusions that apply to f16 (`fuse-add-norm` is
/// f32-only and must leave an f16 graph alone).
#[test]
fn fused_ops_in_f16_stay_within_1e_3() {
    let mut fused = 0;
    for dir in ["fuse-matmul", "fuse-attention", "fuse-qkv", "fuse-add-norm"] {
        for t in filetests(dir) {
            let f = &t.path;
            let head = t.head.replace("f32", "f16");
            let g = parse_graph(&head).unwrap();
            let h = apply(&g, dir);
            let err = rel_l2_err(&g, &h, 11, 2);
            assert!(
                err <= 1e-3,
                "{} in f16: relative L2 error {err:e}",
                f.display()
            );
            let changed = print_graph(&g).unwrap() != print_graph(&h).unwrap();
            if dir == "fuse-add-norm" {
                assert!(
                    !changed,
                    "{}: fuse-add-norm must leave f16 alone",
                    f.display()
                );
            }
            fused += changed as usize;
        }
    }
    assert!(fused >= 8, "only {fused} f16 graphs were fused");
}

/// Every declined `fuse-attention` filetest says why, naming the Softmax and the blocker.
#[test]
fn attention_declines_name_the_blocker() {
    let want = [
        ("batched_heads_declined.wir", "heads batched into one axis"),
        (
            "merge_target_from_pattern_declined.wir",
            "head-merge Reshape 'y'",
        ),
        ("nan_guard_declined.wir", "'nan' (IsNaN)"),
        (
            "no_merge_transpose_declined.wir",
            "not a [0,2,1,3] head-merge Transpose",
        ),
        ("probs_output_declined.wir", "graph output"),
        (
            "softmax_wrong_axis_declined.wir",
            "not a softmax over the last axis",
        ),
        (
            "where_minus_1e4_declined.wir",
            "selects the constant -10000",
        ),
    ];
    for t in filetests("fuse-attention").iter().filter(|t| t.declined()) {
        let file = t.path.file_name().unwrap().to_string_lossy().to_string();
        let (_, needle) = want
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap_or_else(|| panic!("{file}: no expected decline reason"));
        let mut g = parse_graph(&t.head).unwrap();
        let mut cx = whittle_passes::PassContext::default();
        whittle_passes::fuse_attention(&mut g, &mut cx).unwrap();
        let text = cx.explanations.join("\n");
        assert!(
            text.contains("Softmax 'p'") && text.contains(needle),
            "{file}: {text}"
        );
    }
}

/// A decoder attention: batch `b`, `s` new tokens, `past` cached ones, `h` query heads and
/// `hkv` K/V heads of size `d`. The new K/V heads are concatenated to the past ones (when
/// `past > 0`, as graph outputs), repeated `h/hkv` times (GQA `repeat_kv`: Unsqueeze,
/// Expand, Reshape), and the causal mask is `Where(causal, scores, finfo.min)` on a
/// constant triangle (`where_mask`) or an added constant.
fn decoder_graph(
    b: usize,
    s: usize,
    past: usize,
    h: usize,
    hkv: usize,
    d: usize,
    where_mask: bool,
) -> String {
    let (t, n, e, ekv) = (past + s, h / hkv, h * d, hkv * d);
    let mut out = format!("graph \"dec\" {{\n  input %q: f32[{b},{s},{e}]\n  input %k: f32[{b},{s},{ekv}]\n  input %v: f32[{b},{s},{ekv}]\n");
    if past > 0 {
        out += &format!(
            "  input %pk: f32[{b},{hkv},{past},{d}]\n  input %pv: f32[{b},{hkv},{past},{d}]\n"
        );
    }
    // Query i (position past + i) sees keys 0..=past + i.
    let allowed = |i: usize, j: usize| j <= past + i;
    let vals: Vec<String> = (0..s * t)
        .map(|x| {
            let ok = allowed(x / t, x % t);
            match (where_mask, ok) {
                (true, ok) => ok.to_string(),
                (false, true) => "0.0".into(),
                (false, false) => "-3.4028235e38".into(),
            }
        })
        .collect();
    let ty = if where_mask { "bool" } else { "f32" };
    out += &format!("  %causal = const {ty}[1,1,{s},{t}] [{}]\n", vals.join(","));
    out += &format!(
        "  %sq = const i64[4] [0,0,{h},{d}]\n  %skv = const i64[4] [0,0,{hkv},{d}]\n  %merge = const i64[3] [0,0,{e}]\n  %a2 = const i64[1] [2]\n  %rep = const i64[5] [1,1,{n},1,1]\n  %heads = const i64[4] [{b},{h},{t},{d}]\n  %c = const f32[] [{:?}]\n  %min = const f32[] [-3.4028235e38]\n",
        1.0 / (d as f32).sqrt()
    );
    out += &format!(
        "  %q4 = Reshape(allowzero:false) %q, %sq : f32[{b},{s},{h},{d}]\n  %qh = Transpose(perm:Some([0,2,1,3])) %q4 : f32[{b},{h},{s},{d}]\n"
    );
    for x in ["k", "v"] {
        out += &format!(
            "  %{x}4 = Reshape(allowzero:false) %{x}, %skv : f32[{b},{s},{hkv},{d}]\n  %{x}h = Transpose(perm:Some([0,2,1,3])) %{x}4 : f32[{b},{hkv},{s},{d}]\n"
        );
        let cur = if past > 0 {
            out += &format!("  %{x}c = Concat(axis:-2) %p{x}, %{x}h : f32[{b},{hkv},{t},{d}]\n");
            format!("{x}c")
        } else {
            format!("{x}h")
        };
        let full = if n > 1 {
            out += &format!(
                "  %{x}u = Unsqueeze %{cur}, %a2 : f32[{b},{hkv},1,{t},{d}]\n  %{x}e = Expand %{x}u, %rep : f32[{b},{hkv},{n},{t},{d}]\n  %{x}r = Reshape(allowzero:false) %{x}e, %heads : f32[{b},{h},{t},{d}]\n"
            );
            format!("{x}r")
        } else {
            cur
        };
        if x == "k" {
            out += &format!(
                "  %kt = Transpose(perm:Some([0,1,3,2])) %{full} : f32[{b},{h},{d},{t}]\n"
            );
        } else {
            out += &format!("  %vx = Identity %{full} : f32[{b},{h},{t},{d}]\n");
        }
    }
    out += &format!(
        "  %s = MatMul %qh, %kt : f32[{b},{h},{s},{t}]\n  %sd = Binary(Mul) %s, %c : f32[{b},{h},{s},{t}]\n"
    );
    out += &if where_mask {
        format!("  %sm = Where %causal, %sd, %min : f32[{b},{h},{s},{t}]\n")
    } else {
        format!("  %sm = Binary(Add) %sd, %causal : f32[{b},{h},{s},{t}]\n")
    };
    out += &format!(
        "  %p = Softmax(axis:-1,coerce_2d:false) %sm : f32[{b},{h},{s},{t}]\n  %o = MatMul %p, %vx : f32[{b},{h},{s},{d}]\n  %ot = Transpose(perm:Some([0,2,1,3])) %o : f32[{b},{s},{h},{d}]\n  %y = Reshape(allowzero:false) %ot, %merge : f32[{b},{s},{e}]\n  output %y\n"
    );
    if past > 0 {
        out += "  output %kc\n  output %vc\n";
    }
    out + "}\n"
}

/// GPT-2 / LLaMA-style decoders (causal masks as a select or an added constant, KV
/// caches, GQA) with head sizes 64 and 128 fuse into one Attention and keep their
/// outputs (the caches bit for bit).
#[test]
fn decoder_attention_with_cache_and_gqa_is_fused_and_exact() {
    for (b, s, past, h, hkv, d, where_mask) in [
        (2, 7, 0, 2, 2, 64, true),
        (1, 81, 0, 4, 2, 64, false),
        (2, 1, 79, 2, 2, 128, true),
        (1, 3, 40, 4, 1, 64, false),
        (1, 5, 12, 6, 2, 128, true),
    ] {
        let text = decoder_graph(b, s, past, h, hkv, d, where_mask);
        let g = parse_graph(&text).unwrap();
        let fused = apply(&g, "remove-identity,fuse-attention");
        let what = format!("b{b} s{s} past{past} h{h}/{hkv} d{d} where:{where_mask}");
        assert_eq!(
            count(&fused, |op| matches!(op, Op::Attention { .. })),
            1,
            "{what}"
        );
        assert_eq!(
            count(&fused, |op| matches!(op, Op::Softmax { .. })),
            0,
            "{what}"
        );
        assert_eq!(count(&fused, |op| *op == Op::MatMul), 0, "{what}");
        let err = max_err(&g, &fused, 5, 2);
        assert!(err <= 1e-5, "{what}: relative error {err:e}");
        let again = apply(&fused, "fuse-attention");
        assert_eq!(
            print_graph(&fused).unwrap(),
            print_graph(&again).unwrap(),
            "{what}"
        );
    }
}
