//! The lane emitter (`Em`): f32 arithmetic on either scalar `f32` or `f32x4` Cranelift
//! values, and the inline polynomial exp, tanh, sigmoid and erf built from it (no libm
//! calls; max relative error ≤ 2e-7 against f64, see `tests/math_accuracy.rs`).

// Polynomial coefficients are kept as published (Cephes, Juffa), not shortest-round-trip.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// Emits f32 math at one lane type (`F32` or `F32X4`).
pub struct Em<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    pub fma: bool,
}

impl<'a, 'b> Em<'a, 'b> {
    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    fn int_ty(&self) -> Type {
        if self.vector() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A constant at the lane type.
    pub fn c(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        if self.vector() {
            self.b.ins().splat(self.ty, s)
        } else {
            s
        }
    }

    fn ci(&mut self, v: i32) -> Value {
        let s = self.b.ins().iconst(types::I32, v as i64);
        if self.vector() {
            self.b.ins().splat(types::I32X4, s)
        } else {
            s
        }
    }

    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    /// `min`/`max` propagate NaN (numpy `minimum`/`maximum`).
    pub fn min(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmin(a, b)
    }
    pub fn max(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmax(a, b)
    }

    /// `a·b + c`, fused when the ISA has FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `a·b + c` with a constant `b` and `c`.
    fn fma_k(&mut self, a: Value, b: f32, c: f32) -> Value {
        let (b, c) = (self.c(b), self.c(c));
        self.fma(a, b, c)
    }

    fn bits(&mut self, x: Value) -> Value {
        let t = self.int_ty();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }

    fn float_of_bits(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    /// `x` with the sign bit of `s`.
    fn copysign(&mut self, x: Value, s: Value) -> Value {
        let (xb, sb) = (self.bits(x), self.bits(s));
        let sign = self.ci(i32::MIN);
        let mag = self.ci(i32::MAX);
        let sb = self.b.ins().band(sb, sign);
        let xb = self.b.ins().band(xb, mag);
        let r = self.b.ins().bor(xb, sb);
        self.float_of_bits(r)
    }

    pub fn abs(&mut self, x: Value) -> Value {
        self.b.ins().fabs(x)
    }

    /// `cond(a, b) ? t : f` for a float comparison.
    pub fn select(&mut self, cc: FloatCC, a: Value, b: Value, t: Value, f: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        if self.vector() {
            let m = self.b.ins().bitcast(self.ty, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, t, f)
        } else {
            self.b.ins().select(m, t, f)
        }
    }

    /// `e^x`: Cody–Waite reduction `x = n·ln2 + r`, a degree-7 polynomial (Cephes `expf`)
    /// and `2^n` built in two halves, so that results down to subnormals and up to `inf`
    /// come out right. NaN propagates through the clamps.
    pub fn exp(&mut self, x: Value) -> Value {
        let lo = self.c(-104.0);
        let hi = self.c(88.8);
        let x = self.max(x, lo);
        let x = self.min(x, hi);
        // Round x·log2(e) to an integer n by adding 1.5·2^23: n sits in the low mantissa bits.
        let magic = 12_582_912.0f32;
        let t = self.fma_k(x, std::f32::consts::LOG2_E, magic);
        let mk = self.c(magic);
        let n = self.sub(t, mk);
        let c1 = self.c(-0.693_359_4);
        let r = self.fma(n, c1, x);
        let c2 = self.c(2.121_944_4e-4);
        let r = self.fma(n, c2, r);
        let mut p = self.c(1.987_569_1e-4);
        for k in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5.000_000_1e-1,
        ] {
            let kc = self.c(k);
            p = self.fma(p, r, kc);
        }
        let r2 = self.mul(r, r);
        let y = self.fma(p, r2, r);
        let one = self.c(1.0);
        let y = self.add(y, one);
        // n as an integer, split n = h + (n - h) so that each 2^part is a normal float.
        let tb = self.bits(t);
        let off = self.ci(0x4B40_0000);
        let ni = self.b.ins().isub(tb, off);
        let h = self.b.ins().sshr_imm_s(ni, 1);
        let h2 = self.b.ins().isub(ni, h);
        let bias = self.ci(127);
        let s1 = self.b.ins().iadd(h, bias);
        let s1 = self.b.ins().ishl_imm_s(s1, 23);
        let s2 = self.b.ins().iadd(h2, bias);
        let s2 = self.b.ins().ishl_imm_s(s2, 23);
        let (s1, s2) = (self.float_of_bits(s1), self.float_of_bits(s2));
        let y = self.mul(y, s1);
        self.mul(y, s2)
    }

    /// `1 / (1 + e^-x)`, as `e/(1+e)` with `e = e^-|x|` for negative x so that tiny
    /// results (down to subnormals) do not flush to zero through an overflowing `e^-x`.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.abs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(na);
        let one = self.c(1.0);
        let d = self.add(one, e);
        let pos = self.div(one, d);
        let neg = self.div(e, d);
        let zero = self.c(0.0);
        self.select(FloatCC::LessThan, x, zero, neg, pos)
    }

