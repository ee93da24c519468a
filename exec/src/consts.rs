//! Releasing the constants a compiled plan never reads at run time: weights that only feed
//! GEMMs live on as pre-packed B copies inside the steps, so the plan drops its reference
//! to the unpacked tensor (once the graph lets go too, the memory is freed).

use crate::plan::Buf;
use crate::steps::{BSource, OutputSpec, Step};
use std::sync::Arc;
use whittle_ir::{DType, Tensor};

/// Every buffer a step reads or writes at run time.
pub fn step_bufs(step: &Step) -> Vec<Buf> {
    match step {
        Step::Fused { args, .. } | Step::Host { args, .. } => args.clone(),
        Step::Attention(at) => at.args.clone(),
        Step::MatMul(mm) => {
            let mut v = vec![mm.a, mm.out];
            v.extend(mm.bias.map(|(b, _, _)| b));
            v.extend(mm.residual);
            if let BSource::Runtime { buf, .. } = &mm.b {
                v.push(*buf);
            }
            v
        }
    }
}

/// Replaces every constant that no step and no output reads with an empty tensor (one
/// shared placeholder); returns how many bytes of tensor data the plan stopped holding.
pub fn release_unread(consts: &mut [Arc<Tensor>], steps: &[Step], outputs: &[OutputSpec]) -> usize {
    let mut read = vec![false; consts.len()];
    let bufs = steps
        .iter()
        .flat_map(step_bufs)
        .chain(outputs.iter().map(|o| o.buf));
    for b in bufs {
        if let Some(r) = match b {
            Buf::Const(i) => read.get_mut(i),
            _ => None,
        } {
            *r = true;
        }
    }
    let empty = Arc::new(Tensor::zeros(DType::F32, vec![0]));
    let mut freed = 0;
    for (c, r) in consts.iter_mut().zip(read) {
        if !r && !c.is_empty() {
            freed += c.len() * c.dtype().size_of();
            *c = empty.clone();
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::HostOp;

    #[test]
    fn only_unread_constants_are_released() {
        let t = |n: usize| Arc::new(Tensor::zeros(DType::F32, vec![n]));
        let mut consts = vec![t(4), t(8), t(2)];
        // Constant 0 feeds a host step, constant 2 is an output, constant 1 is unread.
        let steps = vec![Step::Host {
            op: HostOp::Softmax { rows: 1, cols: 4 },
            args: vec![Buf::Const(0), Buf::Arena(0)],
            name: "s".into(),
        }];
        let outputs = vec![OutputSpec {
            name: "y".into(),
            buf: Buf::Const(2),
            dtype: DType::F32,
            shape: vec![2],
        }];
        assert_eq!(release_unread(&mut consts, &steps, &outputs), 32);
        assert_eq!(
            consts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![4, 0, 2]
        );
    }
}
