//! The native module of the `whittle` Python package: onnxruntime's `InferenceSession` API
//! (`run`, `get_inputs`, `get_outputs`, `SessionOptions`, `get_available_providers`) over
//! whittle's embedding API (`whittle::Model` → `compile` → `CompiledModel::run`). Inputs
//! are read in place from contiguous numpy arrays, the GIL is released while a model runs,
//! and a session may be shared by threads. Errors are exceptions named as onnxruntime's
//! (`InvalidArgument`, `NoSuchFile`, `InvalidGraph`, `NotImplemented`, `Fail`; a missing
//! input is a `ValueError`, as there) carrying whittle's one-line messages.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use whittle::{CompiledModel, DType, Dim, Model, Pipeline, Target, Tensor, TensorView};

pyo3::create_exception!(_whittle, Fail, PyRuntimeError, "A run or compile failure.");
pyo3::create_exception!(_whittle, InvalidArgument, Fail, "A bad input or argument.");
pyo3::create_exception!(_whittle, NoSuchFile, Fail, "The model file does not exist.");
pyo3::create_exception!(_whittle, InvalidGraph, Fail, "The model cannot be loaded.");
pyo3::create_exception!(
    _whittle,
    NotImplemented,
    Fail,
    "An op or form whittle lacks."
);

fn py_err(e: whittle::Error) -> PyErr {
    use whittle::Error as E;
    let msg = e.to_string();
    match &e {
        // onnxruntime's Python wrapper raises ValueError for a missing input.
        E::BadInputSet { why, .. } if why.contains("missing") => PyValueError::new_err(msg),
        E::UnknownInput { .. }
        | E::BadInputSet { .. }
        | E::DTypeMismatch { .. }
        | E::ShapeMismatch { .. }
        | E::InvalidArgument(_) => InvalidArgument::new_err(msg),
        E::Load(_) if msg.contains("unsupported op") => NotImplemented::new_err(msg),
        E::Load(_) if msg.contains("No such file") || msg.contains("not found") => {
            NoSuchFile::new_err(msg)
        }
        E::Load(_) | E::Graph(_) => InvalidGraph::new_err(msg),
        _ => Fail::new_err(msg),
    }
}

/// onnxruntime's spelling of a tensor type: `tensor(float)`, `tensor(int64)`, ...
fn ort_type(dt: DType) -> String {
    let s = match dt {
        DType::F32 => "float",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "double",
        DType::I8 => "int8",
        DType::U8 => "uint8",
        DType::I16 => "int16",
        DType::U16 => "uint16",
        DType::I32 => "int32",
        DType::U32 => "uint32",
        DType::I64 => "int64",
        DType::U64 => "uint64",
        DType::Bool => "bool",
    };
    format!("tensor({s})")
}

/// A model input or output as onnxruntime describes it.
#[pyclass(frozen, module = "whittle")]
struct NodeArg {
    #[pyo3(get)]
    name: String,
    /// Dims: ints, or strings for symbolic ones (`None` entries are never produced).
    #[pyo3(get)]
    shape: Vec<Py<PyAny>>,
    #[pyo3(get, name = "type")]
    ty: String,
}

#[pymethods]
impl NodeArg {
    fn __repr__(&self, py: Python<'_>) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.bind(py).repr().map(|r| r.to_string()).unwrap_or_default())
            .collect();
        format!(
            "NodeArg(name='{}', type='{}', shape=[{}])",
            self.name,
            self.ty,
            dims.join(", ")
        )
    }
}

