//! The ahead-of-time compiled demo encoder (the default model of `build.rs`), linked through
//! `build.rs`, gives the reference
//! evaluator's outputs on the demo inputs (rel L2 ≤ 1e-5), and refuses wrongly sized buffers.

use whittle_example_rust_aot::{run, INPUTS, IS_DEMO, OUTPUTS};

#[test]
fn aot_model_matches_ir_eval() {
    if !IS_DEMO {
        eprintln!("built for WHITTLE_AOT_MODEL: tests/models/check.py checks that model");
        return;
    }
    let inputs = whittle::demo::demo_inputs();
    let by_name = |n: &str| {
        inputs
            .iter()
            .find(|(m, _)| m == n)
            .expect("demo input")
            .1
            .clone()
    };
    let raw: Vec<Vec<u8>> = INPUTS
        .iter()
        .map(|(n, _, _)| by_name(n).to_le_bytes())
        .collect();
    let refs: Vec<&[u8]> = raw.iter().map(|b| b.as_slice()).collect();
    let outs = run(&refs).expect("demo_run");
    let g = whittle::demo::build_demo_graph();
    let named: Vec<(&str, whittle::ir::Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let want = whittle::ir::eval::run(&g, &named).expect("ir::eval");
    assert_eq!(outs.len(), OUTPUTS.len());
    for ((name, _, _), got) in OUTPUTS.iter().zip(&outs) {
        let w = want
            .iter()
            .find(|(n, _)| n == name)
            .expect("output")
            .1
            .to_f64_vec();
        let o: Vec<f64> = got
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect();
        assert_eq!(o.len(), w.len());
        let num: f64 = o.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f64 = w.iter().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        assert!(rel <= 1e-5, "{name}: rel L2 {rel:e}");
        println!("{name}: rel L2 {rel:e} against ir::eval");
    }
    // A buffer of the wrong size is refused before the call.
    assert_eq!(run(&[&raw[0][1..], &raw[1]]), Err(-1));
}
