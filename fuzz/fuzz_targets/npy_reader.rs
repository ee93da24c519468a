//! Fuzz target: the `.npy` and `.npz` readers on arbitrary bytes return a tensor or a
//! one-line error, never panic, abort or allocate past the memory budget. The first byte
//! picks the reader (even: `.npy`, odd: `.npz`); the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whittle_runtime::npy::{read_npy_bytes, read_npz_bytes};

fuzz_target!(|data: &[u8]| {
    static BUDGET: std::sync::Once = std::sync::Once::new();
    BUDGET.call_once(|| whittle_ir::limits::set_max_memory(1 << 30));
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let err = if mode % 2 == 0 {
        read_npy_bytes(file).err()
    } else {
        read_npz_bytes(file).err()
    };
    if let Some(e) = err {
        assert!(!e.contains('\n'), "a multi-line error: {e:?}");
    }
});
