//! The `whittle` command line: inspect, run, optimize and demo.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  whittle demo                                   run the embedded demo model end to end
  whittle inspect model.onnx                     ops, parameters, inputs/outputs, unsupported ops
  whittle run model.onnx -i input_ids=ids.npy -i attention_mask=mask.npy -o out/
  whittle optimize model.onnx -o model.opt.onnx  exact passes; the result runs in any ONNX runtime
  whittle compile model.onnx -o model.o --header model.h --input-shape x=1x16
                                                 object file + C header for linking into C/C++/Rust
  whittle passes                                 list the pass names accepted by --passes";

/// whittle compiles ONNX models into fast native code, with exact and approximate
/// compression passes applied to any exported graph.
#[derive(Parser)]
#[command(name = "whittle", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
    /// cpu backend: write every generated kernel's Cranelift IR to DIR/NNNN_<kernel>.clif
    /// (for `run` and `bench`).
    #[arg(long, global = true, value_name = "DIR")]
    emit_clif: Option<PathBuf>,
    /// The largest allocation a model or input may ask for, e.g. 8G, 512M or a byte count
    /// (default: the machine's memory). Anything larger is refused with an error.
    #[arg(long, global = true, value_name = "SIZE")]
    max_memory: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise a model: ops, parameters, inputs and outputs, opsets, unsupported ops.
    Inspect {
        /// The .onnx file.
        model: PathBuf,
        /// Also print the IR in whittle's text format.
        #[arg(long)]
        ir: bool,
    },
    /// Run a model on .npy/.npz inputs and write one .npy per output.
    Run {
        /// The .onnx file.
        model: PathBuf,
        /// An input as NAME=FILE.npy (repeat for each input), or FILE.npz holding all of them.
        #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy|FILE.npz")]
        inputs: Vec<String>,
        /// Where the outputs go, one NAME.npy per model output.
        #[arg(long, short = 'o', value_name = "DIR")]
        output_dir: PathBuf,
        /// Which backend runs the model.
        #[arg(long, default_value = "cpu", value_name = "NAME")]
        backend: String,
        /// Worker threads for backends that use them (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Passes to run first: `exact` (the default: the exact fusions and folds), `none`, or
        /// pass names, comma-separated (see `whittle passes`).
        #[arg(long, default_value = "exact", value_name = "a,b,c")]
        passes: String,
    },
    /// Rewrite a model with whittle's passes and write it back as ONNX.
    Optimize {
        /// The .onnx file.
        model: PathBuf,
        /// Where the optimized model goes.
        #[arg(long, short = 'o', value_name = "OUT.onnx")]
        output: PathBuf,
        /// Passes to run, comma-separated: `exact` (the default pipeline), `none`, or pass
        /// names (see `whittle passes`).
        #[arg(long, default_value = "exact", value_name = "a,b,c")]
        passes: String,
        /// Print why each pass did or did not apply.
        #[arg(long)]
        explain: bool,
        /// Print the IR (to stderr) after every pass that changed the graph.
        #[arg(long)]
        print_ir_after_change: bool,
        /// Input shapes for shape folding (the fold-shapes pass), e.g. input_ids=1x128.
        #[arg(long = "input-shape", value_name = "NAME=AxB")]
        shapes: Vec<String>,
        /// Write weights of 1 KiB or more to this file next to the output (ONNX external data).
        #[arg(long, value_name = "FILE")]
        external_data: Option<String>,
        /// The ONNX opset to write (at least 13); compound ops it lacks (LayerNormalization
        /// before 17, Gelu before 20, RMSNormalization before 23, HardSwish before 14) are
        /// written as primitive ops. Default: the lowest opset the graph needs, or the
        /// source model's if higher.
        #[arg(long, value_name = "N")]
        opset: Option<i64>,
    },
    /// Build an embedded demo model, run it through the whole pipeline and check the result.
    Demo,
    /// Measure compile time, warm latency (p50/p90/p99) and peak memory on a backend.
    Bench {
        /// The .onnx file.
        model: PathBuf,
        /// An input as NAME=FILE.npy (repeat), or FILE.npz. Inputs with fully known shapes
        /// that are not given get synthetic values.
        #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy|FILE.npz")]
        inputs: Vec<String>,
        /// Shape of a synthetic input, e.g. input_ids=1x128 (for inputs not given by --input).
        #[arg(long = "input-shape", value_name = "NAME=AxB")]
        shapes: Vec<String>,
        /// Which backend runs the model.
        #[arg(long, default_value = "cpu", value_name = "NAME")]
        backend: String,
        /// Worker threads for backends that use them (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Passes to run first: `exact` (the default), `none`, or pass names (see `whittle passes`).
        #[arg(long, default_value = "exact", value_name = "a,b,c")]
        passes: String,
        /// Untimed runs before timing.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Print one JSON line instead of text (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Compile a model ahead of time into an object file + C header (link with libwhittle_rt.a).
    Compile {
        /// The .onnx file.
        model: PathBuf,
        /// The object file to write.
        #[arg(long, short = 'o', value_name = "OUT.o")]
        output: PathBuf,
        /// The C header to write (default: the object's path with .h).
        #[arg(long, value_name = "OUT.h")]
        header: Option<PathBuf>,
        /// Prefix of the exported symbols (default: the object's file stem).
        #[arg(long, value_name = "PREFIX")]
        name: Option<String>,
        /// Concrete shape of an input the model leaves symbolic, e.g. input_ids=1x128.
        #[arg(long = "input-shape", value_name = "NAME=AxB")]
        shapes: Vec<String>,
        /// Passes to run first (see `whittle passes`).
        #[arg(long, default_value = "exact", value_name = "a,b,c")]
        passes: String,
        /// The CPU the object runs on: `native` (this machine's features), `x86-64-v3`
        /// (AVX2+FMA) or `x86-64-v4` (AVX-512). The runtime refuses a CPU that lacks them.
        #[arg(long, default_value = "native", value_name = "CPU")]
        cpu: String,
    },
    /// List the passes that --passes accepts.
    Passes,
}

