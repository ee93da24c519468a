//! External data bounds: `offset` / `length` against the shape and the file, a link to a
//! FIFO inside the model directory, and the tensor named in every one-line error.

mod common;

use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::time::Duration;
use whittle_frontend::proto::tensor_proto::{DataLocation, DataType};
use whittle_frontend::proto::{StringStringEntryProto, TensorProto};
use whittle_frontend::{load_model_bytes, FrontendError};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whittle_ext_bounds_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model whose initializer `weights` (f32 `dims`) has these `external_data` entries.
fn model_bytes(dims: Vec<i64>, keys: &[(&str, &str)]) -> Vec<u8> {
    let w = TensorProto {
        name: Some("weights".into()),
        dims,
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: keys
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.to_string()),
                value: Some(v.to_string()),
            })
            .collect(),
        ..Default::default()
    };
    let g = graph(
        vec![node("Identity", "i", &["weights"], &["y"], vec![])],
        vec![],
        &["y"],
        vec![w],
    );
    model(13, g).encode_to_vec()
}

/// The load error (on a thread: a hang fails the test after 10 s), one line, naming the
/// tensor.
fn refused(bytes: Vec<u8>, base: &Path) -> String {
    let base = base.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_model_bytes(&bytes, Some(&base)).map(|_| ()));
    });
    let e = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("loading hung")
        .expect_err("bad external data was accepted");
    assert!(matches!(e, FrontendError::ExternalData { .. }), "{e}");
    let msg = e.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(msg.contains("tensor 'weights'"), "{msg}");
    msg
}

#[test]
fn offsets_and_lengths_must_fit_the_shape_and_the_file() {
    let d = dir("bounds");
    std::fs::write(d.join("w.bin"), [0u8; 16]).unwrap();
    // 3 f32 = 12 bytes: at offset 4 they fit, at offset 8 they run past the end.
    let ok = model_bytes(
        vec![3],
        &[("location", "w.bin"), ("offset", "4"), ("length", "12")],
    );
    load_model_bytes(&ok, Some(&d)).expect("in bounds");
    let e = refused(
        model_bytes(vec![3], &[("location", "w.bin"), ("offset", "8")]),
        &d,
    );
    assert!(e.contains("has 16 bytes") && e.contains("8..20"), "{e}");
    let e = refused(
        model_bytes(vec![3], &[("location", "w.bin"), ("length", "16")]),
        &d,
    );
    assert!(e.contains("length 16"), "{e}");
    let max = u64::MAX.to_string();
    let e = refused(
        model_bytes(vec![3], &[("location", "w.bin"), ("offset", &max)]),
        &d,
    );
    assert!(e.contains("offset overflows"), "{e}");
    let e = refused(
        model_bytes(vec![3], &[("location", "w.bin"), ("offset", "-1")]),
        &d,
    );
    assert!(e.contains("bad offset"), "{e}");
    let e = refused(model_bytes(vec![3], &[("offset", "0")]), &d);
    assert!(e.contains("no 'location'"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_link_to_a_fifo_inside_the_directory_is_refused_without_hanging() {
    let d = dir("fifo_link");
    let st = std::process::Command::new("mkfifo")
        .arg(d.join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink("pipe", d.join("w.bin")).unwrap();
    let e = refused(model_bytes(vec![3], &[("location", "w.bin")]), &d);
    assert!(e.contains("is a FIFO, not a regular file"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_budget_error_names_the_tensor() {
    let d = dir("budget");
    let f = std::fs::File::create(d.join("w.bin")).unwrap();
    f.set_len(1 << 40).unwrap(); // sparse: no disk used
    drop(f);
    let e = refused(model_bytes(vec![1 << 38], &[("location", "w.bin")]), &d);
    assert!(
        e.contains("1099511627776 bytes") && e.contains("memory limit"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).ok();
}
