//! whittle-passes: graph-to-graph rewrites and the pass manager that runs them.
//!
//! A pass is one file with a plain entry function and a `Pass` impl. Passes never call a
//! backend; they see only the IR and their `PassContext`. Shared matching and rewriting
//! helpers live in [`rewrite`].

mod canon_act;
mod canon_contrib;
mod canon_norm;
mod canonicalize;
mod const_fold;
mod cse;
mod dce;
mod fold_bn;
mod fold_bn_site;
mod fold_shapes;
mod fuse_add_norm;
mod fuse_attention;
mod fuse_int_matmul;
mod fuse_matmul;
mod fuse_qkv;
mod manager;
mod poly;
mod remove_identity;
mod remove_padding;
pub mod rewrite;
mod rmsnorm;
pub mod stats;
pub mod testing;

pub use canonicalize::canonicalize;
pub use const_fold::const_fold;
pub use cse::cse;
pub use dce::dead_code_elimination;
pub use fold_bn::fold_bn;
pub use fold_shapes::fold_shapes;
pub use fuse_add_norm::fuse_add_norm;
pub use fuse_attention::fuse_attention;
pub use fuse_int_matmul::fuse_int_matmul;
pub use fuse_matmul::fuse_matmul;
pub use fuse_qkv::fuse_qkv;
pub use manager::{
    pass_by_name, Changed, Pass, PassContext, PassError, PassStat, Pipeline, PASS_NAMES,
};
pub use remove_identity::remove_identity;
pub use remove_padding::remove_padding;
pub use rmsnorm::{crmsnorm, ln_to_rmsnorm};
pub use stats::{flops, GraphStats};