    /// `tanh`: an odd polynomial (Cephes `tanhf`) below |x| = 0.625, `1 - 2/(e^{2|x|}+1)`
    /// with the sign of x above.
    pub fn tanh(&mut self, x: Value) -> Value {
        let a = self.abs(x);
        let z = self.mul(x, x);
        let mut p = self.c(-5.704_988_7e-3);
        for k in [
            2.063_908_9e-2,
            -5.373_971_6e-2,
            1.333_144_2e-1,
            -3.333_328_2e-1,
        ] {
            let kc = self.c(k);
            p = self.fma(p, z, kc);
        }
        let pz = self.mul(p, z);
        let small = self.fma(pz, x, x);
        let two = self.c(2.0);
        let a2 = self.mul(a, two);
        let e = self.exp(a2);
        let one = self.c(1.0);
        let d = self.add(e, one);
        let q = self.div(two, d);
        let big = self.sub(one, q);
        let big = self.copysign(big, x);
        let th = self.c(0.625);
        self.select(FloatCC::LessThan, a, th, small, big)
    }

    /// The two halves of erf: for |x| ≤ 0.9277 `x·P(x²)`, above it `e = exp(R(|x|))` with
    /// `erf(|x|) = 1 - e`. Returns (small-branch value, e, |x|).
    fn erf_parts(&mut self, x: Value) -> (Value, Value, Value) {
        let t = self.abs(x);
        let s = self.mul(x, x);
        let r = self.fma_k(t, -1.728_534_7e-5, 3.831_971_3e-4);
        let u = self.fma_k(t, -3.883_964_4e-3, 2.425_462_2e-2);
        let mut r = self.fma(r, s, u);
        for k in [-1.067_778_8e-1, -6.348_467e-1, -1.287_175_1e-1] {
            let kc = self.c(k);
            r = self.fma(r, t, kc);
        }
        let nt = self.b.ins().fneg(t);
        let r = self.fma(r, t, nt);
        let e = self.exp(r);
        let mut q = self.c(-5.967_617e-4);
        for k in [
            4.991_194_2e-3,
            -2.676_813_5e-2,
            1.128_199_3e-1,
            -3.761_253_4e-1,
            1.283_791_7e-1,
        ] {
            let kc = self.c(k);
            q = self.fma(q, s, kc);
        }
        let small = self.fma(q, x, x);
        (small, e, t)
    }

    /// `erf(x)`.
    pub fn erf(&mut self, x: Value) -> Value {
        let (small, e, t) = self.erf_parts(x);
        let one = self.c(1.0);
        let big = self.sub(one, e);
        let big = self.copysign(big, x);
        let th = self.c(0.927_734_4);
        self.select(FloatCC::GreaterThan, t, th, big, small)
    }

    /// `1 + erf(x)` without cancellation for negative x (`= e` there).
    pub fn one_plus_erf(&mut self, x: Value) -> Value {
        let (small, e, t) = self.erf_parts(x);
        let one = self.c(1.0);
        let two = self.c(2.0);
        let small = self.add(one, small);
        let pos = self.sub(two, e);
        let zero = self.c(0.0);
        let big = self.select(FloatCC::LessThan, x, zero, e, pos);
        let th = self.c(0.927_734_4);
        self.select(FloatCC::GreaterThan, t, th, big, small)
    }
}
