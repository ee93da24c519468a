//! whittle-runtime: the `Backend` trait that every code generator implements, the reference
//! backend (the `ir::eval` oracle behind the same trait), and tensor files (.npy/.npz).

mod backend;
pub mod npy;

pub use backend::{Backend, Executable, ReferenceBackend, RuntimeError};
