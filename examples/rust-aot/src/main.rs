//! Runs the ahead-of-time compiled demo encoder on 12 tokens and prints a summary.

fn main() {
    use whittle_example_rust_aot::{run, INPUTS, MODEL_HASH, OUTPUTS};
    let seq = INPUTS[0].2[1];
    let ids: Vec<i64> = (0..seq as i64)
        .map(|i| if i < 12 { (i * 37 + 11) % 100 } else { 0 })
        .collect();
    let mask: Vec<i64> = (0..seq as i64).map(|i| (i < 12) as i64).collect();
    let raw = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (ids, mask) = (raw(&ids), raw(&mask));
    match run(&[&ids, &mask]) {
        Ok(outs) => {
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
        }
        Err(status) => {
            eprintln!("demo_run failed with status {status}");
            std::process::exit(1);
        }
    }
}
