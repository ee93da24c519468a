//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (the NLL of a log-softmax over
//! the class axis 1), in f64.

use super::{opt, req, OpResult};
use crate::{LossReduction, Tensor};

/// `input [N,C,d...], target [N,d...], weight? [C] → loss (, log_prob)`. With `softmax`
/// the input is the scores and `log_softmax(scores, axis = 1)` is the second output.
pub fn loss(
    softmax: bool,
    reduction: LossReduction,
    ignore_index: Option<i64>,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let x = req(ins, 0, "input")?;
    let t = req(ins, 1, "target")?;
    let w = opt(ins, 2);
    let dt = x.dtype();
    if !dt.is_float() {
        return Err(format!("input must be floating-point, got {dt}"));
    }
    if !matches!(t.dtype(), crate::DType::I32 | crate::DType::I64) {
        return Err(format!("target must be int32 or int64, got {}", t.dtype()));
    }
    let xs = x.shape();
    if xs.len() < 2 {
        return Err(format!("input must have rank >= 2, got shape {xs:?}"));
    }
    let (n, c) = (xs[0], xs[1]);
    let want_t: Vec<usize> = std::iter::once(n).chain(xs[2..].iter().copied()).collect();
    if t.shape() != want_t.as_slice() {
        return Err(format!(
            "target has shape {:?}, expected {want_t:?} for input shape {xs:?}",
            t.shape()
        ));
    }
    let weights = match w {
        Some(w) => {
            if w.shape() != [c] {
                return Err(format!("weight has shape {:?}, expected [{c}]", w.shape()));
            }
            Some(w.to_f64_vec())
        }
        None => None,
    };
    let d: usize = xs[2..].iter().product();
    let mut lp = x.to_f64_vec();
    if softmax {
        // log_softmax over the class axis, per (n, d).
        for i in 0..n {
            for k in 0..d {
                let at = |cl: usize| (i * c + cl) * d + k;
                let m = (0..c)
                    .map(|cl| lp[at(cl)])
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..c).map(|cl| (lp[at(cl)] - m).exp()).sum();
                let ls = m + s.ln();
                for cl in 0..c {
                    lp[at(cl)] -= ls;
                }
            }
        }
    }
    let tv = t.to_i64_vec();
    let mut losses = vec![0.0f64; n * d];
    let mut wsum = 0.0f64;
    for i in 0..n {
        for k in 0..d {
            let tgt = tv[i * d + k];
            if Some(tgt) == ignore_index {
                continue;
            }
            if tgt < 0 || tgt as u64 >= c as u64 {
                return Err(format!(
                    "target value {tgt} is out of range for {c} classes"
                ));
            }
            let cl = tgt as usize;
            let wt = weights.as_ref().map_or(1.0, |w| w[cl]);
            losses[i * d + k] = -lp[(i * c + cl) * d + k] * wt;
            wsum += wt;
        }
    }
    let loss = match reduction {
        LossReduction::None => Tensor::from_f64(dt, t.shape().to_vec(), &losses),
        LossReduction::Sum => Tensor::from_f64(dt, vec![], &[losses.iter().sum()]),
        LossReduction::Mean => {
            let s: f64 = losses.iter().sum();
            Tensor::from_f64(dt, vec![], &[s / wsum])
        }
    };
    let mut outs = vec![loss];
    if softmax && num_outputs > 1 {
        outs.push(Tensor::from_f64(dt, xs.to_vec(), &lp));
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_mean_with_weight_and_ignore() {
        // N=2, C=3: losses -x[0,1] = 2 and -x[1,2] ignored.
        let x = Tensor::from_vec(vec![2, 3], vec![-1.0f32, -2.0, -3.0, -4.0, -5.0, -6.0]);
        let t = Tensor::from_vec(vec![2], vec![1i64, 2]);
        let w = Tensor::from_vec(vec![3], vec![1.0f32, 0.5, 2.0]);
        let out = loss(
            false,
            LossReduction::Mean,
            Some(2),
            &[Some(&x), Some(&t), Some(&w)],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64_vec(), vec![2.0]);
        let none = loss(false, LossReduction::None, None, &[Some(&x), Some(&t)], 1).unwrap();
        assert_eq!(none[0].to_f64_vec(), vec![2.0, 6.0]);
    }

    #[test]
    fn bad_target_is_an_error() {
        let x = Tensor::from_vec(vec![1, 2], vec![0.0f32, 0.0]);
        let t = Tensor::from_vec(vec![1], vec![5i64]);
        let e = loss(true, LossReduction::Sum, None, &[Some(&x), Some(&t)], 2).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }
}
