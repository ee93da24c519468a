//! External data that is not an honest regular file: a FIFO (must not hang), a directory, a
//! device behind a symlink, a 1 TiB sparse file (refused by the memory budget, no abort), and
//! dims that overflow. Each is a one-line `ExternalData` error.

mod common;

use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use whittle_frontend::proto::tensor_proto::{DataLocation, DataType};
use whittle_frontend::proto::{StringStringEntryProto, TensorProto};
use whittle_frontend::{load_model_bytes, FrontendError};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whittle_ext_hostile_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model whose one initializer `w` (f32, `dims`) lives in `loc`.
fn model_bytes(loc: &str, dims: Vec<i64>) -> Vec<u8> {
    let kv = |k: &str, v: &str| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    };
    let w = TensorProto {
        name: Some("w".into()),
        dims,
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![kv("location", loc)],
        ..Default::default()
    };
    model(
        13,
        graph(
            vec![node("Identity", "i", &["w"], &["y"], vec![])],
            vec![],
            &["y"],
            vec![w],
        ),
    )
    .encode_to_vec()
}

/// Loads on a thread and fails the test if it takes over 10 s (a hang).
fn load_err(bytes: Vec<u8>, base: &Path) -> String {
    let base = base.to_path_buf();
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_model_bytes(&bytes, Some(&base)).map(|_| ()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("loading hung for {:?}", t0.elapsed()));
    let e = r.expect_err("hostile external data was accepted");
    assert!(matches!(e, FrontendError::ExternalData { .. }), "{e}");
    let msg = e.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    msg
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let d = dir("fifo");
    let p = d.join("w.bin");
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = load_err(model_bytes("w.bin", vec![3]), &d);
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn directories_and_devices_are_refused() {
    let d = dir("dev");
    std::fs::create_dir(d.join("sub")).unwrap();
    let e = load_err(model_bytes("sub", vec![3]), &d);
    assert!(e.contains("not a regular file"), "{e}");
    // A link inside the directory to a device outside it: refused (escapes, or not regular).
    std::os::unix::fs::symlink("/dev/zero", d.join("zero")).unwrap();
    load_err(model_bytes("zero", vec![3]), &d);
}

#[test]
fn a_sparse_terabyte_is_refused_by_the_budget() {
    let d = dir("sparse");
    let f = std::fs::File::create(d.join("w.bin")).unwrap();
    f.set_len(1 << 40).unwrap(); // 1 TiB of holes: the length is honest, memory is not
    drop(f);
    // 2^38 f32 = 1 TiB: more than the default budget (the machine's memory).
    let e = load_err(model_bytes("w.bin", vec![1 << 19, 1 << 19]), &d);
    assert!(e.contains("memory limit"), "{e}");
}

#[test]
fn overflowing_dims_are_refused() {
    let d = dir("dims");
    std::fs::write(d.join("w.bin"), [0u8; 16]).unwrap();
    for dims in [vec![1 << 32, 1 << 32], vec![i64::MAX, 2], vec![1 << 62]] {
        let bytes = model_bytes("w.bin", dims);
        let base = d.clone();
        let e = load_model_bytes(&bytes, Some(&base)).unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }
}
