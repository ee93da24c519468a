//! Writing the CLI's output files safely: never over an input of the same command or over
//! another of its outputs, and never through a symlink planted at the destination. Files
//! are written in a private staging directory created next to the destination and then
//! renamed into place: `rename` replaces whatever name is there (a symlink included)
//! instead of writing through it, and a failed write leaves the destination untouched.

use super::printable;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The directory a file path lives in (`.` for a bare file name).
pub fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The last component of a destination path, or an error when there is none (`..`, `/`).
pub fn file_name<'a>(p: &'a Path, what: &str) -> Result<&'a OsStr, String> {
    p.file_name()
        .ok_or_else(|| format!("{what} '{}' does not name a file", p.display()))
}

/// `p` with its directory resolved (symlinks and `..` in it followed) and its last component
/// kept: the name a write to `p` would replace. Falls back to the absolute path when the
/// directory does not exist.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| abs.clone()),
        _ => abs,
    }
}

/// Whether `a` and `b` are the same file: the same resolved path, or (where both exist)
/// the same device and inode, which also catches hard links and symlinks between them.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if resolved(a) == resolved(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Refuses when two of the named paths are the same file. `inputs` are read by the command,
/// `outputs` written by it: no output may be an input or another output.
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<(), String> {
    for (i, (what, out)) in outputs.iter().enumerate() {
        for (in_what, input) in inputs {
            if same_file(out, input) {
                return Err(format!(
                    "{what} '{}' is the {in_what} '{}': refusing to overwrite it",
                    printable(&out.display().to_string()),
                    printable(&input.display().to_string())
                ));
            }
        }
        for (other_what, other) in &outputs[..i] {
            if same_file(out, other) {
                return Err(format!(
                    "{what} '{}' and {other_what} '{}' are the same file: give them different paths",
                    printable(&out.display().to_string()),
                    printable(&other.display().to_string())
                ));
            }
        }
    }
    Ok(())
}

/// A private directory, created empty next to the destinations, that files are written in
/// before [`Staging::commit`] renames them into place. Removed (with anything left in it)
/// when dropped.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Creates the staging directory inside `parent` (which must exist).
    pub fn new(parent: &Path) -> Result<Staging, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut last_err = None;
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = parent.join(format!(".whittle-tmp-{}-{n}", std::process::id()));
            // `create_dir` fails on any existing name, a symlink included: the directory
            // is new and ours.
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Staging { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(format!(
                        "cannot write in '{}': {e}",
                        printable(&parent.display().to_string())
                    ))
                }
            }
        }
        Err(format!(
            "cannot create a temporary directory in '{}': {}",
            printable(&parent.display().to_string()),
            last_err.map_or_else(String::new, |e| e.to_string())
        ))
    }

    /// Where to write the staged file `name`.
    pub fn path(&self, name: &OsStr) -> PathBuf {
        self.dir.join(name)
    }

    /// The names of the files written in the staging directory so far.
    pub fn entries(&self) -> Result<Vec<OsString>, String> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| e.to_string())?;
        rd.map(|e| e.map(|e| e.file_name()).map_err(|e| e.to_string()))
            .collect()
    }

    /// Moves the staged file `name` to `dest` (in the same directory as the staging one),
    /// replacing a file or symlink there.
    pub fn commit(&self, name: &OsStr, dest: &Path) -> Result<(), String> {
        std::fs::rename(self.path(name), dest).map_err(|e| {
            format!(
                "cannot write '{}': {e}",
                printable(&dest.display().to_string())
            )
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // `remove_dir_all` does not follow symlinks.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes one file at `dest` through a staging directory next to it: `write` is given the
/// temporary path to fill; on success the file is renamed to `dest`.
pub struct StagedFile {
    staging: Staging,
    name: OsString,
    dest: PathBuf,
}

impl StagedFile {
    /// Prepares a write of `dest` (`what` names it in errors, e.g. `-o`).
    pub fn new(dest: &Path, what: &str) -> Result<StagedFile, String> {
        let name = file_name(dest, what)?.to_os_string();
        let staging = Staging::new(parent_dir(dest)).map_err(|e| {
            format!(
                "cannot write '{}' ({e})",
                printable(&dest.display().to_string())
            )
        })?;
        Ok(StagedFile {
            staging,
            name,
            dest: dest.to_path_buf(),
        })
    }

    /// The temporary path to write.
    pub fn tmp(&self) -> PathBuf {
        self.staging.path(&self.name)
    }

    /// Renames the written file into place.
    pub fn commit(self) -> Result<(), String> {
        self.staging.commit(&self.name, &self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_sees_through_dot_dot_and_links() {
        let d = std::env::temp_dir().join(format!("whittle-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), b"a").unwrap();
        assert!(same_file(&d.join("a"), &d.join("sub/../a")));
        assert!(same_file(&d.join("new"), &d.join("sub/../new")));
        assert!(!same_file(&d.join("a"), &d.join("b")));
        std::fs::hard_link(d.join("a"), d.join("hard")).unwrap();
        assert!(same_file(&d.join("a"), &d.join("hard")));
        let s = Staging::new(&d).unwrap();
        std::fs::write(s.path(OsStr::new("x")), b"x").unwrap();
        assert_eq!(s.entries().unwrap(), vec![OsString::from("x")]);
        s.commit(OsStr::new("x"), &d.join("x")).unwrap();
        assert_eq!(std::fs::read(d.join("x")).unwrap(), b"x");
        drop(s);
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert_eq!(left.len(), 4, "staging directory not removed: {left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
