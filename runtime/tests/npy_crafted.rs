//! Crafted `.npy` / `.npz` files: every header lie (an overflowing shape, a shape the data
//! does not match, a valid shape over the memory budget, duplicate keys, deep nesting) is
//! a one-line error before anything is allocated; honest files of every byte order read.

use npyz::WriterBuilder;
use std::path::PathBuf;
use whittle_ir::Tensor;
use whittle_runtime::npy::{read_npy, read_npy_bytes, read_npz_bytes, write_npy};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whittle_npy_crafted_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A version-1 `.npy` preamble and header holding `dict`, padded as numpy pads it.
fn preamble(dict: &str) -> Vec<u8> {
    let mut h = dict.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b
}

fn npy(dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = preamble(dict);
    b.extend(payload);
    b
}

fn f4(shape: &str) -> String {
    format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
}

/// The error for `bytes`, checked to be one line.
fn refused(bytes: &[u8]) -> String {
    let e = read_npy_bytes(bytes).expect_err("a crafted .npy was accepted");
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

#[test]
fn overflowing_shapes_are_refused() {
    // (2^63 + 1) × 2 wraps to 2 elements, which the 8 bytes would satisfy.
    let e = refused(&npy(&f4("(9223372036854775809, 2)"), &[0; 8]));
    assert!(e.contains("more elements than memory can address"), "{e}");
    // The count fits, the bytes do not (2^62 f32).
    let e = refused(&npy(&f4("(4611686018427387904,)"), &[0; 8]));
    assert!(e.contains("more elements than memory can address"), "{e}");
    // A zero dim does not excuse the others from overflowing.
    let e = refused(&npy(&f4("(0, 4294967296, 4294967296)"), &[]));
    assert!(e.contains("more elements than memory can address"), "{e}");
    // A dim beyond u64 is no size at all.
    refused(&npy(&f4("(18446744073709551616,)"), &[0; 8]));
    let e = refused(&npy(&f4("(-1, 2)"), &[0; 8]));
    assert!(e.contains("negative"), "{e}");
    // Only the last of two 'shape' keys would be read by a dict: both are refused.
    let two = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (9223372036854775809, 2), }";
    let e = refused(&npy(two, &[0; 8]));
    assert!(e.contains("repeats 'shape'"), "{e}");
}

#[test]
fn shapes_that_the_payload_does_not_match_are_refused() {
    let e = refused(&npy(&f4("(3,)"), &[0; 8]));
    assert!(
        e.contains("needs 12 bytes of data, the file holds 8"),
        "{e}"
    );
    let e = refused(&npy(&f4("(1,)"), &[0; 8]));
    assert!(e.contains("needs 4 bytes of data, the file holds 8"), "{e}");
    // 4 TB promised, 8 bytes present: refused by the length, nothing allocated.
    let e = refused(&npy(&f4("(1000000, 1000000)"), &[0; 8]));
    assert!(e.contains("needs 4000000000000 bytes"), "{e}");
}

#[test]
fn a_valid_shape_over_the_budget_is_refused() {
    // A sparse file really holding 1 TiB of data for a 1 TiB shape: the length matches,
    // the memory budget (the machine's memory by default) refuses it, with no abort.
    let d = dir("budget");
    let p = d.join("big.npy");
    let head = preamble("{'descr': '|u1', 'fortran_order': False, 'shape': (1024, 1073741824), }");
    std::fs::write(&p, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(head.len() as u64 + (1 << 40)).unwrap();
    drop(f);
    let e = read_npy(&p)
        .expect_err("a 1 TiB array was accepted")
        .to_string();
    assert!(
        e.contains("memory limit") && e.contains("1099511627776"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn malformed_headers_are_one_line_errors() {
    let cases: Vec<Vec<u8>> = vec![
        b"\x93NUMPY\x09\x00\x10\x00".to_vec(),
        b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec(),
        npy(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
            &[0; 8],
        ),
        npy(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        ),
        npy(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        ),
        npy("{'descr': '<f4', 'shape': (2,), }", &[0; 8]),
        npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': 2, }",
            &[0; 8],
        ),
        npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }",
            &[0; 8],
        ),
        npy(
            "{'descr': '<f4',\n 'fortran_order': False, 'shape': (2,) oops",
            &[0; 8],
        ),
        npy(&format!("{}{}", "[".repeat(5000), "]".repeat(5000)), &[]),
        npy("['not', 'a', 'dict']", &[]),
        npy(&format!("{} junk", f4("(2,)")), &[0; 8]),
    ];
    for c in &cases {
        refused(c);
    }
    let e = refused(&cases[2]);
    assert!(e.contains("Fortran"), "{e}");
    let e = refused(&cases[3]);
    assert!(e.contains("structured"), "{e}");
    let e = refused(&cases[4]);
    assert!(e.contains("unsupported array dtype '<c8'"), "{e}");
    let e = refused(&cases[9]);
    assert!(e.contains("nesting too deep"), "{e}");
    // Every prefix of a good file is an error, never a panic.
    let good = npy(&f4("(2,)"), &[0; 8]);
    for cut in 0..good.len() {
        refused(&good[..cut]);
    }
}

#[test]
fn honest_files_read_in_either_byte_order() {
    let le = npy(&f4("(2,)"), &[0, 0, 128, 63, 0, 0, 0, 64]);
    assert_eq!(
        read_npy_bytes(&le).unwrap().as_slice::<f32>().unwrap(),
        &[1.0, 2.0]
    );
    let be = npy(
        "{'descr': '>i2', 'fortran_order': False, 'shape': (1L, 2L), }",
        &[0x01, 0x02, 0xff, 0xfe],
    );
    let t = read_npy_bytes(&be).unwrap();
    assert_eq!(t.shape(), &[1, 2]);
    assert_eq!(t.to_i64_vec(), vec![0x0102, -2]);
    let scalar = npy(
        "{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": ()}",
        &[1],
    );
    assert_eq!(read_npy_bytes(&scalar).unwrap(), Tensor::scalar(true));
    let empty = npy(&f4("(0, 3)"), &[]);
    assert_eq!(read_npy_bytes(&empty).unwrap().shape(), &[0, 3]);
}

