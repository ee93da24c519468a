//! Fuzz target: `load_model_bytes` on arbitrary bytes must return, never panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Below libFuzzer's 4 GiB malloc limit, so that a size a model asks for is refused by
    // the budget (the behaviour under test), not reported as an out-of-memory crash.
    static BUDGET: std::sync::Once = std::sync::Once::new();
    BUDGET.call_once(|| whittle_ir::limits::set_max_memory(1 << 30));
    let _ = whittle_frontend::load_model_bytes(data, None);
    let _ = whittle_frontend::unsupported_ops(data);
});
