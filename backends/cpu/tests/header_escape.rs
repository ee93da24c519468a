//! The AOT header with hostile tensor names: names that try to end a comment, start a
//! directive, break a string literal, form a trigraph or carry non-ASCII bytes. The header
//! is compiled with `cc` (warnings as errors, trigraphs on) together with a C program that
//! checks every `*_NAME` macro holds exactly the original bytes, that the status macros
//! keep their values and that no `injected` symbol came from the header.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;
use whittle_cpu::aot::header::{c_comment, c_string, render};
use whittle_cpu::aot::{status, AotArtifact, TensorSpec};
use whittle_ir::DType;

const INPUTS: [&str; 4] = [
    "x */ int injected = 42; void injected_fn(void){} /*",
    "back\\slash \"quote\" ??/ trigraph ??= \\",
    "line1\n#define ENC_OK 99\nline3",
    "\u{e9}1 \u{fc}\u{1}\u{7f}7\t\r",
];
const OUTPUTS: [&str; 2] = [
    "y\r\n#define ENC_ERR_RUN 77 */",
    "*/\n#include <no_such_header.h>\n/*",
];

fn artifact() -> AotArtifact {
    let spec = |name: &str| TensorSpec {
        name: name.into(),
        dtype: DType::F32,
        shape: vec![2, 3],
    };
    AotArtifact {
        object: vec![],
        header: String::new(),
        inputs: INPUTS.iter().map(|n| spec(n)).collect(),
        outputs: OUTPUTS.iter().map(|n| spec(n)).collect(),
        workspace_bytes: 64,
        model_hash: 1,
        kernels: 0,
        image_bytes: 0,
    }
}

#[test]
fn escapes_are_c() {
    assert_eq!(c_string("a\"b\\c"), "a\\\"b\\\\c");
    assert_eq!(c_string("??/"), "\\?\\?/");
    // é is C3 A9: octal escapes take at most three digits, so the "1" stays a "1".
    assert_eq!(c_string("\u{e9}1\n"), "\\303\\2511\\n");
    assert_eq!(c_comment("a*/b/*c"), "a* /b/ *c");
    assert_eq!(c_comment("*/*/"), "* / * /");
    assert_eq!(c_comment("x\n#y\u{e9}"), "x\\x0a#y\\xc3\\xa9");
    for name in INPUTS.iter().chain(&OUTPUTS) {
        let c = c_comment(name);
        assert!(
            !c.contains("*/") && !c.contains("/*") && !c.contains('\n'),
            "{c}"
        );
    }
}

#[test]
fn hostile_names_compile_to_exact_bytes() {
    let h = render("enc", &artifact());
    assert!(!h.contains("\n#define ENC_OK 99"), "{h}");
    let dir = std::env::temp_dir().join(format!("whittle-header-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("enc.h"), &h).unwrap();

    let mut c = String::from(
        "#include <stdio.h>\n#include <string.h>\n#include \"enc.h\"\n\
         /* Clash with anything the header might have defined. */\n\
         int injected = 0;\nvoid injected_fn(void) {}\n\
         static int check(const char* got, size_t got_size, const unsigned char* want,\n\
                          size_t n, const char* what) {\n\
           if (got_size != n + 1 || memcmp(got, want, n) != 0) {\n\
             fprintf(stderr, \"%s: wrong bytes\\n\", what);\n\
             return 1;\n\
           }\n\
           return 0;\n\
         }\n",
    );
    let mut checks = String::new();
    for (kind, names) in [("INPUT", &INPUTS[..]), ("OUTPUT", &OUTPUTS[..])] {
        for (i, name) in names.iter().enumerate() {
            let bytes: Vec<String> = name.bytes().map(|b| format!("0x{b:02x}")).collect();
            let _ = writeln!(
                c,
                "static const unsigned char want_{kind}{i}[] = {{{}}};",
                bytes.join(", ")
            );
            let _ = writeln!(
                checks,
                "  bad |= check(ENC_{kind}{i}_NAME, sizeof(ENC_{kind}{i}_NAME), want_{kind}{i}, \
                 sizeof want_{kind}{i}, \"{kind} {i}\");"
            );
        }
    }
    let _ = write!(
        c,
        "#if ENC_OK != {ok} || ENC_ERR_RUN != {run} || ENC_NUM_INPUTS != 4 || ENC_NUM_OUTPUTS != 2\n\
         #error the header changed a status or count macro\n#endif\n\
         int main(void) {{\n  int bad = injected;\n  injected_fn();\n{checks}  \
         if (!bad) printf(\"names ok\\n\");\n  return bad;\n}}\n",
        ok = status::OK,
        run = status::RUN,
    );
    std::fs::write(dir.join("main.c"), &c).unwrap();
    let exe: PathBuf = dir.join("main");
    let out = Command::new("cc")
        .current_dir(&dir)
        .args([
            "-std=c11",
            "-trigraphs",
            "-Wall",
            "-Wextra",
            "-Werror",
            "main.c",
            "-o",
        ])
        .arg(&exe)
        .output()
        .expect("cc is needed for this test");
    assert!(
        out.status.success(),
        "cc failed:\n{}\nheader:\n{h}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(
        run.status.success() && String::from_utf8_lossy(&run.stdout).contains("names ok"),
        "{}{}\nheader:\n{h}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
