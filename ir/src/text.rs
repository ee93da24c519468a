//! The IR text format: a printer and a parser that round-trip, used by filetests and
//! `--print-ir-after-change`.
//!
//! ```text
//! graph "tiny" {
//!   input %x: f32[batch,4]
//!   %w = const f32[4,2] [1, 2, 3, 4, 5, 6, 7, 8]
//!   %y = MatMul %x, %w : f32[batch,2]
//!   %z, %m = Dropout %y, _, _ : f32[batch,2], bool[batch,2] @drop0
//!   output %z as "out"
//! }
//! ```
//!
//! An op is written in RON (`Softmax(axis:-1,coerce_2d:false)`); `_` is an absent optional
//! input; `@name` gives the node name when it differs from its first output's name.

use crate::{DType, Dim, Graph, GraphOutput, IrError, Op, Tensor, TensorType, Value, ValueInfo};
use std::collections::HashMap;
use std::fmt::Write;

/// Prints the whole graph. Constants are printed in full, so the text parses back to an
/// equal graph.
pub fn print_graph(g: &Graph) -> Result<String, IrError> {
    Ok(print_graph_with_blobs(g, usize::MAX)?.0)
}

/// [`print_graph`], except that constants of at least `min_elems` elements are printed as
/// `const f32[384,384] blob 7`: a reference to entry 7 of the returned list (in order of
/// appearance), whose little-endian bytes the caller stores elsewhere; see
/// [`parse_graph_with_blobs`]. Used by AOT objects to keep weights binary.
pub fn print_graph_with_blobs(
    g: &Graph,
    min_elems: usize,
) -> Result<(String, Vec<std::sync::Arc<crate::Tensor>>), IrError> {
    let mut blobs = Vec::new();
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", quote(&g.name));
    for i in 0..g.inputs().len() {
        let _ = writeln!(
            s,
            "  input {}: {}",
            value_ref(g.input_name(i)),
            g.input_type(i)
        );
    }
    for id in g.topo_order()? {
        let n = g.node(id);
        if matches!(n.op, Op::Input(_)) {
            continue;
        }
        let outs: Vec<String> = n.outputs.iter().map(|o| value_ref(&o.name)).collect();
        let _ = write!(s, "  {} = ", outs.join(", "));
        if let Op::Constant(t) = &n.op {
            let ty = TensorType::fixed(t.dtype(), t.shape());
            if t.len() >= min_elems {
                let _ = write!(s, "const {ty} blob {}", blobs.len());
                blobs.push(t.clone());
            } else {
                let _ = write!(s, "const {ty} {}", tensor_values(t));
            }
        } else {
            let op = ron::to_string(&n.op)
                .map_err(|e| IrError::Graph(format!("cannot print op: {e}")))?;
            let args: Vec<String> = g
                .node_inputs(id)
                .iter()
                .map(|v| match v {
                    Some(v) => value_ref(&g.value_info(*v).name),
                    None => "_".to_string(),
                })
                .collect();
            let tys: Vec<String> = n.outputs.iter().map(|o| o.ty.to_string()).collect();
            let _ = write!(s, "{op}");
            if !args.is_empty() {
                let _ = write!(s, " {}", args.join(", "));
            }
            let _ = write!(s, " : {}", tys.join(", "));
        }
        if n.outputs.first().map(|o| o.name != n.name).unwrap_or(true) {
            let _ = write!(s, " @{}", name_token(&n.name));
        }
        s.push('\n');
    }
    for o in g.outputs() {
        let vname = &g.value_info(o.value).name;
        if *vname == o.name {
            let _ = writeln!(s, "  output {}", value_ref(vname));
        } else {
            let _ = writeln!(s, "  output {} as {}", value_ref(vname), quote(&o.name));
        }
    }
    s.push_str("}\n");
    Ok((s, blobs))
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn name_token(name: &str) -> String {
    if is_plain(name) {
        name.to_string()
    } else {
        quote(name)
    }
}

fn value_ref(name: &str) -> String {
    format!("%{}", name_token(name))
}

fn tensor_values(t: &Tensor) -> String {
    let items: Vec<String> = match t.dtype() {
        DType::Bool => t
            .to_i64_vec()
            .iter()
            .map(|&b| (b != 0).to_string())
            .collect(),
        DType::F32 => t
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|x| fmt_float(*x as f64, true))
            .collect(),
        DType::F64 => t
            .as_slice::<f64>()
            .unwrap()
            .iter()
            .map(|x| fmt_float(*x, false))
            .collect(),
        DType::F16 | DType::BF16 => t.to_f64_vec().iter().map(|x| fmt_float(*x, true)).collect(),
        DType::U64 => t
            .as_slice::<u64>()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect(),
        _ => t.to_i64_vec().iter().map(|x| x.to_string()).collect(),
    };
    format!("[{}]", items.join(", "))
}

