//! whittle-frontend: decodes ONNX models into the IR and writes the IR back as ONNX.
