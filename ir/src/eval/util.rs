//! Shared helpers of the evaluator: broadcasting, strides, axis normalisation.