/// Shortest text that parses back to the same value (f32 precision when `single`).
fn fmt_float(x: f64, single: bool) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if single {
        format!("{:?}", x as f32)
    } else {
        format!("{x:?}")
    }
}

/// Parses the text format back into a graph.
pub fn parse_graph(text: &str) -> Result<Graph, IrError> {
    parse_graph_with_blobs(text, &[])
}

/// [`parse_graph`] where `const T blob N` takes its values from `blobs[N]`: the tensor's
/// little-endian bytes, which must be exactly `T`'s size.
pub fn parse_graph_with_blobs(text: &str, blobs: &[&[u8]]) -> Result<Graph, IrError> {
    Parser {
        values: HashMap::new(),
        graph: Graph::default(),
        blobs,
    }
    .run(text)
}

struct Parser<'b> {
    values: HashMap<String, Value>,
    graph: Graph,
    blobs: &'b [&'b [u8]],
}

fn perr(line: usize, msg: impl Into<String>) -> IrError {
    IrError::Parse {
        line,
        msg: msg.into(),
    }
}

/// A tiny cursor over one line.
struct Cur<'a> {
    s: &'a str,
    line: usize,
}

impl<'a> Cur<'a> {
    fn ws(&mut self) {
        self.s = self.s.trim_start();
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if let Some(r) = self.s.strip_prefix(tok) {
            self.s = r;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, tok: &str) -> Result<(), IrError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(perr(self.line, format!("expected '{tok}' at '{}'", self.s)))
        }
    }
    /// A plain name or a quoted string.
    fn name(&mut self) -> Result<String, IrError> {
        self.ws();
        if self.s.starts_with('"') {
            let end = quoted_end(self.s).ok_or_else(|| perr(self.line, "unterminated string"))?;
            let lit = &self.s[..end];
            self.s = &self.s[end..];
            unquote(lit).ok_or_else(|| perr(self.line, format!("bad string {lit}")))
        } else {
            let end = self
                .s
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
                .unwrap_or(self.s.len());
            if end == 0 {
                return Err(perr(self.line, format!("expected a name at '{}'", self.s)));
            }
            let n = &self.s[..end];
            self.s = &self.s[end..];
            Ok(n.to_string())
        }
    }
    fn value_name(&mut self) -> Result<String, IrError> {
        self.expect("%")?;
        self.name()
    }
    fn ty(&mut self) -> Result<TensorType, IrError> {
        self.ws();
        let end = self
            .s
            .find('[')
            .ok_or_else(|| perr(self.line, "expected a type like f32[2,3]"))?;
        let dtype = DType::from_name(&self.s[..end])
            .ok_or_else(|| perr(self.line, format!("unknown dtype '{}'", &self.s[..end])))?;
        self.s = &self.s[end + 1..];
        let close = self
            .s
            .find(']')
            .ok_or_else(|| perr(self.line, "missing ']' in type"))?;
        let body = &self.s[..close];
        self.s = &self.s[close + 1..];
        if body == "*" {
            return Ok(TensorType::unknown_rank(dtype));
        }
        let dims = if body.is_empty() {
            vec![]
        } else {
            body.split(',')
                .map(|d| match d.trim().parse::<usize>() {
                    Ok(n) => Dim::Known(n),
                    Err(_) => Dim::Sym(d.trim().to_string()),
                })
                .collect()
        };
        Ok(TensorType::new(dtype, dims))
    }
}