fn node_args(py: Python<'_>, infos: &[whittle::TensorInfo]) -> PyResult<Vec<NodeArg>> {
    infos
        .iter()
        .map(|t| {
            let shape = t
                .shape
                .iter()
                .flatten()
                .map(|d| match d {
                    Dim::Known(n) => Ok(n.into_pyobject(py)?.into_any().unbind()),
                    Dim::Sym(s) => Ok(s.into_pyobject(py)?.into_any().unbind()),
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok(NodeArg {
                name: t.name.clone(),
                shape,
                ty: ort_type(t.dtype),
            })
        })
        .collect()
}

/// onnxruntime's `GraphOptimizationLevel` values.
#[pyclass(module = "whittle", eq, eq_int)]
#[derive(Clone, Copy, PartialEq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
enum GraphOptimizationLevel {
    ORT_DISABLE_ALL = 0,
    ORT_ENABLE_BASIC = 1,
    ORT_ENABLE_EXTENDED = 2,
    ORT_ENABLE_ALL = 99,
}

/// Session options: threads and how much whittle optimizes (disabled: the graph as loaded;
/// any other level: the exact pipeline), or a pass list of its own (`whittle_passes`).
#[pyclass(module = "whittle")]
#[derive(Clone)]
struct SessionOptions {
    /// Worker threads of the model (0: one per core, as onnxruntime).
    #[pyo3(get, set)]
    intra_op_num_threads: usize,
    /// Accepted for compatibility; whittle runs one graph at a time.
    #[pyo3(get, set)]
    inter_op_num_threads: usize,
    #[pyo3(get, set)]
    graph_optimization_level: GraphOptimizationLevel,
    /// A pass pipeline (`"exact"`, `"none"`, or `"a,b,c"`), overriding the level.
    #[pyo3(get, set)]
    whittle_passes: Option<String>,
}

#[pymethods]
impl SessionOptions {
    #[new]
    fn new() -> Self {
        SessionOptions {
            intra_op_num_threads: 0,
            inter_op_num_threads: 0,
            graph_optimization_level: GraphOptimizationLevel::ORT_ENABLE_ALL,
            whittle_passes: None,
        }
    }
}

/// onnxruntime's `InferenceSession` on a whittle-compiled model.
#[pyclass(frozen, module = "whittle")]
struct InferenceSession {
    compiled: CompiledModel,
    providers: Vec<String>,
}

const CPU: &str = "CPUExecutionProvider";
const REFERENCE: &str = "WhittleReferenceExecutionProvider";

fn provider_name(p: &Bound<'_, PyAny>) -> PyResult<String> {
    // onnxruntime also takes `(name, options)` tuples.
    if let Ok(s) = p.extract::<String>() {
        return Ok(s);
    }
    let (s, _): (String, Bound<'_, PyDict>) = p.extract()?;
    Ok(s)
}

#[pymethods]
impl InferenceSession {
    #[new]
    #[pyo3(signature = (path_or_bytes, sess_options=None, providers=None, **_kwargs))]
    fn new(
        py: Python<'_>,
        path_or_bytes: &Bound<'_, PyAny>,
        sess_options: Option<SessionOptions>,
        providers: Option<&Bound<'_, PyList>>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = sess_options.unwrap_or_else(SessionOptions::new);
        let mut names = vec![];
        for p in providers.into_iter().flatten() {
            names.push(provider_name(&p)?);
        }
        let target = match names.first().map(String::as_str) {
            None | Some(CPU) => Target::Cpu {
                threads: (opts.intra_op_num_threads > 0).then_some(opts.intra_op_num_threads),
            },
            Some(REFERENCE) => Target::Reference,
            Some(other) => {
                return Err(InvalidArgument::new_err(format!(
                    "unknown provider '{other}'; whittle has {CPU} and {REFERENCE}"
                )))
            }
        };
        let spec = match (&opts.whittle_passes, opts.graph_optimization_level) {
            (Some(s), _) => s.clone(),
            (None, GraphOptimizationLevel::ORT_DISABLE_ALL) => "none".into(),
            (None, _) => "exact".into(),
        };
        // Checked here for the error; built again where it runs (a pipeline is not `Sync`).
        Pipeline::parse(&spec).map_err(|e| InvalidArgument::new_err(e.to_string()))?;
        let model = if let Ok(b) = path_or_bytes.cast::<PyBytes>() {
            let bytes = b.as_bytes().to_vec();
            py.detach(|| Model::from_bytes(&bytes))
        } else {
            let path: std::path::PathBuf = path_or_bytes.extract()?;
            if !path.exists() {
                return Err(NoSuchFile::new_err(format!(
                    "Load model from {} failed: file does not exist",
                    path.display()
                )));
            }
            py.detach(|| Model::load(&path))
        }
        .map_err(py_err)?;
        let compiled = py
            .detach(|| -> whittle::Result<CompiledModel> {
                let pipeline = Pipeline::parse(&spec)?;
                model.optimize(&pipeline)?.compile(target)
            })
            .map_err(py_err)?;
        let providers = vec![match target {
            Target::Reference => REFERENCE.to_string(),
            _ => CPU.to_string(),
        }];
        Ok(InferenceSession {
            compiled,
            providers,
        })
    }

    fn get_inputs(&self, py: Python<'_>) -> PyResult<Vec<NodeArg>> {
        node_args(py, self.compiled.inputs())
    }

    fn get_outputs(&self, py: Python<'_>) -> PyResult<Vec<NodeArg>> {
        node_args(py, self.compiled.outputs())
    }

    fn get_providers(&self) -> Vec<String> {
        self.providers.clone()
    }

    /// `run(output_names, input_feed, run_options=None)`: the outputs named (all when
    /// `None`), as numpy arrays.
    #[pyo3(signature = (output_names, input_feed, run_options=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        output_names: Option<Vec<String>>,
        input_feed: &Bound<'py, PyDict>,
        run_options: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let _ = run_options;
        let mut arrays = Vec::with_capacity(input_feed.len());
        for (k, v) in input_feed.iter() {
            let name: String = k.extract()?;
            arrays.push((name, Input::from_py(py, &v)?));
        }
        let views: Vec<(&str, TensorView<'_>)> = arrays
            .iter()
            .map(|(n, a)| Ok((n.as_str(), a.view()?)))
            .collect::<PyResult<_>>()?;
        let compiled = &self.compiled;
        let outs = py.detach(|| compiled.run(&views)).map_err(py_err)?;
        let wanted: Vec<usize> = match output_names {
            None => (0..outs.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    outs.iter().position(|(o, _)| o == n).ok_or_else(|| {
                        let known: Vec<&str> = outs.iter().map(|(o, _)| o.as_str()).collect();
                        InvalidArgument::new_err(format!(
                            "unknown output '{n}' (the model's outputs are: {})",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<PyResult<_>>()?,
        };
        wanted
            .into_iter()
            .map(|i| to_numpy(py, &outs[i].1))
            .collect()
    }
}

/// One input as given: a borrowed contiguous numpy array (read in place), or a copy.
enum Input<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
    F16(PyReadonlyArrayDyn<'py, half::f16>),
    I8(PyReadonlyArrayDyn<'py, i8>),
    U8(PyReadonlyArrayDyn<'py, u8>),
    I16(PyReadonlyArrayDyn<'py, i16>),
    U16(PyReadonlyArrayDyn<'py, u16>),
    I32(PyReadonlyArrayDyn<'py, i32>),
    U32(PyReadonlyArrayDyn<'py, u32>),
    I64(PyReadonlyArrayDyn<'py, i64>),
    U64(PyReadonlyArrayDyn<'py, u64>),
    Bool(PyReadonlyArrayDyn<'py, bool>),
}

macro_rules! each_input {
    ($m:ident) => {
        $m!(F32, f32);
        $m!(F64, f64);
        $m!(F16, half::f16);
        $m!(I8, i8);
        $m!(U8, u8);
        $m!(I16, i16);
        $m!(U16, u16);
        $m!(I32, i32);
        $m!(U32, u32);
        $m!(I64, i64);
        $m!(U64, u64);
        $m!(Bool, bool);
    };
}

impl<'py> Input<'py> {
    fn from_py(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Input<'py>> {
        // numpy scalars and lists become arrays; a non-contiguous array is copied once.
        let np = py.import("numpy")?;
        let arr = np.call_method1("ascontiguousarray", (v,))?;
        macro_rules! try_as {
            ($v:ident, $t:ty) => {
                if let Ok(a) = arr.extract::<PyReadonlyArrayDyn<'py, $t>>() {
                    return Ok(Input::$v(a));
                }
            };
        }
        each_input!(try_as);
        let dt = arr
            .getattr("dtype")
            .and_then(|d| d.str().map(|s| s.to_string()))
            .unwrap_or_else(|_| "?".into());
        Err(InvalidArgument::new_err(format!(
            "unsupported input element type {dt} (whittle takes numeric and bool arrays)"
        )))
    }

    fn view(&self) -> PyResult<TensorView<'_>> {
        macro_rules! as_view {
            ($($v:ident),*) => {
                match self {
                    $(Input::$v(a) => {
                        let s = a.as_slice().map_err(|e| Fail::new_err(e.to_string()))?;
                        Ok(TensorView::new(s, a.shape()))
                    })*
                }
            };
        }
        as_view!(F32, F64, F16, I8, U8, I16, U16, I32, U32, I64, U64, Bool)
    }
}

fn to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    macro_rules! out {
        ($v:ident, $t:ty) => {
            if t.dtype() == DType::$v {
                let s = t
                    .as_slice::<$t>()
                    .ok_or_else(|| Fail::new_err("tensor data"))?;
                let a = PyArray1::<$t>::from_slice(py, s).reshape(t.shape())?;
                return Ok(a.into_any());
            }
        };
    }
    each_input!(out);
    if t.dtype() == DType::BF16 {
        // numpy has no bfloat16: widen to float32.
        let v: Vec<f32> = t.to_f64_vec().into_iter().map(|x| x as f32).collect();
        let a = PyArray1::<f32>::from_vec(py, v).reshape(t.shape())?;
        return Ok(a.into_any());
    }
    Err(Fail::new_err(format!(
        "output dtype {} has no numpy type",
        t.dtype()
    )))
}

/// onnxruntime's `get_available_providers()`.
#[pyfunction]
fn get_available_providers() -> Vec<&'static str> {
    vec![CPU, REFERENCE]
}

/// `optimize(path, output_path, passes="exact")`: writes the optimized model as ONNX.
#[pyfunction]
#[pyo3(signature = (path, output_path, passes="exact"))]
fn optimize(
    py: Python<'_>,
    path: std::path::PathBuf,
    output_path: std::path::PathBuf,
    passes: &str,
) -> PyResult<()> {
    Pipeline::parse(passes).map_err(|e| InvalidArgument::new_err(e.to_string()))?;
    let passes = passes.to_string();
    py.detach(|| -> Result<(), whittle::Error> {
        let pipeline = Pipeline::parse(&passes)?;
        let m = Model::load(&path)?.optimize(&pipeline)?;
        m.save(&output_path)
    })
    .map_err(py_err)
}

#[pymodule]
fn _whittle(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<InferenceSession>()?;
    m.add_class::<SessionOptions>()?;
    m.add_class::<GraphOptimizationLevel>()?;
    m.add_class::<NodeArg>()?;
    m.add_function(wrap_pyfunction!(get_available_providers, m)?)?;
    m.add_function(wrap_pyfunction!(optimize, m)?)?;
    for (name, e) in [
        ("Fail", py.get_type::<Fail>()),
        ("InvalidArgument", py.get_type::<InvalidArgument>()),
        ("NoSuchFile", py.get_type::<NoSuchFile>()),
        ("InvalidGraph", py.get_type::<InvalidGraph>()),
        ("NotImplemented", py.get_type::<NotImplemented>()),
    ] {
        m.add(name, e)?;
    }
    Ok(())
}
