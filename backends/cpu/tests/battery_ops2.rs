//! Property-test battery, part 2: movement, gather, pad, TopK, BatchNormalization, conv,
//! ConvTranspose and pool ops on the cpu backend against `ir::eval` on random shapes (rank
//! 0..=4, dims from {0,1,2,3,5,7,16,17,33}: odd, size-1 and empty dims). Data inputs are
//! graph inputs so the run-time kernels run; attribute-like inputs (shapes, axes, pads,
//! starts/ends) are constants, as the backend requires. The harness is shared with
//! `battery.rs` (`common/battery.rs`).

mod common;

use common::battery::*;
use proptest::prelude::*;
use proptest::sample::select;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use whittle_ir::{Activation, AutoPad, DType, GeluApprox, Op, PadMode, Tensor, Value, Window};

// ---- movement ----

const DTYPES: [DType; 4] = [DType::F32, DType::I64, DType::I32, DType::Bool];

/// Positions `0..n` in random order.
fn perm(r: &mut StdRng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(r);
    p
}

/// `i` written as a negative axis half of the time.
fn maybe_neg(r: &mut StdRng, i: usize, rank: usize) -> i64 {
    if r.random_bool(0.5) {
        i as i64 - rank as i64
    } else {
        i as i64
    }
}

proptest! {
    #![proptest_config(cfg(48))]

    #[test]
    fn transpose(s in shape(0, 4), dt in select(DTYPES.to_vec()), default_perm in any::<bool>(),
                 seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let p = (!default_perm).then(|| perm(&mut r, s.len()));
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let y = c.op1(Op::Transpose { perm: p }, &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn reshape(s in shape(0, 4), dt in select(DTYPES.to_vec()), allowzero in any::<bool>(),
               seed in any::<u64>()) {
        let mut r = common::rng(seed);
        // Regroup the dims into products, add 1s, then code some entries as 0 (copy the
        // input dim) and one as -1 (inferred).
        let mut target: Vec<i64> = vec![];
        for (i, &d) in s.iter().enumerate() {
            match target.last_mut() {
                Some(t) if i > 0 && r.random_bool(0.4) => *t *= d as i64,
                _ => target.push(d as i64),
            }
        }
        for _ in 0..r.random_range(0..=2) {
            let at = r.random_range(0..=target.len());
            target.insert(at, 1);
        }
        // Without allowzero a literal 0 means "copy the input dim": keep zeros in place.
        let stray_zero = target.iter().enumerate().any(|(i, &t)| t == 0 && s.get(i) != Some(&0));
        if !allowzero && stray_zero {
            target = s.iter().map(|&d| d as i64).collect();
        }
        if !allowzero {
            for i in 0..target.len().min(s.len()) {
                if target[i] == s[i] as i64 && r.random_bool(0.3) {
                    target[i] = 0;
                }
            }
        }
        let total: usize = s.iter().product();
        if total > 0 && !target.is_empty() && r.random_bool(0.5) {
            let i = r.random_range(0..target.len());
            if target[i] != 0 {
                target[i] = -1;
            }
        }
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let tv = c.ints("shape", &target);
        let y = c.op1(Op::Reshape { allowzero }, &[xv, tv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn flatten(s in shape(0, 4), dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let rank = s.len() as i64;
        let axis = r.random_range(-rank..=rank);
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let y = c.op1(Op::Flatten { axis }, &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn squeeze_unsqueeze(s in shape(0, 3), squeeze in any::<bool>(), give_axes in any::<bool>(),
                         dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let k = r.random_range(1..=2usize);
        // New unit axes at `k` distinct positions of the rank-(r+k) shape.
        let out_rank = s.len() + k;
        let mut at = perm(&mut r, out_rank)[..k].to_vec();
        at.sort();
        let mut big = s.clone();
        for &a in &at {
            big.insert(a, 1);
        }
        let axes: Vec<i64> = at.iter().map(|&a| maybe_neg(&mut r, a, out_rank)).collect();
        let mut c = Case::new();
        let y = if squeeze {
            let xv = c.input("x", data(&mut r, dt, &big));
            // Absent axes squeeze every unit dim.
            let av = give_axes.then(|| c.ints("axes", &axes));
            c.op(Op::Squeeze, &[Some(xv), av], 1)[0]
        } else {
            let xv = c.input("x", data(&mut r, dt, &s));
            let av = c.ints("axes", &axes);
            c.op1(Op::Unsqueeze, &[xv, av])
        };
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn concat((s, axis) in shape_axis(1, 4), n in 1usize..=4, dt in select(DTYPES.to_vec()),
              sizes in prop::collection::vec(select(DIMS.to_vec()), 4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let ax = pos(axis, s.len());
        let mut c = Case::new();
        // Non-axis dims shared by all inputs, shrunk so that a 33-long axis still fits.
        let mut base = s.clone();
        base[ax] = 33;
        let base = capped_same(&base, ax);
        let vs: Vec<Value> = (0..n).map(|i| {
            let mut si = base.clone();
            si[ax] = sizes[i];
            let t = data(&mut r, dt, &si);
            c.input(&format!("x{i}"), t)
        }).collect();
        let y = c.op1(Op::Concat { axis }, &vs);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn split((s, axis) in shape_axis(1, 4), n in 1usize..=4, give_sizes in any::<bool>(),
             dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        // Without sizes: parts of ceil(d / n) clamped to what is left (5 into 4 is
        // [2, 2, 1, 0]), as the ONNX reference.
        let d = s[pos(axis, s.len())];
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let sv = give_sizes.then(|| {
            // A random composition of d into n parts (zeros allowed).
            let mut cuts: Vec<usize> = (0..n - 1).map(|_| r.random_range(0..=d)).collect();
            cuts.sort();
            let mut sizes = vec![];
            let mut prev = 0;
            for &cut in cuts.iter().chain(std::iter::once(&d)) {
                sizes.push((cut - prev) as i64);
                prev = cut;
            }
            c.ints("split", &sizes)
        });
        let ys = c.op(Op::Split { axis, num_outputs: n }, &[Some(xv), sv], n);
        c.check(&ys, EXACT)?;
    }

    #[test]
    fn slice(s in shape(1, 4), dt in select(DTYPES.to_vec()), give_axes in any::<bool>(),
             give_steps in any::<bool>(), i32_idx in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let rank = s.len();
        let axes: Vec<usize> = if give_axes {
            let k = r.random_range(1..=rank);
            perm(&mut r, rank)[..k].to_vec()
        } else {
            (0..rank).collect()
        };
        let bound = |r: &mut StdRng, d: i64| -> i64 {
            match r.random_range(0..10) {
                0 => i64::MAX,
                1 => i64::MIN,
                _ => r.random_range(-d - 3..=d + 3),
            }
        };
        let (mut starts, mut ends, mut steps) = (vec![], vec![], vec![]);
        for &a in &axes {
            let d = s[a] as i64;
            starts.push(bound(&mut r, d));
            ends.push(bound(&mut r, d));
            steps.push(if give_steps { *[1i64, 2, 3, -1, -2, -3].choose(&mut r).unwrap() } else { 1 });
        }
        let axes_v: Vec<i64> = axes.iter().map(|&a| maybe_neg(&mut r, a, rank)).collect();
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let konst = |c: &mut Case, name: &str, v: &[i64]| {
            let t = Tensor::from_vec(vec![v.len()], v.to_vec());
            // i32 bounds saturate i64::MIN/MAX to the i32 range.
            let t = if i32_idx {
                let w: Vec<i32> = v.iter().map(|&x| x.clamp(i32::MIN as i64, i32::MAX as i64) as i32).collect();
                Tensor::from_vec(vec![v.len()], w)
            } else { t };
            Some(c.konst(name, t))
        };
        let sv = konst(&mut c, "starts", &starts);
        let ev = konst(&mut c, "ends", &ends);
        let av = if give_axes || give_steps { konst(&mut c, "axes", &axes_v) } else { None };
        let stv = if give_steps { konst(&mut c, "steps", &steps) } else { None };
        let y = c.op(Op::Slice, &[Some(xv), sv, ev, av, stv], 1)[0];
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn gather((s, axis) in shape_axis(1, 3), is in prop::collection::vec(select(vec![0usize, 1, 2, 3, 5]), 0..=2),
              dt in select(DTYPES.to_vec()), i32_idx in any::<bool>(), const_idx in any::<bool>(),
              seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let d = s[pos(axis, s.len())] as i64;
        // Nothing to index on an empty axis: the indices must be empty too.
        let is = if d == 0 { let mut v = is; v.push(0); v } else { is };
        let n: usize = is.iter().product();
        let iv: Vec<i64> = (0..n).map(|_| r.random_range(-d..d.max(1))).collect();
        let it = Tensor::from_vec(is.clone(), iv);
        let it = if i32_idx { it.cast(DType::I32) } else { it };
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let iv = if const_idx { c.konst("idx", it) } else { c.input("idx", it) };
        let y = c.op1(Op::Gather { axis }, &[xv, iv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn gather_elements((s, axis) in shape_axis(1, 4), dt in select(DTYPES.to_vec()),
                       i32_idx in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let ax = pos(axis, s.len());
        let d = s[ax] as i64;
        let is: Vec<usize> = s.iter().enumerate().map(|(i, &di)| {
            if i == ax {
                if d == 0 { 0 } else { *[1usize, 2, 3, 5].choose(&mut r).unwrap() }
            } else {
                r.random_range(0..=di)
            }
        }).collect();
        let n: usize = is.iter().product();
        let iv: Vec<i64> = (0..n).map(|_| r.random_range(-d..d.max(1))).collect();
        let it = Tensor::from_vec(is, iv);
        let it = if i32_idx { it.cast(DType::I32) } else { it };
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let iv = c.input("idx", it);
        let y = c.op1(Op::GatherElements { axis }, &[xv, iv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn expand(sh in bshapes(2), dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        // Bidirectional: the target may hold 1s where the input has larger dims.
        let mut r = common::rng(seed);
        let target: Vec<i64> = sh[1].iter().map(|&d| d as i64).collect();
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &sh[0]));
        let tv = c.ints("shape", &target);
        let y = c.op1(Op::Expand, &[xv, tv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn tile(s in shape(0, 4), dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let s = capped(s, 256);
        let reps: Vec<i64> = s.iter().map(|_| r.random_range(0..=3)).collect();
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let rv = c.ints("repeats", &reps);
        let y = c.op1(Op::Tile, &[xv, rv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn pad(s in shape(0, 4), mode in select(vec![PadMode::Constant, PadMode::Reflect,
               PadMode::Edge, PadMode::Wrap]), dt in select(DTYPES.to_vec()),
           give_axes in any::<bool>(), value_kind in 0u8..3, seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let s = capped(s, 512);
        let rank = s.len();
        let axes: Vec<usize> = if give_axes && rank > 0 {
            let k = r.random_range(1..=rank);
            perm(&mut r, rank)[..k].to_vec()
        } else {
            (0..rank).collect()
        };
        let (mut begin, mut end) = (vec![], vec![]);
        for &a in &axes {
            let d = s[a] as i64;
            // Constant mode crops with negative pads; the others need data to copy from.
            let (b, e) = match mode {
                PadMode::Constant => {
                    let b = r.random_range(-d.min(2)..=3);
                    (b, r.random_range((-(d + b.min(0))).max(-2)..=3))
                }
                _ if d == 0 => (0, 0),
                _ => (r.random_range(0..=3), r.random_range(0..=3)),
            };
            begin.push(b);
            end.push(e);
        }
        let pads = [begin, end].concat();
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let pv = c.ints("pads", &pads);
        let cv = match value_kind {
            1 => Some(c.konst("value", data(&mut r, dt, &[]))),
            2 => Some(c.input("value", data(&mut r, dt, &[]))),
            _ => None,
        };
        let av = (give_axes && rank > 0).then(|| {
            let v: Vec<i64> = axes.iter().map(|&a| maybe_neg(&mut r, a, rank)).collect();
            c.ints("axes", &v)
        });
        let y = c.op(Op::Pad { mode }, &[Some(xv), Some(pv), cv, av], 1)[0];
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn trilu(s in shape(2, 4), upper in any::<bool>(), k in prop::option::of(-6i64..=6),
             dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let kv = k.map(|k| c.konst("k", Tensor::scalar(k)));
        let y = c.op(Op::Trilu { upper }, &[Some(xv), kv], 1)[0];
        c.check(&[y], EXACT)?;
    }
}

/// `s` with every dim but `keep` shrunk until it fits in `CAP / 2` elements.
fn capped_same(s: &[usize], keep: usize) -> Vec<usize> {
    let mut s = s.to_vec();
    while s.iter().product::<usize>() > CAP / 2 {
        match (0..s.len())
            .filter(|&i| i != keep && s[i] > 2)
            .max_by_key(|&i| s[i])
        {
            Some(i) => s[i] = 2,
            None => break,
        }
    }
    s
}

// ---- conv and pool ----

/// Small window geometry for `nd` spatial dims.
#[derive(Clone, Debug)]
struct Geo {
    spatial: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    auto_pad: AutoPad,
}

fn geo(max_dil: usize) -> impl Strategy<Value = Geo> {
    (1usize..=2).prop_flat_map(move |nd| {
        let v = |s: std::ops::RangeInclusive<usize>| prop::collection::vec(s, nd);
        (
            prop::collection::vec(select(vec![1usize, 2, 3, 5, 7, 9]), nd),
            v(1..=3),
            v(1..=3),
            v(1..=max_dil),
            prop::collection::vec(0usize..=2, 2 * nd),
            select(vec![
                AutoPad::NotSet,
                AutoPad::NotSet,
                AutoPad::NotSet,
                AutoPad::Valid,
                AutoPad::SameUpper,
                AutoPad::SameLower,
            ]),
        )
            .prop_map(
                |(spatial, kernel, strides, dilations, pads, auto_pad)| Geo {
                    spatial,
                    kernel,
                    strides,
                    dilations,
                    pads: if auto_pad == AutoPad::NotSet {
                        pads
                    } else {
                        vec![]
                    },
                    auto_pad,
                },
            )
    })
}

impl Geo {
    fn window(&self, explicit_kernel: bool) -> Window {
        Window {
            auto_pad: self.auto_pad,
            kernel_shape: if explicit_kernel {
                self.kernel.clone()
            } else {
                vec![]
            },
            strides: self.strides.clone(),
            dilations: self.dilations.clone(),
            pads: self.pads.clone(),
        }
    }

    /// Whether every output dim is at least 1 (explicit pads / VALID).
    fn nonempty(&self) -> bool {
        let nd = self.spatial.len();
        (0..nd).all(|i| {
            let span = (self.kernel[i] - 1) * self.dilations[i] + 1;
            let padded = self.spatial[i]
                + self.pads.get(i).unwrap_or(&0)
                + self.pads.get(nd + i).unwrap_or(&0);
            padded >= span
        })
    }

    /// Pads cut below the kernel, so that no pooling window lies wholly in the padding.
    fn pads_below_kernel(mut self) -> Geo {
        let nd = self.spatial.len();
        for (i, p) in self.pads.iter_mut().enumerate() {
            *p = (*p).min(self.kernel[i % nd] - 1);
        }
        self
    }
}

proptest! {
    #![proptest_config(cfg(40))]

    #[test]
    fn conv(g in geo(2), n in 1usize..=2, group in 1usize..=3, cg in 1usize..=3,
            mg in 1usize..=2, depthwise in any::<bool>(), bias in any::<bool>(),
            explicit_kernel in any::<bool>(), runtime_w in any::<bool>(), seed in any::<u64>()) {
        prop_assume!(g.nonempty());
        let mut r = common::rng(seed);
        // Depthwise: one input channel per group (the row-wise kernel).
        let cg = if depthwise { 1 } else { cg };
        let (cin, cout) = (group * cg, group * mg);
        let sx = [vec![n, cin], g.spatial.clone()].concat();
        let sw = [vec![cout, cg], g.kernel.clone()].concat();
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &sx, -1.0, 1.0));
        let w = f32s(&mut r, &sw, -1.0, 1.0);
        let wv = if runtime_w { c.input("w", w) } else { c.konst("w", w) };
        let bv = bias.then(|| { let t = f32s(&mut r, &[cout], -1.0, 1.0); c.konst("b", t) });
        let op = Op::Conv { window: g.window(explicit_kernel), group };
        let y = c.op(op, &[Some(xv), Some(wv), bv], 1)[0];
        let k = cg * g.kernel.iter().product::<usize>();
        c.check(&[y], acc_tol(k, 1.0))?;
    }

    #[test]
    fn max_pool(g in geo(2), n in 1usize..=2, ch in 1usize..=3, ceil_mode in any::<bool>(),
                indices in any::<bool>(), storage_order in 0u8..=1, seed in any::<u64>()) {
        let g = g.pads_below_kernel();
        prop_assume!(g.nonempty());
        let mut r = common::rng(seed);
        let sx = [vec![n, ch], g.spatial.clone()].concat();
        let mut c = Case::new();
        let xv = c.input("x", halves(&mut r, &sx));
        let op = Op::MaxPool { window: g.window(true), ceil_mode, storage_order };
        let ys = c.op(op, &[Some(xv)], if indices { 2 } else { 1 });
        c.check(&ys, EXACT)?;
    }

    #[test]
    fn average_pool(g in geo(1), n in 1usize..=2, ch in 1usize..=3, ceil_mode in any::<bool>(),
                    count_include_pad in any::<bool>(), seed in any::<u64>()) {
        let g = g.pads_below_kernel();
        prop_assume!(g.nonempty());
        let mut r = common::rng(seed);
        let sx = [vec![n, ch], g.spatial.clone()].concat();
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &sx, -2.0, 2.0));
        let op = Op::AveragePool { window: g.window(true), ceil_mode, count_include_pad };
        let y = c.op1(op, &[xv]);
        c.check(&[y], acc_tol(g.kernel.iter().product(), 2.0))?;
    }

    #[test]
    fn global_pools(s in shape(3, 4), max in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        // The max over an empty window is undefined (the evaluator says so).
        prop_assume!(!max || s[2..].iter().product::<usize>() > 0);
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -2.0, 2.0));
        let y = c.op1(if max { Op::GlobalMaxPool } else { Op::GlobalAveragePool }, &[xv]);
        c.check(&[y], acc_tol(s[2..].iter().product(), 2.0))?;
    }
}

// ---- more indexing, normalization and ConvTranspose ----

proptest! {
    #![proptest_config(cfg(40))]

    #[test]
    fn top_k((s, axis) in shape_axis(1, 4), largest in any::<bool>(),
             dt in select(vec![DType::F32, DType::I64, DType::I32]), seed in any::<u64>()) {
        // Integer-valued data: ties resolve to the lower index in both.
        let mut r = common::rng(seed);
        let d = s[pos(axis, s.len())] as i64;
        let k = r.random_range(0..=d);
        let mut c = Case::new();
        let xv = c.input("x", ints(&mut r, DType::I64, &s, -4, 4).cast(dt));
        let kv = c.ints("k", &[k]);
        let ys = c.op(Op::TopK { axis, largest, sorted: true }, &[Some(xv), Some(kv)], 2);
        c.check(&ys, EXACT)?;
    }

    #[test]
    fn gather_nd(s in shape(1, 4), dt in select(DTYPES.to_vec()), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let s = capped(s, 512);
        let b = r.random_range(0..s.len());
        let m = r.random_range(1..=s.len() - b);
        // Indices: the batch dims, up to two free dims, then m coordinates.
        let free: Vec<usize> = (0..r.random_range(0..=2)).map(|_| r.random_range(0..=3)).collect();
        let is = [s[..b].to_vec(), free, vec![m]].concat();
        let rows: usize = is[..is.len() - 1].iter().product();
        // An empty indexed dim admits no coordinate: only an empty index set.
        prop_assume!(rows == 0 || s[b..b + m].iter().all(|&d| d > 0));
        let mut iv = Vec::with_capacity(rows * m);
        for _ in 0..rows {
            for &d in &s[b..b + m] {
                iv.push(r.random_range(-(d as i64)..d as i64));
            }
        }
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let idx = c.input("idx", Tensor::from_vec(is, iv));
        let y = c.op1(Op::GatherNd { batch_dims: b }, &[xv, idx]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn batch_norm(s in shape(2, 4), runtime_params in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let ch = [s[1]];
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -3.0, 3.0));
        let params: Vec<Value> = [("scale", 0.5, 1.5), ("bias", -1.0, 1.0), ("mean", -1.0, 1.0),
                                  ("var", 0.1, 2.0)].iter().map(|&(name, lo, hi)| {
            let t = f32s(&mut r, &ch, lo, hi);
            if runtime_params { c.input(name, t) } else { c.konst(name, t) }
        }).collect();
        let y = c.op1(Op::BatchNormalization { epsilon: 1e-5 }, &[&[xv][..], &params].concat());
        c.check(&[y], acc_tol(1, 8.0))?;
    }

    #[test]
    fn conv_transpose(g in geo(2), n in 1usize..=2, group in 1usize..=2, cg in 1usize..=3,
                      mg in 1usize..=2, bias in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let nd = g.spatial.len();
        // output_padding below the stride; the pads may not exceed the full output.
        let output_padding: Vec<usize> =
            (0..nd).map(|i| r.random_range(0..g.strides[i].max(g.dilations[i]))).collect();
        prop_assume!((0..nd).all(|i| {
            let full = (g.spatial[i] - 1) * g.strides[i] + (g.kernel[i] - 1) * g.dilations[i]
                + 1 + output_padding[i];
            g.pads.is_empty() || full > g.pads[i] + g.pads[nd + i]
        }));
        let (cin, cout) = (group * cg, group * mg);
        let sx = [vec![n, cin], g.spatial.clone()].concat();
        let sw = [vec![cin, mg], g.kernel.clone()].concat();
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &sx, -1.0, 1.0));
        let wv = c.konst("w", f32s(&mut r, &sw, -1.0, 1.0));
        let bv = bias.then(|| { let t = f32s(&mut r, &[cout], -1.0, 1.0); c.konst("b", t) });
        let op = Op::ConvTranspose { window: g.window(true), group, output_padding,
                                     output_shape: vec![] };
        let y = c.op(op, &[Some(xv), Some(wv), bv], 1)[0];
        c.check(&[y], acc_tol(cg * g.kernel.iter().product::<usize>(), 1.0))?;
    }

    /// MatMulNBits with constant weights (dequantized once at plan time, then the f32 GEMM):
    /// 2/4/8 bits, K not a multiple of the block, default, packed and float zero points.
    #[test]
    fn matmul_nbits(rows in shape(0, 2), k in 1usize..=70, n in 1usize..=9,
                    bits in select(vec![2u8, 4, 8]), block in select(vec![16usize, 32]),
                    zp in 0usize..3, bias in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let kb = k.div_ceil(block);
        let blob = block * bits as usize / 8;
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &[rows.clone(), vec![k]].concat(), -1.0, 1.0));
        let bq = ints(&mut r, DType::U8, &[n, kb, blob], 0, 255);
        let bv = c.konst("b", bq);
        let sv = c.konst("s", f32s(&mut r, &[n * kb], 0.01, 0.2));
        let zv = match zp {
            0 => None,
            1 => {
                let row = (kb * bits as usize).div_ceil(8);
                Some(c.konst("zp", ints(&mut r, DType::U8, &[n, row], 0, 255)))
            }
            _ => Some(c.konst("zp", f32s(&mut r, &[n * kb], 0.0, 3.0))),
        };
        let cv = bias.then(|| { let t = f32s(&mut r, &[n], -1.0, 1.0); c.konst("bias", t) });
        let attrs = whittle_ir::MatMulNBitsAttrs { k, n, bits, block_size: block };
        let op = Op::MatMulNBits(Box::new(attrs));
        let y = c.op(op, &[Some(xv), Some(bv), Some(sv), zv, None, cv], 1)[0];
        c.check(&[y], acc_tol(k, 255.0 * 0.2))?;
    }

    /// MatMulInteger and QLinearMatMul with a constant byte B (packed once, run on the
    /// integer GEMM's micro-kernels): every u8/i8 pairing, zero points absent, per tensor
    /// or per row / column, A's zero point a run-time input (as DynamicQuantizeLinear
    /// gives it) or a constant, ragged m, k and n around the 8 × 32 tile. Bit for bit.
    #[test]
    fn integer_matmul_packed(lead in 0usize..=1, m in 1usize..=19, k in 1usize..=70,
                             n in 1usize..=40, a_signed in any::<bool>(),
                             b_signed in any::<bool>(), za_kind in 0usize..3,
                             zb_kind in 0usize..3, za_runtime in any::<bool>(), q in any::<bool>(),
                             seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let bytes = |s: bool| if s { (DType::I8, -128, 127) } else { (DType::U8, 0, 255) };
        let (adt, alo, ahi) = bytes(a_signed);
        let (bdt, blo, bhi) = bytes(b_signed);
        // A per-row zero point needs a 2-D A.
        let lead = if za_kind == 2 { 0 } else { lead };
        let sa = [vec![2; lead], vec![m, k]].concat();
        let mut c = Case::new();
        let av = c.input("a", ints(&mut r, adt, &sa, alo, ahi));
        let bv = c.konst("b", ints(&mut r, bdt, &[k, n], blo, bhi));
        let zlen = |kind: usize, len: usize| if kind == 2 { vec![len] } else { vec![] };
        let mut za = (za_kind > 0).then(|| ints(&mut r, adt, &zlen(za_kind, m), alo, ahi));
        let zb = (zb_kind > 0).then(|| ints(&mut r, bdt, &zlen(zb_kind, n), blo, bhi));
        if q {
            // QLinearMatMul requires both zero points; the output type follows y's.
            za.get_or_insert_with(|| ints(&mut r, adt, &[], alo, ahi));
        }
        let zav = za.map(|t| if za_runtime { c.input("za", t) } else { c.konst("za", t) });
        let zbv = zb.map(|t| c.konst("zb", t));
        let y = if q {
            let zbv = zbv.unwrap_or_else(|| { let t = ints(&mut r, bdt, &[], blo, bhi);
                                              c.konst("zb", t) });
            let sa_v = { let t = f32s(&mut r, &[], 0.01, 0.1); c.konst("sa", t) };
            let sb_shape = if zb_kind == 2 { vec![n] } else { vec![] };
            let sb_v = { let t = f32s(&mut r, &sb_shape, 0.01, 0.1); c.konst("sb", t) };
            let sy_v = { let t = f32s(&mut r, &[], 0.5, 4.0); c.konst("sy", t) };
            let (ydt, ylo, yhi) = bytes(r.random_bool(0.5));
            let zy_v = { let t = ints(&mut r, ydt, &[], ylo, yhi); c.konst("zy", t) };
            let ins = [Some(av), Some(sa_v), zav, Some(bv), Some(sb_v), Some(zbv), Some(sy_v),
                       Some(zy_v)];
            c.op(Op::QLinearMatMul, &ins, 1)[0]
        } else {
            c.op(Op::MatMulInteger, &[Some(av), Some(bv), zav, zbv], 1)[0]
        };
        c.check(&[y], EXACT)?;
    }
}

proptest! {
    #![proptest_config(cfg(48))]

    /// MatMulIntegerToFloat (what `fuse-int-matmul` makes of MatMulInteger → Cast → Mul →
    /// Add and of MatMul over DequantizeLinear): a constant B (packed at compile time) or a
    /// run-time B (packed per call), every u8/i8 pairing, b_scale, b_zero_point and bias
    /// per tensor or per column, a_scale and a_zero_point run-time inputs as
    /// DynamicQuantizeLinear gives them, ragged sizes around the tiles. Bit for bit, and
    /// with a fused activation within f32 rounding.
    #[test]
    fn matmul_integer_to_float(lead in 0usize..=1, m in 1usize..=19, k in 1usize..=70,
                               n in 1usize..=40, a_signed in any::<bool>(),
                               b_signed in any::<bool>(), b_const in any::<bool>(),
                               per_col in any::<bool>(), za_kind in 0usize..2,
                               zb_kind in 0usize..3, bias_kind in 0usize..3,
                               act in select(vec![Activation::Linear, Activation::Linear,
                                   Activation::Relu, Activation::Gelu(GeluApprox::None),
                                   Activation::Gelu(GeluApprox::Tanh), Activation::Silu]),
                               seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let bytes = |s: bool| if s { (DType::I8, -128, 127) } else { (DType::U8, 0, 255) };
        let (adt, alo, ahi) = bytes(a_signed);
        let (bdt, blo, bhi) = bytes(b_signed);
        let mut c = Case::new();
        let av = c.input("a", ints(&mut r, adt, &[vec![2; lead], vec![m, k]].concat(), alo, ahi));
        let bt = ints(&mut r, bdt, &[k, n], blo, bhi);
        let bv = if b_const { c.konst("b", bt) } else { c.input("b", bt) };
        let cols = |kind: usize| if kind == 2 { vec![n] } else { vec![] };
        let sa = { let t = f32s(&mut r, &[], 0.001, 0.1); c.input("sa", t) };
        let sb_shape = if per_col { vec![n] } else { vec![] };
        // With an activation, |a·b·scale| ≤ 8 for any codes: the activation kernels' error
        // is absolute (≈ 1e-7·|x|, epilogue.rs), so the check stays tight.
        let sb_hi = if act == Activation::Linear { 0.1 } else { 8.0 / (0.1 * 65025.0 * k as f32) };
        let sb = { let t = f32s(&mut r, &sb_shape, sb_hi / 100.0, sb_hi); c.konst("sb", t) };
        let za = (za_kind > 0).then(|| { let t = ints(&mut r, adt, &[], alo, ahi); c.input("za", t) });
        let zb = (zb_kind > 0).then(|| { let t = ints(&mut r, bdt, &cols(zb_kind), blo, bhi);
                                         c.konst("zb", t) });
        let bias_shape = if bias_kind == 2 { vec![n] } else { vec![1] };
        let bias = (bias_kind > 0).then(|| { let t = f32s(&mut r, &bias_shape, -1.0, 1.0);
                                             c.konst("bias", t) });
        let ins = [Some(av), Some(bv), Some(sa), Some(sb), za, zb, bias];
        let y = c.op(Op::MatMulIntegerToFloat { activation: act }, &ins, 1)[0];
        // The product, scale and bias are exact; an activation rounds as its kernel does.
        let tol = if act == Activation::Linear { EXACT } else { Tol { rtol: 1e-5, atol: 2e-6 } };
        c.check(&[y], tol)?;
    }
}
