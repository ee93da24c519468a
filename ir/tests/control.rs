//! Control flow in the IR: `If`, `Loop` and `Scan` bodies through the verifier, shape
//! inference, specialization (static control flow inlined or unrolled), the reference
//! evaluator and the text format.

use whittle_ir::eval::run;
use whittle_ir::infer::{infer_graph, specialize};
use whittle_ir::text::{parse_graph, print_graph};
use whittle_ir::{
    BinaryOp, Body, DType, Graph, Op, ScanAttrs, Tensor, TensorType, Value, ValueInfo,
};

fn node(g: &mut Graph, op: Op, ins: &[Option<Value>], outs: &[(&str, DType)]) -> Vec<Value> {
    let infos = outs
        .iter()
        .map(|(n, d)| ValueInfo {
            name: n.to_string(),
            ty: TensorType::unknown_rank(*d),
        })
        .collect::<Vec<_>>();
    let name = outs[0].0.to_string() + "_node";
    let id = g.add_node(op, name, ins, infos);
    (0..outs.len()).map(|p| Value::new(id, p)).collect()
}

fn add(g: &mut Graph, a: Value, b: Value, name: &str, dt: DType) -> Value {
    node(
        g,
        Op::Binary(BinaryOp::Add),
        &[Some(a), Some(b)],
        &[(name, dt)],
    )[0]
}

fn out<'a>(r: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &r.iter().find(|(n, _)| n == name).expect("output").1
}

/// `y = If(c, then: x + 1, else: x * 2)` with `x` captured.
fn if_graph() -> Graph {
    let f = TensorType::fixed(DType::F32, &[3]);
    let branch = |name: &str, op: BinaryOp, k: f32| {
        let mut b = Graph::new(name);
        let x = b.add_input("x_cap", f.clone());
        let c = b.add_const("k", Tensor::scalar(k));
        let y = node(
            &mut b,
            Op::Binary(op),
            &[Some(x), Some(c)],
            &[("y_b", DType::F32)],
        )[0];
        b.add_output(y, "y_b");
        Body::new(b)
    };
    let mut g = Graph::new("if");
    let c = g.add_input("c", TensorType::fixed(DType::Bool, &[]));
    let x = g.add_input("x", f.clone());
    let op = Op::If {
        then_branch: branch("then", BinaryOp::Add, 1.0),
        else_branch: branch("else", BinaryOp::Mul, 2.0),
    };
    let y = node(&mut g, op, &[Some(c), Some(x)], &[("y", DType::F32)])[0];
    g.add_output(y, "y");
    g
}

#[test]
fn if_runs_the_chosen_branch_and_round_trips_through_text() {
    let mut g = if_graph();
    g.verify().unwrap();
    infer_graph(&mut g).unwrap();
    let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]);
    for (c, want) in [(true, [2.0f32, 3.0, 4.0]), (false, [2.0, 4.0, 6.0])] {
        let r = run(&g, &[("c", Tensor::scalar(c)), ("x", x.clone())]).unwrap();
        assert_eq!(out(&r, "y").as_slice::<f32>().unwrap(), &want);
    }
    let text = print_graph(&g).unwrap();
    let back = parse_graph(&text).unwrap();
    assert_eq!(print_graph(&back).unwrap(), text);
    let r = run(&back, &[("c", Tensor::scalar(false)), ("x", x)]).unwrap();
    assert_eq!(out(&r, "y").as_slice::<f32>().unwrap(), &[2.0, 4.0, 6.0]);
}

#[test]
fn if_with_a_known_condition_is_inlined_by_specialize() {
    let mut g = if_graph();
    let c = g.inputs()[0];
    let k = g.add_const("c_true", Tensor::scalar(true));
    let user = g.consumers(Value::new(c, 0))[0];
    g.set_input(user.0, user.1, Some(k));
    specialize(&mut g, &[("x", vec![3])]).unwrap();
    assert!(!g.node_ids().any(|n| matches!(g.node(n).op, Op::If { .. })));
    let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]);
    let r = run(&g, &[("c", Tensor::scalar(false)), ("x", x)]).unwrap();
    assert_eq!(out(&r, "y").as_slice::<f32>().unwrap(), &[2.0, 3.0, 4.0]);
}

