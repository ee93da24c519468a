//! whittle: the facade library (re-exports of the pipeline crates) behind the CLI.
