//! Runs the ahead-of-time compiled model. With no arguments (the demo encoder): 12 tokens,
//! prints a summary. Otherwise `IN0.bin ... OUT0.bin ...` like `examples/c/main.c`: one raw
//! little-endian file per input (in [`INPUTS`] order) and per output.

use whittle_example_rust_aot::{run, INPUTS, IS_DEMO, MODEL_HASH, OUTPUTS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs: Vec<Vec<u8>> = if args.is_empty() && IS_DEMO {
        let seq = INPUTS[0].2[1];
        let ids: Vec<i64> = (0..seq as i64)
            .map(|i| if i < 12 { (i * 37 + 11) % 100 } else { 0 })
            .collect();
        let mask: Vec<i64> = (0..seq as i64).map(|i| (i < 12) as i64).collect();
        let raw = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        vec![raw(&ids), raw(&mask)]
    } else if args.len() == INPUTS.len() + OUTPUTS.len() {
        args[..INPUTS.len()]
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_else(|e| fail(&format!("{p}: {e}"))))
            .collect()
    } else {
        fail(&format!(
            "usage: {} IN0.bin ... ({} inputs) OUT0.bin ... ({} outputs)",
            env!("CARGO_PKG_NAME"),
            INPUTS.len(),
            OUTPUTS.len()
        ))
    };
    let refs: Vec<&[u8]> = inputs.iter().map(|b| b.as_slice()).collect();
    let outs = run(&refs).unwrap_or_else(|s| fail(&format!("model_run failed with status {s}")));
    if args.is_empty() {
        let y: Vec<f32> = outs[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let norm = y.iter().map(|v| v * v).sum::<f32>().sqrt();
        println!(
            "{} {:?}: {} values, L2 norm {norm:.4}; model hash {MODEL_HASH:#018x}",
            OUTPUTS[0].0,
            OUTPUTS[0].2,
            y.len()
        );
        return;
    }
    for (path, bytes) in args[INPUTS.len()..].iter().zip(&outs) {
        std::fs::write(path, bytes).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    }
    println!("ok: {} input(s), {} output(s)", INPUTS.len(), OUTPUTS.len());
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1)
}