fn main() -> ExitCode {
    // Like every Unix filter: when the reader of our stdout goes away (`whittle ... | head`),
    // stop quietly instead of panicking on EPIPE.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Some(size) = &cli.max_memory {
        match whittle::ir::limits::parse_memory(size) {
            Ok(bytes) => whittle::ir::limits::set_max_memory(bytes),
            Err(e) => return fail(&format!("--max-memory: {e}")),
        }
    }
    if cli.emit_clif.is_some() {
        whittle::cpu::jit::set_emit_clif(cli.emit_clif.clone());
    }
    let result = match cli.cmd {
        Command::Inspect { model, ir } => cli::inspect::run(&model, ir),
        Command::Run {
            model,
            inputs,
            output_dir,
            backend,
            threads,
            passes,
        } => cli::run::run(&model, &inputs, &output_dir, &backend, &passes, threads),
        Command::Optimize {
            model,
            output,
            passes,
            explain,
            print_ir_after_change,
            shapes,
            external_data,
            opset,
        } => cli::optimize::run(cli::optimize::OptimizeArgs {
            model: &model,
            output: &output,
            passes: &passes,
            explain,
            print_ir_after_change,
            shapes: &shapes,
            external_data,
            opset,
        }),
        Command::Demo => cli::demo::run(),
        Command::Bench {
            model,
            inputs,
            shapes,
            backend,
            threads,
            passes,
            warmup,
            iters,
            json,
        } => cli::bench::run(&cli::bench::BenchArgs {
            model: &model,
            inputs: &inputs,
            shapes: &shapes,
            backend: &backend,
            threads,
            passes: &passes,
            warmup,
            iters: iters.max(1),
            json,
        }),
        Command::Compile {
            model,
            output,
            header,
            name,
            shapes,
            passes,
            cpu,
        } => whittle::cpu::aot::CpuTarget::parse(&cpu).and_then(|cpu| {
            cli::compile::run(cli::compile::CompileArgs {
                model: &model,
                output: &output,
                header: header.as_deref(),
                name: name.as_deref(),
                shapes: &shapes,
                passes: &passes,
                cpu,
            })
        }),
        Command::Passes => {
            println!(
                "exact pipeline: {}",
                whittle::passes::Pipeline::exact()
                    .passes
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            println!("passes:");
            for name in whittle::passes::PASS_NAMES {
                println!("  {name}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `error: MSG` as exactly one line (line breaks folded, control characters escaped:
/// messages can quote model text or a library's multi-line report) and fails.
fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {}", cli::one_line(msg));
    ExitCode::FAILURE
}

/// A command line clap rejects: its error block (before the usage and tips) as one line,
/// exit code 2. `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let block = text.split("\n\n").next().unwrap_or_default();
    let msg = block.trim().strip_prefix("error:").unwrap_or(block).trim();
    eprintln!("error: {} (see `whittle --help`)", cli::one_line(msg));
    ExitCode::from(2)
}
