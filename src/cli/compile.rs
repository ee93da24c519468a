//! `whittle compile`: ahead-of-time compilation of a model into a relocatable object file
//! plus a C header (`whittle_cpu::aot`), and the command line that links it.

use super::files::{check_distinct, StagedFile};
use super::{parse_shapes, pipeline, printable, CliResult};
use std::path::{Path, PathBuf};
use whittle::cpu::aot::{self, AotOptions};
use whittle::passes::PassContext;

/// What `compile` was asked to do.
pub struct CompileArgs<'a> {
    pub model: &'a Path,
    pub output: &'a Path,
    pub header: Option<&'a Path>,
    pub name: Option<&'a str>,
    pub shapes: &'a [String],
    pub passes: &'a str,
    pub cpu: aot::CpuTarget,
}

/// The symbol prefix derived from a file name: non-identifier characters become `_`.
fn default_name(output: &Path) -> String {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

/// Whether `s` is a C identifier, `[A-Za-z_][A-Za-z0-9_]*` (the symbol prefix).
fn c_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where `libwhittle_rt.a` is expected: next to the running `whittle` binary (cargo puts
/// both in `target/<profile>/`).
fn runtime_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

pub fn run(a: CompileArgs) -> CliResult {
    if let Some(n) = a.name {
        if !c_identifier(n) {
            return Err(format!(
                "--name '{}' is not a C identifier ([A-Za-z_][A-Za-z0-9_]*)",
                printable(n)
            ));
        }
    }
    let header = a
        .header
        .map_or_else(|| a.output.with_extension("h"), Path::to_path_buf);
    check_distinct(
        &[("input model", a.model)],
        &[("-o", a.output), ("--header", &header)],
    )?;
    let shapes = parse_shapes(a.shapes)?;
    let mut m = super::load_model(a.model)?;
    let mut cx = PassContext {
        verify: true,
        input_shapes: shapes.clone(),
        ..Default::default()
    };
    pipeline(a.passes)?
        .run(&mut m.graph, &mut cx)
        .map_err(|e| e.to_string())?;
    let name = a
        .name
        .map_or_else(|| default_name(a.output), str::to_string);
    let opts = AotOptions {
        name: name.clone(),
        input_shapes: shapes,
        cpu: a.cpu,
    };
    let art = aot::compile(&m.graph, &opts).map_err(|e| e.to_string())?;
    // Both files are written next to their destinations and renamed into place once both
    // are complete: no half-written pair, and no write through a symlink.
    let write = |dest: &Path, what: &str, bytes: &[u8]| -> Result<StagedFile, String> {
        let f = StagedFile::new(dest, what)?;
        std::fs::write(f.tmp(), bytes).map_err(|e| {
            format!(
                "cannot write {}: {e}",
                printable(&dest.display().to_string())
            )
        })?;
        Ok(f)
    };
    let object = write(a.output, "-o", &art.object)?;
    let header_file = write(&header, "--header", art.header.as_bytes())?;
    object.commit()?;
    header_file.commit()?;
    println!(
        "wrote {} and {}: entry {name}_run, {} input(s), {} output(s), {} generated kernel(s), \
         plan image {:.1} MB, workspace {} bytes, model hash {:016x}",
        a.output.display(),
        header.display(),
        art.inputs.len(),
        art.outputs.len(),
        art.kernels,
        art.image_bytes as f64 / 1e6,
        art.workspace_bytes,
        art.model_hash
    );
    let dir = runtime_dir().map_or_else(|| "<dir>".into(), |d| d.display().to_string());
    println!(
        "link: cc app.c {} -L{dir} -lwhittle_rt -lm -lpthread -ldl -static-libgcc -Wl,--gc-sections",
        a.output.display()
    );
    if !runtime_dir().is_some_and(|d| d.join("libwhittle_rt.a").exists()) {
        println!(
            "(libwhittle_rt.a is not in {dir} yet: build it with `cargo build -p whittle-rt`)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_name;
    use std::path::Path;

    #[test]
    fn names_must_be_c_identifiers() {
        for ok in ["enc", "_x1", "A_b9"] {
            assert!(super::c_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "a\nb", "a-b", "é", "a b"] {
            assert!(!super::c_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_come_from_the_output_file() {
        assert_eq!(default_name(Path::new("out/model.o")), "model");
        assert_eq!(default_name(Path::new("my-net.v2.o")), "my_net_v2");
        assert_eq!(default_name(Path::new("3d.o")), "_3d");
    }
}
