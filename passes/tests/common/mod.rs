//! Helpers shared by the pass integration tests: seeded random inputs, a relative error,
//! running a pass list, comparing a graph before and after under `ir::eval`, and reading
//! the filetests' inputs.
#![allow(dead_code)]

use whittle_ir::eval::run;
use whittle_ir::{Graph, Tensor};
use whittle_passes::{PassContext, Pipeline};

/// Deterministic uniform values in [-2, 2).
pub fn random(n: usize, seed: &mut u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

/// Random values for every graph input (symbolic dims become 3). An input named `m` gets
/// non-negative values (the filetests use it for variances).
pub fn inputs(g: &Graph, seed: &mut u64) -> Vec<(String, Tensor)> {
    (0..g.inputs().len())
        .map(|i| {
            let ty = g.input_type(i);
            let shape: Vec<usize> = ty
                .shape
                .as_ref()
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap_or(3))
                .collect();
            let mut v = random(shape.iter().product(), seed);
            if g.input_name(i) == "m" {
                v.iter_mut().for_each(|x| *x = x.abs());
            }
            (
                g.input_name(i).to_string(),
                Tensor::from_f64(ty.dtype, shape, &v),
            )
        })
        .collect()
}

/// Largest |a − b| over the largest |a|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    let scale = a.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// `g` after the comma-separated `passes`, verified after every change.
pub fn apply(g: &Graph, passes: &str) -> Graph {
    let mut h = g.clone();
    Pipeline::parse(passes)
        .unwrap()
        .run(
            &mut h,
            &mut PassContext {
                verify: true,
                ..Default::default()
            },
        )
        .unwrap();
    h
}

/// Largest relative output error between `g` and `h` over `rounds` random inputs.
pub fn max_err(g: &Graph, h: &Graph, mut seed: u64, rounds: usize) -> f64 {
    let mut worst = 0.0f64;
    for _ in 0..rounds {
        let ins = inputs(g, &mut seed);
        let refs: Vec<(&str, Tensor)> = ins.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let want = run(g, &refs).unwrap();
        let got = run(h, &refs).unwrap();
        for ((_, w), (_, o)) in want.iter().zip(&got) {
            worst = worst.max(rel_err(w, o));
        }
    }
    worst
}

/// One filetest's input side: its path, the text before `# expected:` and its pass list.
pub struct FileTest {
    pub path: std::path::PathBuf,
    pub head: String,
    pub passes: String,
}

impl FileTest {
    /// Whether the file is a declined case (`*_declined.wir`: the graph must not change).
    pub fn declined(&self) -> bool {
        self.path.to_string_lossy().ends_with("_declined.wir")
    }
}

/// The `.wir` files of `tests/filetests/<dir>`, sorted by name.
pub fn filetests(dir: &str) -> Vec<FileTest> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests");
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wir"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let head = text.split("# expected:").next().unwrap().to_string();
            let passes = head
                .lines()
                .find_map(|l| l.strip_prefix("# passes:"))
                .unwrap_or_else(|| panic!("{}: no '# passes:' line", path.display()))
                .trim()
                .to_string();
            FileTest { path, head, passes }
        })
        .collect()
}
