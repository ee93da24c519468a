//! whittle-tests: shared helpers of the integration tests and the conformance runner.
