//! The Cranelift module the lowering emits one function per kernel into: a JIT module
//! (native, non-PIC ISA tuned for speed) whose finalized code the executable keeps, or an
//! object module (PIC ISA, same host features) for `whittle compile` (`aot`).
//! With [`set_emit_clif`] (or `WHITTLE_EMIT_CLIF=DIR`) every generated function's Cranelift
//! IR is also written to `DIR/NNNN_<kernel>.clif` (`whittle run/bench --emit-clif DIR`).

use cranelift_codegen::ir::{types, AbiParam, Function, Signature, UserFuncName};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Where generated functions' CLIF text goes, when set ([`set_emit_clif`]).
static CLIF_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Numbers the dumped functions (names repeat across plans).
static CLIF_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Makes every kernel compiled from now on write its Cranelift IR to `dir` (created if
/// missing), or stops it (`None`). Process-wide, like the JIT's code cache.
pub fn set_emit_clif(dir: Option<PathBuf>) {
    if let Ok(mut d) = CLIF_DIR.lock() {
        *d = dir;
    }
}

/// The CLIF dump directory: [`set_emit_clif`]'s, else `WHITTLE_EMIT_CLIF`.
fn clif_dir() -> Option<PathBuf> {
    let set = CLIF_DIR.lock().ok().and_then(|d| d.clone());
    set.or_else(|| {
        std::env::var_os("WHITTLE_EMIT_CLIF")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// `name` with every character outside `[A-Za-z0-9_.-]` replaced by `_` (a file name).
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes one function's CLIF text to `dir/NNNN_<name>.clif`.
fn dump_clif(dir: &Path, name: &str, func: &Function) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--emit-clif {}: {e}", dir.display()))?;
    let n = CLIF_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{n:04}_{}.clif", file_stem(name)));
    std::fs::write(&path, format!("; kernel {name}\n{}", func.display()))
        .map_err(|e| format!("--emit-clif {}: {e}", path.display()))
}

pub use whittle_exec::KernelFn;

/// Where the kernels go: executable memory now, or an object file.
enum Backing {
    // Both boxed: the modules are hundreds of bytes and differ in size.
    Jit(Box<JITModule>),
    Object(Box<ObjectModule>),
}

impl Backing {
    fn module(&mut self) -> &mut dyn Module {
        match self {
            Backing::Jit(m) => m,
            Backing::Object(m) => m,
        }
    }

    fn isa(&self) -> &dyn cranelift_codegen::isa::TargetIsa {
        match self {
            Backing::Jit(m) => m.isa(),
            Backing::Object(m) => m.isa(),
        }
    }
}

/// A module under construction (JIT or object), plus what it knows about the host.
pub struct Jit {
    module: Backing,
    ctx: Context,
    fctx: FunctionBuilderContext,
    /// Whether the ISA has FMA (so `fma` lowers to `vfmadd`, not a libcall per lane).
    pub has_fma: bool,
    pending: Vec<FuncId>,
    /// Where to write each function's CLIF text (see [`set_emit_clif`]).
    clif_dir: Option<PathBuf>,
}

/// Finalized machine code. Dropping it frees the code, so every function pointer taken from
/// it must be dropped first (the executable holds both, code last).
pub struct JitCode {
    module: Option<JITModule>,
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the owner (the executable) drops its kernel pointers before the code.
            unsafe { m.free_memory() }
        }
    }
}

// SAFETY: the finalized module is immutable executable memory; nothing in it is touched
// after `finalize`, and the code it holds is reentrant (kernels keep no state).
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

/// Builds the host ISA: `cranelift-native` detection, `opt_level=speed`, non-PIC (JIT).
pub fn native_isa() -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    for (k, v) in [
        ("opt_level", "speed"),
        ("is_pic", "false"),
        ("use_colocated_libcalls", "false"),
    ] {
        flags
            .set(k, v)
            .map_err(|e| format!("cranelift setting {k}={v}: {e}"))?;
    }
    let isa_builder = cranelift_native::builder().map_err(|e| format!("host ISA: {e}"))?;
    isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| format!("host ISA: {e}"))
}

/// Whether the host CPU has FMA, as the standard library detects it.
pub fn host_has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

impl Jit {
    pub fn new() -> Result<Jit, String> {
        let isa = native_isa()?;
        let has_fma = isa.has_native_fma();
        if host_has_fma() && !has_fma {
            return Err("the host has FMA but the Cranelift ISA flags do not enable it".into());
        }
        let builder = JITBuilder::with_isa(isa, default_libcall_names());
        Ok(Jit::over(
            Backing::Jit(Box::new(JITModule::new(builder))),
            has_fma,
        ))
    }

