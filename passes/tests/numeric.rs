//! Numeric equivalence of the exact passes: every filetest input of `canonicalize`,
//! `fold-bn`, `const-fold`, `cse` and `fold-shapes` is run through its passes, and
//! `ir::eval` compares the graph before and after on random inputs (f32: ≤ 1e-5 relative).
//! Files named `*_declined.wir` must come back byte-identical.

mod common;

use common::*;
use std::path::Path;
use whittle_ir::text::{parse_graph, print_graph};
use whittle_ir::{DType, Graph};
use whittle_passes::{PassContext, Pipeline};

/// Runs `passes` on `g` and returns the largest output error over a few random inputs.
pub fn check_equivalent(g: &Graph, passes: &str) -> (Graph, f64) {
    let h = apply(g, passes);
    let worst = max_err(g, &h, 42, 3);
    (h, worst)
}

#[test]
fn filetest_inputs_keep_their_outputs() {
    let mut checked = 0;
    for dir in [
        "canonicalize",
        "fold-bn",
        "const-fold",
        "cse",
        "fold-shapes",
    ] {
        for t in filetests(dir) {
            let f = &t.path;
            let g = parse_graph(&t.head).unwrap();
            let (h, err) = check_equivalent(&g, &t.passes);
            assert!(err <= 1e-5, "{}: relative error {err:e}", f.display());
            if t.declined() {
                assert_eq!(
                    print_graph(&g).unwrap(),
                    print_graph(&h).unwrap(),
                    "{}: a declined rewrite must leave the graph byte-identical",
                    f.display()
                );
            } else {
                assert_ne!(
                    print_graph(&g).unwrap(),
                    print_graph(&h).unwrap(),
                    "{}",
                    f.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} filetests checked");
}

#[test]
fn no_change_means_byte_identical() {
    // Every pass on a graph it cannot change: the manager's fingerprint check passes and
    // the printed IR is identical.
    let src = "graph \"g\" {\n  input %x: f32[2,3]\n  %s = Softmax(axis:-1,coerce_2d:false) %x : f32[2,3]\n  output %s\n}\n";
    let g = parse_graph(src).unwrap();
    for p in [
        "const-fold",
        "cse",
        "canonicalize",
        "fold-bn",
        "fold-shapes",
        "dce",
        "remove-identity",
    ] {
        let mut h = g.clone();
        let changed = Pipeline::parse(p)
            .unwrap()
            .run(
                &mut h,
                &mut PassContext {
                    verify: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(changed.is_empty(), "{p}");
        assert_eq!(print_graph(&g).unwrap(), print_graph(&h).unwrap(), "{p}");
    }
}

#[test]
fn exact_pipeline_reports_stats_and_ir() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests/fold-bn/conv_bn.wir");
    let text = std::fs::read_to_string(root).unwrap();
    let g = parse_graph(text.split("# expected:").next().unwrap()).unwrap();
    let mut h = g.clone();
    let mut cx = PassContext {
        verify: true,
        print_ir_after_change: true,
        ..Default::default()
    };
    let changed = Pipeline::exact().run(&mut h, &mut cx).unwrap();
    assert!(changed.contains(&"fold-bn"));
    assert_eq!(cx.stats.len(), Pipeline::exact().passes.len());
    let bn = cx.stats.iter().find(|s| s.pass == "fold-bn").unwrap();
    // Conv 1x2x5x5 → 1x3x5x5 with a 3x3 kernel, pads 1: 2·75·18 = 2700 FLOPs, unchanged.
    assert_eq!((bn.before.flops, bn.after.flops), (2700, 2700));
    assert!(bn.after.nodes < bn.before.nodes && bn.after.params < bn.before.params);
    assert_eq!(cx.ir_after_change.len(), changed.len());
    assert!(cx
        .ir_after_change
        .iter()
        .all(|(_, t)| parse_graph(t).is_ok()));
    assert!(cx
        .explanations
        .iter()
        .any(|e| e.contains("folded into preceding Conv")));
    let _ = DType::F32;
}
