//! whittle-tests: the ONNX conformance runner's building blocks (case discovery, the op
//! set we claim, output comparison at ONNX's tolerances) and shared test helpers.

pub mod conformance;
