//! Fuzz target: `load_model_bytes` on arbitrary bytes must return, never panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = whittle_frontend::load_model_bytes(data, None);
    let _ = whittle_frontend::unsupported_ops(data);
});
