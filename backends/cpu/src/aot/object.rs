//! Object-file emission with `cranelift-object` (PIC ISA for the host): into the module
//! that already holds the generated kernels go the plan image as a local read-only data
//! symbol, a local table of the kernels' addresses, and the exported entry point
//! `int32_t PREFIX_run(const void* const* inputs, void* const* outputs, void* workspace,
//! size_t workspace_size)`, which returns `WORKSPACE_TOO_SMALL` when `workspace_size` is
//! below the plan's workspace and otherwise calls `whittle_rt_run(image, image_len,
//! kernels, kernel_count, inputs, outputs, workspace, workspace_size)`.

use super::{status, RT_RUN_SYMBOL};
use cranelift_codegen::ir::{condcodes::IntCC, types, AbiParam, Function, Signature};
use cranelift_codegen::ir::{InstBuilder, UserFuncName};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use cranelift_object::ObjectModule;

/// The ISA for `cpu` (the host's features, or a psABI level) with position-independent
/// code (objects get linked into PIE programs).
pub fn pic_isa(cpu: super::CpuTarget) -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    for (k, v) in [("opt_level", "speed"), ("is_pic", "true")] {
        flags
            .set(k, v)
            .map_err(|e| format!("cranelift setting {k}={v}: {e}"))?;
    }
    let native = cpu == super::CpuTarget::Native;
    let mut isa =
        cranelift_native::builder_with_options(native).map_err(|e| format!("host ISA: {e}"))?;
    for f in cpu.isa_flags() {
        isa.enable(f)
            .map_err(|e| format!("cranelift ISA flag {f}: {e}"))?;
    }
    isa.finish(settings::Flags::new(flags))
        .map_err(|e| format!("host ISA: {e}"))
}

/// Adds image, kernel table and entry point for model `name` to `module` (whose kernels are
/// `kernels`, in plan order) and emits the object; `workspace` is the minimum workspace.
pub fn emit(
    mut module: ObjectModule,
    name: &str,
    image: &[u8],
    kernels: &[FuncId],
    workspace: usize,
) -> Result<Vec<u8>, String> {
    let ptr = module.target_config().pointer_type();
    let cc = CallConv::triple_default(module.isa().triple());

    // The plan image, read-only, 64-byte aligned (its weight blobs are, relative to it).
    let blob = module
        .declare_data(&format!("{name}_plan_image"), Linkage::Local, false, false)
        .map_err(|e| format!("declare image: {e}"))?;
    let mut desc = DataDescription::new();
    desc.define(image.to_vec().into_boxed_slice());
    desc.set_align(whittle_exec::store::BLOB_ALIGN as u64);
    module
        .define_data(blob, &desc)
        .map_err(|e| format!("define image: {e}"))?;

    // The kernel table: one code address per kernel (relocated at link time).
    let table = module
        .declare_data(&format!("{name}_kernels"), Linkage::Local, false, false)
        .map_err(|e| format!("declare kernel table: {e}"))?;
    let width = ptr.bytes() as usize;
    let mut desc = DataDescription::new();
    desc.define(vec![0u8; width * kernels.len().max(1)].into_boxed_slice());
    desc.set_align(width as u64);
    for (i, &k) in kernels.iter().enumerate() {
        let f = module.declare_func_in_data(k, &mut desc);
        desc.write_function_addr((i * width) as u32, f);
    }
    module
        .define_data(table, &desc)
        .map_err(|e| format!("define kernel table: {e}"))?;

    // int32_t whittle_rt_run(const uint8_t* image, size_t image_len,
    //                        const void* const* kernels, size_t kernel_count,
    //                        const void* const* inputs, void* const* outputs,
    //                        void* workspace, size_t workspace_size)
    let mut rt_sig = Signature::new(cc);
    rt_sig.params.extend([AbiParam::new(ptr); 8]);
    rt_sig.returns.push(AbiParam::new(types::I32));
    let rt_run = module
        .declare_function(RT_RUN_SYMBOL, Linkage::Import, &rt_sig)
        .map_err(|e| format!("declare {RT_RUN_SYMBOL}: {e}"))?;

    let mut sig = Signature::new(cc);
    sig.params.extend([AbiParam::new(ptr); 4]);
    sig.returns.push(AbiParam::new(types::I32));
    let entry_name = format!("{name}_run");
    let entry = module
        .declare_function(&entry_name, Linkage::Export, &sig)
        .map_err(|e| format!("declare {entry_name}: {e}"))?;

    let mut ctx = Context::new();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, entry.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let start = b.create_block();
        let small = b.create_block();
        let call = b.create_block();
        b.append_block_params_for_function_params(start);
        b.switch_to_block(start);
        let p = b.block_params(start).to_vec();
        let (inputs, outputs, ws, ws_size) = (p[0], p[1], p[2], p[3]);
        let need = b.ins().iconst(ptr, workspace as i64);
        let too_small = b.ins().icmp(IntCC::UnsignedLessThan, ws_size, need);
        b.ins().brif(too_small, small, &[], call, &[]);

        b.switch_to_block(small);
        let code = b
            .ins()
            .iconst(types::I32, i64::from(status::WORKSPACE_TOO_SMALL));
        b.ins().return_(&[code]);

        b.switch_to_block(call);
        let gv = module.declare_data_in_func(blob, b.func);
        let image_ptr = b.ins().symbol_value(ptr, gv);
        let image_len = b.ins().iconst(ptr, image.len() as i64);
        let tv = module.declare_data_in_func(table, b.func);
        let table_ptr = b.ins().symbol_value(ptr, tv);
        let count = b.ins().iconst(ptr, kernels.len() as i64);
        let fref = module.declare_func_in_func(rt_run, b.func);
        let args = [
            image_ptr, image_len, table_ptr, count, inputs, outputs, ws, ws_size,
        ];
        let inst = b.ins().call(fref, &args);
        let ret = b.inst_results(inst)[0];
        b.ins().return_(&[ret]);
        b.seal_all_blocks();
        b.finalize(module.isa().frontend_config());
    }
    module
        .define_function(entry, &mut ctx)
        .map_err(|e| format!("define {entry_name}: {e:?}"))?;
    let product = module.finish();
    product.emit().map_err(|e| format!("emit object: {e}"))
}