#[test]
fn if_branches_must_fit_the_node() {
    let mut g = if_graph();
    let id = g
        .node_ids()
        .find(|&n| matches!(g.node(n).op, Op::If { .. }))
        .unwrap();
    let mut short = Graph::new("short");
    short.add_input("x_cap", TensorType::fixed(DType::F32, &[3]));
    if let Op::If { else_branch, .. } = &mut g.node_mut(id).op {
        *else_branch = Body::new(short);
    }
    let e = g.verify().unwrap_err().to_string();
    assert!(e.contains("body 'short' has 1 inputs and 0 outputs"), "{e}");
}

/// `Loop(M, cond, v)`: `v += i` each iteration, scan output `v`; `stop_at` adds the
/// condition `v < stop_at` instead of passing the condition through.
fn loop_graph(m: Option<i64>, stop_at: Option<i64>) -> Graph {
    let s = TensorType::fixed(DType::I64, &[]);
    let mut b = Graph::new("body");
    let i = b.add_input("i", s.clone());
    let cond = b.add_input("cond_in", TensorType::fixed(DType::Bool, &[]));
    let v = b.add_input("v_in", s.clone());
    let v2 = add(&mut b, v, i, "v_out", DType::I64);
    let c = match stop_at {
        None => node(
            &mut b,
            Op::Identity,
            &[Some(cond)],
            &[("cond_out", DType::Bool)],
        )[0],
        Some(k) => {
            let k = b.add_const("limit", Tensor::scalar(k));
            let op = Op::Binary(BinaryOp::Less);
            node(
                &mut b,
                op,
                &[Some(v2), Some(k)],
                &[("cond_out", DType::Bool)],
            )[0]
        }
    };
    let sc = node(&mut b, Op::Identity, &[Some(v2)], &[("scan", DType::I64)])[0];
    b.add_output(c, "cond_out");
    b.add_output(v2, "v_out");
    b.add_output(sc, "scan");
    let mut g = Graph::new("loop");
    let v0 = g.add_input("v0", s);
    let mv = m.map(|m| g.add_const("M", Tensor::scalar(m)));
    let op = Op::Loop {
        body: Body::new(b),
        carried: 1,
    };
    let outs = node(
        &mut g,
        op,
        &[mv, None, Some(v0)],
        &[("v_final", DType::I64), ("vs", DType::I64)],
    );
    g.add_output(outs[0], "v_final");
    g.add_output(outs[1], "vs");
    g
}

#[test]
fn loop_with_a_trip_count_collects_scan_outputs_and_unrolls() {
    let mut g = loop_graph(Some(5), None);
    g.verify().unwrap();
    infer_graph(&mut g).unwrap();
    let vs = g.outputs()[1].value;
    assert_eq!(g.value_type(vs).concrete_shape(), Some(vec![5]));
    let r = run(&g, &[("v0", Tensor::scalar(0i64))]).unwrap();
    assert_eq!(out(&r, "v_final").as_slice::<i64>().unwrap(), &[10]);
    assert_eq!(out(&r, "vs").as_slice::<i64>().unwrap(), &[0, 1, 3, 6, 10]);

    specialize(&mut g, &[("v0", vec![])]).unwrap();
    assert!(!g
        .node_ids()
        .any(|n| matches!(g.node(n).op, Op::Loop { .. })));
    let u = run(&g, &[("v0", Tensor::scalar(0i64))]).unwrap();
    assert_eq!(out(&u, "v_final").as_slice::<i64>().unwrap(), &[10]);
    assert_eq!(out(&u, "vs").as_slice::<i64>().unwrap(), &[0, 1, 3, 6, 10]);
}

