//! whittle-runtime: backends behind one trait, and tensor files (.npy/.npz) in and out.