fn quoted_end(s: &str) -> Option<usize> {
    let mut esc = false;
    for (i, c) in s.char_indices().skip(1) {
        match (esc, c) {
            (true, _) => esc = false,
            (false, '\\') => esc = true,
            (false, '"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn unquote(lit: &str) -> Option<String> {
    ron::from_str::<String>(lit).ok()
}

/// Length of the RON op text at the start of `s`: an identifier plus balanced parentheses.
fn op_len(s: &str) -> usize {
    let ident = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if !s[ident..].starts_with('(') {
        return ident;
    }
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for (i, c) in s.char_indices().skip(ident) {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}

impl Parser<'_> {
    fn run(mut self, text: &str) -> Result<Graph, IrError> {
        let mut seen_header = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with("//") {
                continue;
            }
            let mut c = Cur { s: l, line };
            if !seen_header {
                c.expect("graph")?;
                self.graph.name = c.name()?;
                c.expect("{")?;
                seen_header = true;
            } else if l == "}" {
                return Ok(self.graph);
            } else if c.eat("input ") {
                let name = c.value_name()?;
                c.expect(":")?;
                let ty = c.ty()?;
                let v = self.graph.add_input(name.clone(), ty);
                self.define(line, name, v)?;
            } else if c.eat("output ") {
                let vname = c.value_name()?;
                let v = self.lookup(line, &vname)?;
                let name = if c.eat("as") { c.name()? } else { vname };
                self.graph.add_output(v, name);
            } else {
                self.node_line(&mut c)?;
            }
        }
        Err(perr(text.lines().count(), "missing closing '}'"))
    }

    fn define(&mut self, line: usize, name: String, v: Value) -> Result<(), IrError> {
        if self.values.insert(name.clone(), v).is_some() {
            return Err(perr(line, format!("value %{name} is defined twice")));
        }
        Ok(())
    }

    fn lookup(&self, line: usize, name: &str) -> Result<Value, IrError> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| perr(line, format!("unknown value %{name}")))
    }

    fn node_line(&mut self, c: &mut Cur) -> Result<(), IrError> {
        let line = c.line;
        let mut outs = vec![c.value_name()?];
        while c.eat(",") {
            outs.push(c.value_name()?);
        }
        c.expect("=")?;
        c.ws();
        let (op, inputs, tys) = if c.eat("const ") {
            let ty = c.ty()?;
            let shape = ty
                .concrete_shape()
                .ok_or_else(|| perr(line, "a constant needs a concrete shape"))?;
            c.ws();
            let t = if c.eat("blob ") {
                let digits =
                    c.s.len() - c.s.trim_start_matches(|ch: char| ch.is_ascii_digit()).len();
                let k: usize = c.s[..digits]
                    .parse()
                    .map_err(|_| perr(line, "expected a blob index after 'blob'"))?;
                c.s = &c.s[digits..];
                let bytes = self
                    .blobs
                    .get(k)
                    .ok_or_else(|| perr(line, format!("blob {k} was not given")))?;
                crate::Tensor::from_le_bytes(ty.dtype, shape, bytes)
                    .map_err(|e| perr(line, format!("blob {k}: {e}")))?
            } else {
                let end =
                    c.s.find(']')
                        .ok_or_else(|| perr(line, "missing ']' after constant values"))?;
                let body =
                    c.s.get(1..end)
                        .ok_or_else(|| perr(line, "expected '[' before constant values"))?;
                c.s = &c.s[end + 1..];
                parse_values(line, ty.dtype, shape, body)?
            };
            (Op::Constant(std::sync::Arc::new(t)), vec![], vec![ty])
        } else {
            let n = op_len(c.s);
            let op: Op = ron::from_str(&c.s[..n])
                .map_err(|e| perr(line, format!("bad op '{}': {e}", &c.s[..n])))?;
            c.s = &c.s[n..];
            let mut inputs = vec![];
            c.ws();
            if !c.s.starts_with(':') {
                loop {
                    if c.eat("_") {
                        inputs.push(None);
                    } else {
                        let name = c.value_name()?;
                        inputs.push(Some(self.lookup(line, &name)?));
                    }
                    if !c.eat(",") {
                        break;
                    }
                }
            }
            c.expect(":")?;
            let mut tys = vec![c.ty()?];
            while c.eat(",") {
                tys.push(c.ty()?);
            }
            (op, inputs, tys)
        };
        if tys.len() != outs.len() {
            return Err(perr(
                line,
                format!("{} outputs but {} types", outs.len(), tys.len()),
            ));
        }
        let node_name = if c.eat("@") {
            c.name()?
        } else {
            outs[0].clone()
        };
        c.ws();
        if !c.s.is_empty() {
            return Err(perr(line, format!("unexpected text '{}'", c.s)));
        }
        let infos = outs
            .iter()
            .zip(tys)
            .map(|(n, ty)| ValueInfo {
                name: n.clone(),
                ty,
            })
            .collect();
        let id = self.graph.add_node(op, node_name, &inputs, infos);
        for (p, n) in outs.into_iter().enumerate() {
            self.define(line, n, Value::new(id, p))?;
        }
        Ok(())
    }
}

