//! External tensor data: a `TensorProto` whose bytes live in a file next to the model.
//!
//! The file must be a regular file inside the model's directory (no absolute paths, no
//! `..`, no symbolic link leading out), checked before it is opened: opening a FIFO for
//! reading blocks until a writer comes, and a device (`/dev/zero`) never ends. Sizes are
//! bounded before anything is allocated: the tensor's declared dims × dtype size (checked
//! arithmetic, `whittle_ir::limits`), which `length` must equal, which must lie within the
//! file at `offset`, and which must fit the process's memory budget — so a 1 TiB sparse
//! file is refused with a message instead of aborting the process.

use crate::proto::TensorProto;
use crate::FrontendError;
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

fn ext_err(name: &str, why: impl Into<String>) -> FrontendError {
    FrontendError::ExternalData {
        name: name.to_string(),
        why: why.into(),
    }
}

/// Resolves `location` under `base_dir`, refusing absolute paths and paths that leave it.
pub(crate) fn resolve_external(
    name: &str,
    location: &str,
    base_dir: &Path,
) -> Result<PathBuf, FrontendError> {
    let err = |why: String| ext_err(name, why);
    let rel = Path::new(location);
    if location.is_empty() {
        return Err(err("empty location".into()));
    }
    if location.contains('\0') {
        return Err(err("the location contains a NUL byte".into()));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(err(format!(
                    "location '{}' escapes the model's directory",
                    location.escape_debug()
                )))
            }
        }
    }
    let path = base_dir.join(rel);
    // Symbolic links could still point outside: compare canonical paths.
    let canon_base = base_dir.canonicalize().map_err(|e| {
        err(format!(
            "model directory '{}': {e}",
            base_dir.display().to_string().escape_debug()
        ))
    })?;
    let canon = path.canonicalize().map_err(|e| {
        err(format!(
            "'{}': {e}",
            path.display().to_string().escape_debug()
        ))
    })?;
    if !canon.starts_with(&canon_base) {
        return Err(err(format!(
            "location '{}' escapes the model's directory",
            location.escape_debug()
        )));
    }
    Ok(canon)
}

/// What a file that is not a regular file is, for the error message.
fn kind_of(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens `path` for reading without ever blocking: on unix with `O_NONBLOCK` (which makes
/// opening a FIFO return at once; it changes nothing for regular files) and `O_NOFOLLOW`.
/// The caller compares the opened file with what it checked before.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY);
    }
    o.open(path)
}

/// Whether two metadata records describe the same file (same device and inode on unix;
/// elsewhere the same kind and length).
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.is_file() == b.is_file() && a.len() == b.len()
    }
}

/// The `location`, `offset` and `length` keys of a tensor's `external_data`.
fn keys(t: &TensorProto) -> Result<(String, u64, Option<u64>), FrontendError> {
    let name = t.name();
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for kv in &t.external_data {
        let value = kv.value();
        match kv.key() {
            "location" => location = Some(value.to_string()),
            "offset" => {
                offset = value
                    .parse()
                    .map_err(|_| ext_err(name, format!("bad offset '{}'", value.escape_debug())))?
            }
            "length" => {
                length =
                    Some(value.parse::<u64>().map_err(|_| {
                        ext_err(name, format!("bad length '{}'", value.escape_debug()))
                    })?)
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| ext_err(name, "no 'location' key"))?;
    Ok((location, offset, length))
}

/// Reads an external-data tensor's bytes; `need` is the byte count its shape requires
/// (already checked with `limits::byte_size`).
pub(crate) fn read_external(
    t: &TensorProto,
    base_dir: Option<&Path>,
    need: usize,
) -> Result<Vec<u8>, FrontendError> {
    let name = t.name();
    let err = |why: String| ext_err(name, why);
    let (location, offset, length) = keys(t)?;
    let base_dir = base_dir
        .ok_or_else(|| err("the model was loaded from bytes without a base directory".into()))?;
    let path = resolve_external(name, &location, base_dir)?;
    let shown = path.display().to_string().escape_debug().to_string();
    let io = |e: std::io::Error| err(format!("'{shown}': {e}"));
    let need = need as u64;
    if let Some(len) = length {
        if len != need {
            return Err(err(format!(
                "length {len} does not match the {need} bytes the shape needs"
            )));
        }
    }
    // Checked before opening (a canonical path has no symbolic links, so this is the file
    // itself): a FIFO would block the open, a device or directory is not data.
    let before = std::fs::symlink_metadata(&path).map_err(io)?;
    if !before.is_file() {
        return Err(err(format!(
            "'{shown}' is {}, not a regular file",
            kind_of(&before)
        )));
    }
    let end = offset
        .checked_add(need)
        .ok_or_else(|| err("offset overflows".into()))?;
    if end > before.len() {
        return Err(err(format!(
            "'{shown}' has {} bytes, but the tensor needs bytes {offset}..{end}",
            before.len()
        )));
    }
    whittle_ir::limits::check_alloc(need, &format!("its data in '{shown}'")).map_err(err)?;
    // The file could be replaced between the check and the open (by a FIFO, a device, a
    // link). On unix the open cannot block (`O_NONBLOCK`) nor follow a planted link
    // (`O_NOFOLLOW`), and the opened file must be the very file checked above (device and
    // inode), still regular and still long enough. What remains is that opening a device
    // swapped in at that instant may have its driver's open side effects; it is not read.
    // Elsewhere (no `O_NONBLOCK`) a FIFO swapped in between the check and the open could
    // still block the open.
    let mut f = open_nonblocking(&path).map_err(io)?;
    let after = f.metadata().map_err(io)?;
    if !after.is_file() || !same_file(&before, &after) {
        return Err(err(format!(
            "'{shown}' changed while it was opened (now {})",
            if after.is_file() {
                "another file"
            } else {
                kind_of(&after)
            }
        )));
    }
    if end > after.len() {
        return Err(err(format!(
            "'{shown}' has {} bytes, but the tensor needs bytes {offset}..{end}",
            after.len()
        )));
    }
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(need as usize)
        .map_err(|_| err(format!("its {need} bytes could not be allocated")))?;
    // Bounded by `need`: a file that grows meanwhile is not read further, one that shrinks
    // gives a short read, reported below.
    f.take(need).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 != need {
        return Err(err(format!(
            "'{shown}' ended after {} of the tensor's {need} bytes",
            buf.len()
        )));
    }
    Ok(buf)
}
