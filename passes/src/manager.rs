//! The pass manager: the `Pass` trait, named passes, pipelines, verification between passes,
//! per-pass statistics (nodes, parameters, FLOPs before → after), `--print-ir-after-change`,
//! and the per-site explanations that `--explain` prints.

use crate::stats::GraphStats;
use thiserror::Error;
use whittle_ir::{Graph, IrError};

/// Whether a pass changed the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    Yes,
    No,
}

#[derive(Debug, Error)]
pub enum PassError {
    #[error("pass '{pass}': {source}")]
    Ir { pass: String, source: IrError },
    #[error("unknown pass '{0}' (known: exact, none, {known})", known = PASS_NAMES.join(", "))]
    UnknownPass(String),
    #[error("pass '{0}' reported no change but modified the graph")]
    SilentChange(String),
}

/// One pass's effect, as recorded by [`Pipeline::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassStat {
    pub pass: &'static str,
    pub changed: bool,
    pub before: GraphStats,
    pub after: GraphStats,
}

impl std::fmt::Display for PassStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<16} {:<3} nodes {} -> {}, params {} -> {}, flops {} -> {}",
            self.pass,
            if self.changed { "yes" } else { "no" },
            self.before.nodes,
            self.after.nodes,
            self.before.params,
            self.after.params,
            self.before.flops,
            self.after.flops
        )
    }
}

/// What a pass may read and report besides the graph.
#[derive(Debug, Default)]
pub struct PassContext {
    /// One line per site: why a pass did or did not apply there.
    pub explanations: Vec<String>,
    /// Verify the graph after every pass that changed it.
    pub verify: bool,
    /// Print the IR text (to stderr) after every pass that changed the graph; the texts
    /// are also kept in `ir_after_change`.
    pub print_ir_after_change: bool,
    /// `(pass, IR text)` after each changing pass, when `print_ir_after_change` is set.
    pub ir_after_change: Vec<(String, String)>,
    /// Concrete input shapes for `fold-shapes` (`specialize`), by input name.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// One entry per pass run by [`Pipeline::run`].
    pub stats: Vec<PassStat>,
}

impl PassContext {
    pub fn explain(&mut self, pass: &str, msg: impl Into<String>) {
        self.explanations.push(format!("{pass}: {}", msg.into()));
    }
}

pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError>;
}

/// Every pass the manager knows, by command-line name.
pub const PASS_NAMES: &[&str] = &[
    "dce",
    "remove-identity",
    "const-fold",
    "cse",
    "fold-shapes",
    "canonicalize",
    "fold-bn",
    "ln-to-rmsnorm",
    "crmsnorm",
    "fuse-attention",
    "fuse-int-matmul",
    "fuse-matmul",
    "fuse-qkv",
    "fuse-add-norm",
    "remove-padding",
];

type PassFn = fn(&mut Graph, &mut PassContext) -> Result<Changed, IrError>;

struct FnPass {
    name: &'static str,
    f: PassFn,
}

impl Pass for FnPass {
    fn name(&self) -> &'static str {
        self.name
    }
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        (self.f)(g, cx).map_err(|source| PassError::Ir {
            pass: self.name.to_string(),
            source,
        })
    }
}

/// Looks a pass up by its command-line name.
pub fn pass_by_name(name: &str) -> Result<Box<dyn Pass>, PassError> {
    let f: PassFn = match name {
        "dce" => crate::dead_code_elimination,
        "remove-identity" => crate::remove_identity,
        "const-fold" => crate::const_fold,
        "cse" => crate::cse,
        "fold-shapes" => crate::fold_shapes,
        "canonicalize" => crate::canonicalize,
        "fold-bn" => crate::fold_bn,
        "ln-to-rmsnorm" => crate::ln_to_rmsnorm,
        "crmsnorm" => crate::crmsnorm,
        "fuse-attention" => crate::fuse_attention,
        "fuse-int-matmul" => crate::fuse_int_matmul,
        "fuse-matmul" => crate::fuse_matmul,
        "fuse-qkv" => crate::fuse_qkv,
        "fuse-add-norm" => crate::fuse_add_norm,
        "remove-padding" => crate::remove_padding,
        _ => return Err(PassError::UnknownPass(name.to_string())),
    };
    let name = PASS_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .unwrap_or("?");
    Ok(Box::new(FnPass { name, f }))
}

/// The passes of [`Pipeline::exact`].
const EXACT: &str = "remove-identity,fuse-int-matmul,const-fold,canonicalize,fold-bn,const-fold,\
                     cse,fuse-int-matmul,fuse-attention,fuse-add-norm,fuse-matmul,fuse-qkv,dce";

/// An ordered list of passes.
pub struct Pipeline {
    pub passes: Vec<Box<dyn Pass>>,
}

impl Pipeline {
    /// The exact (E0/E1) pipeline: clean up first (so patterns see folded constants and
    /// no Identity nodes; integer products are fused before constant folding would turn
    /// their weights' DequantizeLinear into f32 weights), recognise composite ops, fold BatchNorms, clean up again, then
    /// fuse attention and GEMM epilogues (last: the fused ops hide the patterns above).
    pub fn exact() -> Pipeline {
        Pipeline::parse(EXACT).expect("built-in pipeline names are valid")
    }

    /// `a,b,c` by name; `exact` in the list stands for the exact pipeline's passes (so
    /// `exact,remove-padding` works); `none` or an empty string is the empty pipeline.
    pub fn parse(spec: &str) -> Result<Pipeline, PassError> {
        let passes = spec
            .split(',')
            .map(str::trim)
            .flat_map(|s| match s {
                "exact" => EXACT.split(',').collect::<Vec<_>>(),
                s => vec![s],
            })
            .filter(|s| !s.is_empty() && *s != "none")
            .map(pass_by_name)
            .collect::<Result<_, _>>()?;
        Ok(Pipeline { passes })
    }

    /// Runs every pass in order; returns the names of the passes that changed the graph.
    /// Records a [`PassStat`] per pass in `cx.stats`. In debug builds (and with
    /// `cx.verify`) a pass that reports `Changed::No` must leave the graph unchanged.
    pub fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<Vec<&'static str>, PassError> {
        let mut changed = vec![];
        let check = cx.verify || cfg!(debug_assertions);
        for p in &self.passes {
            let before = GraphStats::of(g);
            let print = if check {
                Some(crate::rewrite::fingerprint(g))
            } else {
                None
            };
            let result = p.run(g, cx)?;
            if result == Changed::Yes {
                changed.push(p.name());
                if check {
                    g.verify().map_err(|source| PassError::Ir {
                        pass: p.name().into(),
                        source,
                    })?;
                }
                if cx.print_ir_after_change {
                    let text =
                        whittle_ir::text::print_graph(g).map_err(|source| PassError::Ir {
                            pass: p.name().into(),
                            source,
                        })?;
                    eprintln!("// IR after {}\n{text}", p.name());
                    cx.ir_after_change.push((p.name().to_string(), text));
                }
            } else if let Some(print) = print {
                if print != crate::rewrite::fingerprint(g) {
                    return Err(PassError::SilentChange(p.name().to_string()));
                }
            }
            cx.stats.push(PassStat {
                pass: p.name(),
                changed: result == Changed::Yes,
                before,
                after: GraphStats::of(g),
            });
        }
        Ok(changed)
    }
}
