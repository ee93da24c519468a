//! Writes a random Pre-LN GPT (from `whittle_passes::testing`) as an ONNX file, for checking
//! `ln-to-rmsnorm` / `crmsnorm` output in onnxruntime and for benchmarking the rewrite.
//!
//! `cargo run --release --example gen_prenorm -- OUT.onnx [layers width heads seq]`

use whittle::frontend::{save_model, ExportOptions, Model};
use whittle::ir::DType;
use whittle::passes::testing::{gpt, GptConfig};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: gen_prenorm OUT.onnx [layers width heads seq]")?;
    let num = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse().map_err(|_| format!("bad number '{s}'"))
        })
    };
    let cfg = GptConfig {
        dtype: DType::F32,
        layers: num(1, 4)?,
        width: num(2, 256)?,
        heads: num(3, 4)?,
        seq: num(4, 128)?,
        vocab: 1000,
        ..GptConfig::default()
    };
    let g = gpt(&cfg);
    save_model(
        &Model::from_graph(g),
        std::path::Path::new(out),
        &ExportOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "wrote {out}: {} layers, width {}, {} heads, seq {}",
        cfg.layers, cfg.width, cfg.heads, cfg.seq
    );
    Ok(())
}
