//! whittle-passes: graph-to-graph rewrites and the pass manager that runs them.