#[test]
fn a_fifo_is_read_as_a_stream_and_bounded_by_its_header() {
    let d = dir("fifo");
    let good = npy(&f4("(2,)"), &[0, 0, 128, 63, 0, 0, 0, 64]);
    for (payload, ok) in [
        (good.clone(), true),
        ([good.as_slice(), &[7u8; 3]].concat(), false),
    ] {
        let p = d.join("x.npy");
        let _ = std::fs::remove_file(&p);
        let st = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        let w = {
            let p = p.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                let _ = f.write_all(&payload);
            })
        };
        let r = read_npy(&p);
        w.join().unwrap();
        match r {
            Ok(t) => {
                assert!(ok);
                assert_eq!(t.as_slice::<f32>().unwrap(), &[1.0, 2.0]);
            }
            Err(e) => {
                assert!(!ok, "{e}");
                assert!(e.to_string().contains("holds at least 9"), "{e}");
            }
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn npz_archives_are_checked_entry_by_entry() {
    let d = dir("npz");
    let p = d.join("a.npz");
    {
        let f = std::fs::File::create(&p).unwrap();
        let mut npz = npyz::npz::NpzWriter::new(f);
        let mut w = npz
            .array("x", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[2])
            .begin_nd()
            .unwrap();
        w.push(&1.5f64).unwrap();
        w.push(&-2.0f64).unwrap();
        w.finish().unwrap();
    }
    let bytes = std::fs::read(&p).unwrap();
    let got = read_npz_bytes(&bytes).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.to_f64_vec(), vec![1.5, -2.0]);
    // Junk and every truncation are one-line errors.
    for cut in 0..bytes.len() {
        if let Err(e) = read_npz_bytes(&bytes[..cut]) {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
    // The round trip through write_npy still holds for a file on disk.
    let t = Tensor::from_vec(vec![2, 2], vec![1u16, 2, 3, 65535]);
    write_npy(&d.join("t.npy"), &t).unwrap();
    assert_eq!(read_npy(&d.join("t.npy")).unwrap(), t);
    std::fs::remove_dir_all(&d).ok();
}

/// Files numpy 2.4 wrote (`np.save`, `np.savez`, `np.savez_compressed`): the fuzz seeds,
/// whose first byte is the fuzz target's mode byte.
#[test]
fn numpy_written_files_read() {
    let seed = |b: &'static [u8]| &b[1..];
    let t = read_npy_bytes(seed(include_bytes!("../../fuzz/seeds/npy_reader/f32.npy"))).unwrap();
    assert_eq!(
        t,
        Tensor::from_vec(vec![2, 3], vec![0f32, 1., 2., 3., 4., 5.])
    );
    let t = read_npy_bytes(seed(include_bytes!(
        "../../fuzz/seeds/npy_reader/be_i2.npy"
    )))
    .unwrap();
    assert_eq!(t, Tensor::from_vec(vec![1, 2], vec![1i16, -2]));
    let t = read_npy_bytes(seed(include_bytes!("../../fuzz/seeds/npy_reader/i64s.npy"))).unwrap();
    assert_eq!(t, Tensor::scalar(7i64));
    let t = read_npy_bytes(seed(include_bytes!(
        "../../fuzz/seeds/npy_reader/u8empty.npy"
    )))
    .unwrap();
    assert_eq!(t.shape(), &[0, 3]);
    let z = read_npz_bytes(seed(include_bytes!(
        "../../fuzz/seeds/npy_reader/compressed.npz"
    )))
    .unwrap();
    let names: Vec<&str> = z.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(z[0].1, Tensor::from_vec(vec![1, 2], vec![1i16, -2]));
    assert_eq!(z[1].1, Tensor::scalar(7i64));
    let z = read_npz_bytes(seed(include_bytes!(
        "../../fuzz/seeds/npy_reader/plain.npz"
    )))
    .unwrap();
    assert_eq!(z[1].1, Tensor::from_vec(vec![3], vec![true, false, true]));
}
