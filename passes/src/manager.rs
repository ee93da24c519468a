//! The pass manager: the `Pass` trait, named passes, pipelines, verification between passes,
//! and the per-site explanations that `--explain` prints.

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
    #[error("unknown pass '{0}' (known: {known})", known = PASS_NAMES.join(", "))]
    UnknownPass(String),
}

/// What a pass may read and report besides the graph.
#[derive(Debug, Default)]
pub struct PassContext {
    /// One line per site: why a pass did or did not apply there.
    pub explanations: Vec<String>,
    /// Verify the graph after every pass that changed it.
    pub verify: bool,
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
pub const PASS_NAMES: &[&str] = &["dce", "remove-identity"];

struct FnPass {
    name: &'static str,
    f: fn(&mut Graph, &mut PassContext) -> Result<Changed, IrError>,
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
    let f: fn(&mut Graph, &mut PassContext) -> Result<Changed, IrError> = match name {
        "dce" => crate::dead_code_elimination,
        "remove-identity" => crate::remove_identity,
        _ => return Err(PassError::UnknownPass(name.to_string())),
    };
    let name = PASS_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .unwrap_or("?");
    Ok(Box::new(FnPass { name, f }))
}

/// An ordered list of passes.
pub struct Pipeline {
    pub passes: Vec<Box<dyn Pass>>,
}

impl Pipeline {
    /// The exact (E0/E1) cleanup pipeline.
    pub fn exact() -> Pipeline {
        Pipeline::parse("remove-identity,dce").expect("built-in pipeline names are valid")
    }

    /// `a,b,c` by name; `none` or an empty string is the empty pipeline.
    pub fn parse(spec: &str) -> Result<Pipeline, PassError> {
        let passes = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "none")
            .map(pass_by_name)
            .collect::<Result<_, _>>()?;
        Ok(Pipeline { passes })
    }

    /// Runs every pass in order; returns the names of the passes that changed the graph.
    pub fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<Vec<&'static str>, PassError> {
        let mut changed = vec![];
        for p in &self.passes {
            if p.run(g, cx)? == Changed::Yes {
                changed.push(p.name());
                if cx.verify || cfg!(debug_assertions) {
                    g.verify().map_err(|source| PassError::Ir {
                        pass: p.name().into(),
                        source,
                    })?;
                }
            }
        }
        Ok(changed)
    }
}