#[test]
fn loop_stops_on_its_condition_and_on_a_zero_trip_count() {
    let mut g = loop_graph(None, Some(5));
    infer_graph(&mut g).unwrap();
    let r = run(&g, &[("v0", Tensor::scalar(0i64))]).unwrap();
    // v: 0, 1, 3, 6 — the iteration that reaches 6 ends the loop.
    assert_eq!(out(&r, "v_final").as_slice::<i64>().unwrap(), &[6]);
    assert_eq!(out(&r, "vs").as_slice::<i64>().unwrap(), &[0, 1, 3, 6]);

    let mut z = loop_graph(Some(0), None);
    infer_graph(&mut z).unwrap();
    let r = run(&z, &[("v0", Tensor::scalar(7i64))]).unwrap();
    assert_eq!(out(&r, "v_final").as_slice::<i64>().unwrap(), &[7]);
    assert_eq!(out(&r, "vs").shape(), &[0]);
}

#[test]
fn endless_loop_is_an_error_not_a_hang() {
    let mut g = loop_graph(None, None);
    let e = infer_graph(&mut g).unwrap_err().to_string();
    assert!(e.contains("never stops"), "{e}");
}

/// Scan over axis 0 of `xs` (`[4, 2]`): state `s += x`, scan output `s`, optionally
/// reversed in input and output.
fn scan_graph(reverse: bool) -> Graph {
    let row = TensorType::fixed(DType::F32, &[2]);
    let mut b = Graph::new("scan_body");
    let s = b.add_input("s_in", row.clone());
    let x = b.add_input("x_in", row.clone());
    let s2 = add(&mut b, s, x, "s_out", DType::F32);
    let y = node(&mut b, Op::Identity, &[Some(s2)], &[("y", DType::F32)])[0];
    b.add_output(s2, "s_out");
    b.add_output(y, "y");
    let mut g = Graph::new("scan");
    let s0 = g.add_input("s0", row);
    let xs = g.add_input("xs", TensorType::fixed(DType::F32, &[4, 2]));
    let op = Op::Scan(Box::new(ScanAttrs {
        body: Body::new(b),
        num_state: 1,
        num_scan_inputs: 1,
        input_axes: vec![0],
        input_reverse: vec![reverse],
        output_axes: vec![-2],
        output_reverse: vec![reverse],
    }));
    let outs = node(
        &mut g,
        op,
        &[Some(s0), Some(xs)],
        &[("s_final", DType::F32), ("ys", DType::F32)],
    );
    g.add_output(outs[0], "s_final");
    g.add_output(outs[1], "ys");
    g
}

#[test]
fn scan_threads_state_forward_and_reversed() {
    let xs = Tensor::from_vec(
        vec![4, 2],
        vec![1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0],
    );
    let s0 = Tensor::from_vec(vec![2], vec![0.0f32, 0.0]);
    let mut g = scan_graph(false);
    g.verify().unwrap();
    infer_graph(&mut g).unwrap();
    assert_eq!(
        g.value_type(g.outputs()[1].value).concrete_shape(),
        Some(vec![4, 2])
    );
    let r = run(&g, &[("s0", s0.clone()), ("xs", xs.clone())]).unwrap();
    assert_eq!(
        out(&r, "s_final").as_slice::<f32>().unwrap(),
        &[10.0, 100.0]
    );
    let fwd = [1.0f32, 10.0, 3.0, 30.0, 6.0, 60.0, 10.0, 100.0];
    assert_eq!(out(&r, "ys").as_slice::<f32>().unwrap(), &fwd);

    let mut g = scan_graph(true);
    infer_graph(&mut g).unwrap();
    let r = run(&g, &[("s0", s0), ("xs", xs)]).unwrap();
    // Reversed input: running sums from the end, stored back in input order.
    let rev = [10.0f32, 100.0, 9.0, 90.0, 7.0, 70.0, 4.0, 40.0];
    assert_eq!(out(&r, "ys").as_slice::<f32>().unwrap(), &rev);
}

#[test]
fn a_failing_body_names_itself_in_the_error() {
    let mut g = scan_graph(false);
    let xs = Value::new(g.inputs()[1], 0);
    g.set_value_type(xs, TensorType::unknown_rank(DType::F32));
    infer_graph(&mut g).unwrap();
    let s0 = Tensor::from_vec(vec![2], vec![0.0f32, 0.0]);
    let xs = Tensor::from_vec(vec![3, 3], vec![0.0f32; 9]);
    let e = run(&g, &[("s0", s0), ("xs", xs)]).unwrap_err().to_string();
    assert!(e.contains("in body 'scan_body'"), "{e}");
}