fn parse_values(
    line: usize,
    dtype: DType,
    shape: Vec<usize>,
    body: &str,
) -> Result<Tensor, IrError> {
    let items: Vec<&str> = body
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let bad = |s: &str| perr(line, format!("bad {dtype} value '{s}'"));
    let t = if dtype.is_float() {
        let mut v = Vec::with_capacity(items.len());
        for s in &items {
            v.push(match *s {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ if dtype == DType::F64 => s.parse::<f64>().map_err(|_| bad(s))?,
                _ => s.parse::<f32>().map_err(|_| bad(s))? as f64,
            });
        }
        check_len(line, &shape, v.len())?;
        Tensor::from_f64(dtype, shape, &v)
    } else if dtype == DType::Bool {
        let v: Result<Vec<i64>, _> = items
            .iter()
            .map(|s| match *s {
                "true" => Ok(1),
                "false" => Ok(0),
                _ => Err(bad(s)),
            })
            .collect();
        let v = v?;
        check_len(line, &shape, v.len())?;
        Tensor::from_i64(dtype, shape, &v)
    } else if dtype == DType::U64 {
        let v: Result<Vec<u64>, _> = items
            .iter()
            .map(|s| s.parse::<u64>().map_err(|_| bad(s)))
            .collect();
        let v = v?;
        check_len(line, &shape, v.len())?;
        Tensor::from_vec(shape, v)
    } else {
        let v: Result<Vec<i64>, _> = items
            .iter()
            .map(|s| s.parse::<i64>().map_err(|_| bad(s)))
            .collect();
        let v = v?;
        check_len(line, &shape, v.len())?;
        Tensor::from_i64(dtype, shape, &v)
    };
    Ok(t)
}

fn check_len(line: usize, shape: &[usize], n: usize) -> Result<(), IrError> {
    let want: usize = shape.iter().product();
    if want != n {
        return Err(perr(
            line,
            format!("shape {shape:?} needs {want} values, found {n}"),
        ));
    }
    Ok(())
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match print_graph(self) {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "<unprintable graph: {e}>"),
        }
    }
}

#[allow(dead_code)]
fn _assert_output_type(_: GraphOutput) {}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"graph "tiny" {
  input %x: f32[batch,4]
  input %"odd name:0": i64[2]
  %w = const f32[4,2] [1.0, 2.5, -3.0, 4.0, 0.1, 6.0, nan, -inf]
  %y = MatMul %x, %w : f32[batch,2]
  %s = Softmax(axis:-1,coerce_2d:false) %y : f32[batch,2] @"soft/max"
  %z, %m = Dropout %s, _, _ : f32[batch,2], bool[batch,2] @drop0
  %e = Einsum(equation:"ij, jk->ik") %x, %w : f32[batch,2]
  %b = const bool[3] [true, false, true]
  %h = const f16[2] [0.5, -2.0]
  output %z as "out"
  output %"odd name:0"
}
"#;

    #[test]
    fn round_trips() {
        let g = parse_graph(SAMPLE).unwrap();
        let printed = print_graph(&g).unwrap();
        let again = print_graph(&parse_graph(&printed).unwrap()).unwrap();
        assert_eq!(printed, again);
        assert_eq!(g.outputs().len(), 2);
        assert_eq!(g.outputs()[0].name, "out");
        assert!(printed.contains("@\"soft/max\""), "{printed}");
        assert!(printed.contains("equation:\"ij, jk->ik\""), "{printed}");
    }

    #[test]
    fn constants_can_live_in_binary_blobs() {
        let g = parse_graph(SAMPLE).unwrap();
        let (text, blobs) = print_graph_with_blobs(&g, 3).unwrap();
        assert!(text.contains("const f32[4,2] blob 0"), "{text}");
        assert!(text.contains("const bool[3] blob 1"), "{text}");
        assert!(text.contains("const f16[2] [0.5, -2.0]"), "{text}");
        let bytes: Vec<Vec<u8>> = blobs.iter().map(|t| t.to_le_bytes()).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
        let back = parse_graph_with_blobs(&text, &refs).unwrap();
        assert_eq!(print_graph(&back).unwrap(), print_graph(&g).unwrap());
        // A missing or wrongly sized blob is a parse error naming the line.
        assert!(parse_graph_with_blobs(&text, &refs[..1]).is_err());
        let short = [refs[0], &refs[1][..2]];
        assert!(matches!(
            parse_graph_with_blobs(&text, &short).unwrap_err(),
            IrError::Parse { .. }
        ));
    }

    #[test]
    fn reports_errors_with_lines() {
        let bad = "graph \"g\" {\n  input %x: f32[2]\n  %y = Relu %nope : f32[2]\n}\n";
        let e = parse_graph(bad).unwrap_err();
        assert!(matches!(e, IrError::Parse { line: 3, .. }), "{e}");
        let bad = "graph \"g\" {\n  %c = const f32[3] [1.0, 2.0]\n}\n";
        assert!(matches!(
            parse_graph(bad).unwrap_err(),
            IrError::Parse { line: 2, .. }
        ));
        let bad = "graph \"g\" {\n  input %x: q7[2]\n}\n";
        assert!(parse_graph(bad).is_err());
    }
}
