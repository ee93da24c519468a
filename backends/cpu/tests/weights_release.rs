//! Memory: a fixed-shape graph is compiled once and released, and weights that only feed
//! GEMMs (kept as packed copies) are not referenced by the executable afterwards; the
//! results still match `ir::eval`, and constants that steps read stay alive.

mod common;

use common::*;
use std::sync::Arc;
use whittle_ir::{DType, Op, TensorType};
use whittle_passes::testing::Builder;
use whittle_runtime::Backend;

#[test]
fn packed_only_weights_are_released_after_compile() {
    let mut r = rng(11);
    let mut b = Builder::new("mm", DType::F32, 7);
    let x = b.g.add_input("x", TensorType::fixed(DType::F32, &[4, 8]));
    let w = b.randn("w", &[8, 16], 0.0, 1.0);
    let h = b.node(Op::MatMul, "mm", &[x, w]);
    // `bias` is read by a step at run time: the plan keeps it.
    let bias = b.randn("bias", &[16], 0.0, 1.0);
    let y = b.node(
        Op::Softmax {
            axis: -1,
            coerce_2d: false,
        },
        "sm",
        &[h],
    );
    let z = b.node(Op::Binary(whittle_ir::BinaryOp::Add), "add", &[y, bias]);
    let mut g = b.g;
    g.add_output(z, "z");
    let arc = |v: whittle_ir::Value| g.node(v.node).op.as_constant().cloned().unwrap();
    let (w_arc, bias_arc) = (arc(w), arc(bias));
    let exe = whittle_cpu::CpuBackend::default().compile(&g).unwrap();
    // Held here (w_arc) and by the graph only: the executable let go of the unpacked W.
    assert_eq!(Arc::strong_count(&w_arc), 2);
    assert!(Arc::strong_count(&bias_arc) > 2);
    let xin = rand_tensor(&mut r, &[4, 8], -1.0, 1.0);
    let got = exe.run(&[("x", xin.clone())]).unwrap();
    let want = whittle_ir::eval::run(&g, &[("x", xin.clone())]).unwrap();
    assert_eq!(got.len(), want.len());
    check(&g, &[("x", xin)], 1e-5, 1e-6);
    // Other shapes have no plan once the graph is released: an error, not a crash.
    assert!(exe
        .run(&[("x", rand_tensor(&mut r, &[2, 8], -1.0, 1.0))])
        .is_err());
}