    /// An empty module over `module`.
    fn over(mut module: Backing, has_fma: bool) -> Jit {
        let ctx = module.module().make_context();
        Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            has_fma,
            pending: Vec::new(),
            clif_dir: clif_dir(),
        }
    }

    /// A module that emits the kernels into an object file named `name` (PIC ISA for
    /// `cpu`, as `crate::aot::object::pic_isa`); finish it with [`Jit::into_object`].
    pub fn new_object(name: &str, cpu: crate::aot::CpuTarget) -> Result<Jit, String> {
        let isa = crate::aot::object::pic_isa(cpu)?;
        let has_fma = isa.has_native_fma();
        if !has_fma && (cpu != crate::aot::CpuTarget::Native || host_has_fma()) {
            return Err(format!(
                "the Cranelift ISA flags for {cpu:?} do not enable FMA"
            ));
        }
        let builder = ObjectBuilder::new(isa, format!("{name}.o"), default_libcall_names())
            .map_err(|e| format!("object builder: {e}"))?;
        Ok(Jit::over(
            Backing::Object(Box::new(ObjectModule::new(builder))),
            has_fma,
        ))
    }

    /// Number of kernels defined so far.
    pub fn kernel_count(&self) -> usize {
        self.pending.len()
    }

    /// The object module and its kernels' ids in definition order (an object-backed
    /// module, [`Jit::new_object`]).
    pub fn into_object(self) -> Result<(ObjectModule, Vec<FuncId>), String> {
        match self.module {
            Backing::Object(m) => Ok((*m, self.pending)),
            Backing::Jit(_) => Err("into_object on a JIT module".into()),
        }
    }

    /// The kernel signature `fn(args: *const *mut f32)` in the host calling convention.
    fn kernel_signature(&self) -> Signature {
        let mut sig = Signature::new(CallConv::triple_default(self.module.isa().triple()));
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    /// Declares and defines a kernel named `name`; `body` fills the function through a
    /// builder whose entry block has the `args` pointer as its one parameter. Returns an id
    /// for [`Jit::finish`].
    pub fn define_kernel(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut FunctionBuilder, cranelift_codegen::ir::Value, bool),
    ) -> Result<usize, String> {
        let sig = self.kernel_signature();
        let id = self
            .module
            .module()
            .declare_function(name, Linkage::Local, &sig)
            .map_err(|e| format!("declare {name}: {e}"))?;
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let args = b.block_params(entry)[0];
            body(&mut b, args, self.has_fma);
            b.seal_all_blocks();
            b.finalize(self.module.isa().frontend_config());
        }
        let dumped = match &self.clif_dir {
            Some(dir) => dump_clif(dir, name, &self.ctx.func),
            None => Ok(()),
        };
        let res = self.module.module().define_function(id, &mut self.ctx);
        self.module.module().clear_context(&mut self.ctx);
        res.map_err(|e| format!("define {name}: {e:?}"))?;
        dumped?;
        self.pending.push(id);
        Ok(self.pending.len() - 1)
    }

    /// Finalizes all kernels; returns their entry points in definition order and the code.
    pub fn finish(self) -> Result<(Vec<KernelFn>, JitCode), String> {
        let Backing::Jit(mut module) = self.module else {
            return Err("finish on an object module (use into_object)".into());
        };
        module
            .finalize_definitions()
            .map_err(|e| format!("finalize: {e}"))?;
        let fns = self
            .pending
            .iter()
            .map(|&id| {
                let p = module.get_finalized_function(id);
                // SAFETY: every pending function was defined with the kernel signature.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
            })
            .collect();
        Ok((
            fns,
            JitCode {
                module: Some(*module),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::InstBuilder;

    #[test]
    fn clif_dump_writes_one_file_per_function() {
        let dir = std::env::temp_dir().join(format!("whittle-clif-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut jit = Jit::new().expect("jit");
        jit.clif_dir = Some(dir.clone());
        jit.define_kernel("k/one:two", |b, _args, _| {
            b.ins().return_(&[]);
        })
        .expect("define");
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_string_lossy().to_string();
        assert!(name.ends_with("_k_one_two.clif"), "{name}");
        let text = std::fs::read_to_string(&files[0]).expect("read");
        assert!(text.starts_with("; kernel k/one:two\n"), "{text}");
        assert!(
            text.contains("function") && text.contains("return"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("a/b c.d-e_f"), "a_b_c.d-e_f");
    }

    #[test]
    fn fma_flag_follows_the_host() {
        let jit = Jit::new().expect("jit");
        assert_eq!(jit.has_fma, host_has_fma());
    }
}
