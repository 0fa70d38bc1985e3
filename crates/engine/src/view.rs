//! The lazy migrated view: a checkpoint seen in another layout, computed on demand.
//!
//! A [`MigratedView`] holds the source checkpoint (and any auxiliary inputs), and one
//! planned expression per output tensor. Names, dtypes and shapes come from the plan alone.
//! A tensor whose simplified expression is a contiguous byte range of a source (renames,
//! reshapes, first-axis splits and truncations) is borrowed from the memory map; anything
//! else is computed by the pure kernels of `safeshift-ops`, reading sources from the map.
//! Row slices are pushed down to the sources, so a rank of a distributed job that reads
//! its rows of a tensor touches only those bytes when the chain allows it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use safeshift_model::{Layout, TensorInfo};
use safeshift_ops::{
    byte_range, evaluate, evaluate_into, narrow_rows, simplify, ByteRange, EvalError, Expr, Leaf, PlannedTensor,
};

use crate::checkpoint::{Checkpoint, TensorLocation};
use crate::error::{ReadError, WriteError};
use crate::writer::{write, OutputTensor, TensorSource, WriteOptions, WriteSummary};

/// A checkpoint seen through a plan. See the [module docs](self).
pub struct MigratedView {
    source: Checkpoint,
    aux: BTreeMap<String, Checkpoint>,
    layout: Layout,
    planned: Vec<Planned>,
    by_name: HashMap<String, usize>,
}

struct Planned {
    expr: Expr,
    range: Option<ByteRange>,
}

/// Why the view could not give a tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The view has no tensor of that name.
    #[error("no tensor `{0}` in the migrated checkpoint")]
    UnknownTensor(String),
    /// The plan reads a tensor the source does not have, or has with another type.
    #[error("the plan for `{tensor}` reads `{leaf}`, which {problem}")]
    BadLeaf {
        /// The output tensor.
        tensor: String,
        /// The source tensor read.
        leaf: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The plan needs an auxiliary input that was not given.
    #[error("the plan for `{tensor}` needs the auxiliary input `{input}`, which was not given")]
    MissingAux {
        /// The output tensor.
        tensor: String,
        /// The aux input's name.
        input: String,
    },
    /// Reading a source failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Computing a tensor failed.
    #[error("cannot compute `{tensor}`: {source}")]
    Eval {
        /// The output tensor.
        tensor: String,
        /// What the kernel said.
        #[source]
        source: EvalError,
    },
}

impl MigratedView {
    /// A view of `source` (with `aux` inputs by name) whose tensors are `planned`, in that
    /// order, with `metadata` as the result's `__metadata__`. Every leaf of every
    /// expression is checked against the sources now, so reads cannot fail for a plan
    /// that does not fit the file. Nothing else is redone: a [`PlannedTensor`]'s
    /// expression is already simplified and its dtype and shape are the expression's.
    pub fn new(
        source: Checkpoint,
        aux: BTreeMap<String, Checkpoint>,
        planned: Vec<PlannedTensor>,
        metadata: BTreeMap<String, String>,
    ) -> Result<MigratedView, ViewError> {
        let mut layout = Layout { tensors: Vec::with_capacity(planned.len()), metadata };
        let mut entries = Vec::with_capacity(planned.len());
        let mut by_name = HashMap::with_capacity(planned.len());
        for tensor in planned {
            check_leaves(tensor.name(), tensor.expr(), &source, &aux)?;
            let range = tensor.byte_range();
            let (info, expr) = tensor.into_parts();
            by_name.insert(info.name.clone(), entries.len());
            entries.push(Planned { expr, range });
            layout.tensors.push(info);
        }
        Ok(MigratedView { source, aux, layout, planned: entries, by_name })
    }

    /// The result's layout: names (in plan order), dtypes, shapes and metadata.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The result's tensor names, in plan order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.layout.tensors.iter().map(|tensor| tensor.name.as_str())
    }

    /// The name, dtype and shape of tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&index| &self.layout.tensors[index])
    }

    /// The result's `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.layout.metadata
    }

    /// The checkpoint the view reads.
    pub fn source(&self) -> &Checkpoint {
        &self.source
    }

    /// Whether `tensor(name)` borrows its bytes from the source map instead of computing.
    pub fn is_zero_copy(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|&index| self.planned[index].range.is_some())
    }

    /// The bytes of tensor `name`: borrowed from the map when its expression is a byte
    /// range of a source, computed otherwise.
    pub fn tensor(&self, name: &str) -> Result<Cow<'_, [u8]>, ViewError> {
        let index = self.index(name)?;
        let planned = &self.planned[index];
        if let Some(range) = &planned.range {
            return Ok(Cow::Borrowed(self.range_bytes(name, range)?));
        }
        self.compute(name, &planned.expr).map(Cow::Owned)
    }

    /// Rows `rows` of the first axis of tensor `name` (for one rank of a tensor-parallel
    /// job). The slice is pushed down to the sources: when the sliced chain is a byte
    /// range, only those bytes are touched and they are borrowed.
    pub fn slice(&self, name: &str, rows: Range<u64>) -> Result<Cow<'_, [u8]>, ViewError> {
        let index = self.index(name)?;
        let narrowed = narrow_rows(&self.planned[index].expr, rows)
            .map_err(|source| ViewError::Eval { tensor: name.to_owned(), source })?;
        // Simplified once for both uses: the range test and the kernels.
        let narrowed = simplify(narrowed);
        if let Some(range) = byte_range(&narrowed) {
            return Ok(Cow::Borrowed(self.range_bytes(name, &range)?));
        }
        self.compute(name, &narrowed).map(Cow::Owned)
    }

    /// Unmaps this process's pages of the source tensors `name` reads (`madvise`, see the
    /// writer's use): a loader that has copied the tensor where it belongs keeps its resident
    /// set bounded instead of growing by every page it read. The bytes stay in the page
    /// cache and later reads fault them in again; bytes a client wrote into the
    /// copy-on-write map through a borrowed tensor are lost. Advisory: errors are ignored.
    pub fn release(&self, name: &str) {
        if let Some(&index) = self.by_name.get(name) {
            self.release_sources(name, &self.planned[index].expr);
        }
    }

    /// Writes the result to `path` with the engine's atomic writer. Byte ranges are copied
    /// from the source file (`copy_file_range` where the OS allows); computed tensors are
    /// produced one at a time, so memory stays bounded by the largest of them.
    pub fn write_to(&self, path: &Path, options: &WriteOptions) -> Result<WriteSummary, WriteError> {
        let mut options = options.clone();
        for (key, value) in &self.layout.metadata {
            options.metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        let mut tensors = Vec::with_capacity(self.planned.len());
        for (info, planned) in self.layout.tensors.iter().zip(&self.planned) {
            let source = match planned.range.as_ref().and_then(|range| self.range_location(range)) {
                Some(location) => TensorSource::File(location),
                None => {
                    let name = info.name.clone();
                    let expr = &planned.expr;
                    TensorSource::Generate(Box::new(move |buffer: &mut [u8]| {
                        self.compute_into(&name, expr, buffer)?;
                        // The sources' pages were read once for this tensor: unmap them,
                        // so the resident set stays bounded by the largest computed
                        // tensor rather than growing with every source touched.
                        self.release_sources(&name, expr);
                        Ok(())
                    }))
                }
            };
            tensors.push(OutputTensor {
                name: info.name.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                source,
            });
        }
        write(path, tensors, &options)
    }

    fn index(&self, name: &str) -> Result<usize, ViewError> {
        self.by_name.get(name).copied().ok_or_else(|| ViewError::UnknownTensor(name.to_owned()))
    }

    fn checkpoint_of(&self, tensor: &str, aux: Option<&str>) -> Result<&Checkpoint, ViewError> {
        match aux {
            None => Ok(&self.source),
            Some(input) => self
                .aux
                .get(input)
                .ok_or_else(|| ViewError::MissingAux { tensor: tensor.to_owned(), input: input.to_owned() }),
        }
    }

    fn release_sources(&self, tensor: &str, expr: &Expr) {
        let mut leaves = Vec::new();
        collect_leaves(expr, &mut leaves);
        for leaf in leaves {
            if let Ok(checkpoint) = self.checkpoint_of(tensor, leaf.aux.as_deref()) {
                checkpoint.release_pages(&leaf.name);
            }
        }
    }

    fn range_bytes(&self, tensor: &str, range: &ByteRange) -> Result<&[u8], ViewError> {
        let bytes = self.checkpoint_of(tensor, range.aux.as_deref())?.tensor_bytes(&range.source)?;
        // The leaf was checked against the header in `new`, and `byte_range` stays within
        // the leaf's byte count, so this slice is in bounds.
        Ok(&bytes[range.start as usize..range.end as usize])
    }

    fn range_location(&self, range: &ByteRange) -> Option<TensorLocation<'_>> {
        let checkpoint = match &range.aux {
            None => &self.source,
            Some(input) => self.aux.get(input)?,
        };
        let whole = checkpoint.tensor_location(&range.source)?;
        Some(TensorLocation { offset: whole.offset + range.start, len: range.end - range.start, ..whole })
    }

    /// Like `compute`, straight into the writer's buffer: transposes and head splits are
    /// copied from the map into the output with no intermediate buffer.
    fn compute_into(&self, tensor: &str, expr: &Expr, out: &mut [u8]) -> Result<(), ViewError> {
        let fetch = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, ViewError> {
            let checkpoint = self.checkpoint_of(tensor, leaf.aux.as_deref())?;
            Ok(Cow::Borrowed(checkpoint.tensor_bytes(&leaf.name)?))
        };
        evaluate_into(expr, out, &fetch).map_err(|source| ViewError::Eval { tensor: tensor.to_owned(), source })
    }

    fn compute(&self, tensor: &str, expr: &Expr) -> Result<Vec<u8>, ViewError> {
        let fetch = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, ViewError> {
            let checkpoint = self.checkpoint_of(tensor, leaf.aux.as_deref())?;
            Ok(Cow::Borrowed(checkpoint.tensor_bytes(&leaf.name)?))
        };
        evaluate(expr, &fetch).map_err(|source| ViewError::Eval { tensor: tensor.to_owned(), source })
    }
}

/// Checks that every leaf of `expr` exists in its checkpoint with the type it expects.
fn check_leaves(
    tensor: &str,
    expr: &Expr,
    source: &Checkpoint,
    aux: &BTreeMap<String, Checkpoint>,
) -> Result<(), ViewError> {
    let mut leaves = Vec::new();
    collect_leaves(expr, &mut leaves);
    for leaf in leaves {
        let checkpoint = match &leaf.aux {
            None => source,
            Some(input) => aux
                .get(input)
                .ok_or_else(|| ViewError::MissingAux { tensor: tensor.to_owned(), input: input.clone() })?,
        };
        let bad = |problem: String| ViewError::BadLeaf { tensor: tensor.to_owned(), leaf: leaf.name.clone(), problem };
        let Some(info) = checkpoint.tensor(&leaf.name) else {
            return Err(bad(format!("is not in `{}`", checkpoint.path().display())));
        };
        if !leaf.dtype.accepts(info.dtype) {
            return Err(bad(format!("is {} where the plan expects {}", info.dtype, leaf.dtype)));
        }
        let expected: Option<Vec<u64>> =
            leaf.shape.iter().map(|dim| dim.as_int().and_then(|value| u64::try_from(value).ok())).collect();
        if expected.as_deref() != Some(info.shape.as_slice()) {
            return Err(bad(format!("has shape {:?} where the plan expects {}", info.shape, shape_text(&leaf.shape))));
        }
    }
    Ok(())
}

fn shape_text(shape: &[safeshift_model::Sym]) -> String {
    format!("[{}]", safeshift_ops::shape_text(shape))
}

fn collect_leaves<'a>(expr: &'a Expr, out: &mut Vec<&'a Leaf>) {
    match expr {
        Expr::Source(leaf) => out.push(leaf),
        Expr::Reshape { input, .. }
        | Expr::Permute { input, .. }
        | Expr::Narrow { input, .. }
        | Expr::Cast { input, .. }
        | Expr::Pad { input, .. } => collect_leaves(input, out),
        Expr::Concat { inputs, .. } | Expr::Merge { inputs } => {
            inputs.iter().for_each(|input| collect_leaves(input, out))
        }
        Expr::Fill { .. } => {}
        Expr::Gather { input, index, .. } => {
            collect_leaves(input, out);
            collect_leaves(index, out);
        }
        Expr::InversePermutation { index } | Expr::Argsort { input: index } => collect_leaves(index, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_model::{DType, DTypeClass, Sym};
    use safeshift_ops::TensorValue;

    fn source_file(dir: &Path) -> Checkpoint {
        let path = dir.join("source.safetensors");
        let qkv: Vec<u8> = (0..6 * 4).flat_map(|x: u32| (x as f32).to_le_bytes()).collect();
        let tensors = vec![OutputTensor {
            name: "qkv".into(),
            dtype: DType::F32,
            shape: vec![6, 4],
            source: TensorSource::Bytes(Cow::Owned(qkv)),
        }];
        write(&path, tensors, &WriteOptions::default()).unwrap();
        Checkpoint::open(&path).unwrap()
    }

    fn leaf() -> Expr {
        Expr::Source(Leaf {
            aux: None,
            name: "qkv".into(),
            dtype: DTypeClass::Exact(DType::F32),
            shape: vec![Sym::int(6), Sym::int(4)],
        })
    }

    fn rows(start: i64, len: i64) -> Expr {
        Expr::Narrow { input: Box::new(leaf()), axis: 0, start: Sym::int(start), len: Sym::int(len) }
    }

    fn planned(name: &str, expr: Expr) -> PlannedTensor {
        PlannedTensor::new(name, TensorValue::new(expr).unwrap()).unwrap()
    }

    fn view(dir: &Path) -> MigratedView {
        // `k` is the middle third of a fused projection, reshaped: a byte range.
        let k = Expr::Reshape { input: Box::new(rows(2, 2)), shape: vec![Sym::int(8)] };
        // `t` is a transpose: computed.
        let t = Expr::Permute { input: Box::new(leaf()), axes: vec![1, 0] };
        let planned = vec![planned("k", k), planned("t", t)];
        MigratedView::new(source_file(dir), BTreeMap::new(), planned, BTreeMap::new()).unwrap()
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap())).collect()
    }

    #[test]
    fn byte_ranges_are_borrowed_from_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        let k = view.tensor("k").unwrap();
        assert!(matches!(k, Cow::Borrowed(_)));
        let map = view.source().tensor_bytes("qkv").unwrap().as_ptr_range();
        assert!(map.contains(&k.as_ptr()), "the bytes of `k` point inside the source map");
        assert_eq!(floats(&k), (8..16).map(|x| x as f32).collect::<Vec<_>>());
        assert!(view.is_zero_copy("k") && !view.is_zero_copy("t"));
    }

    #[test]
    fn computed_tensors_and_slices_agree() {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        let t = view.tensor("t").unwrap();
        assert!(matches!(t, Cow::Owned(_)));
        assert_eq!(floats(&t)[..6], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
        assert_eq!(view.slice("t", 0..4).unwrap(), t);
        let halves = [view.slice("t", 0..1).unwrap(), view.slice("t", 1..4).unwrap()].concat();
        assert_eq!(halves, t.as_ref());
        assert!(matches!(view.slice("k", 2..6).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn written_file_equals_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        let out = dir.path().join("out.safetensors");
        write_to_and_compare(&view, &out);
    }

    fn write_to_and_compare(view: &MigratedView, out: &Path) {
        view.write_to(out, &WriteOptions::default()).unwrap();
        let written = Checkpoint::open(out).unwrap();
        for name in view.names() {
            assert_eq!(written.tensor(name), view.info(name));
            assert_eq!(written.tensor_bytes(name).unwrap(), view.tensor(name).unwrap().as_ref());
        }
    }

    #[test]
    fn plans_that_do_not_fit_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = Expr::Source(Leaf {
            aux: None,
            name: "qkv".into(),
            dtype: DTypeClass::Exact(DType::BF16),
            shape: vec![Sym::int(6), Sym::int(4)],
        });
        let planned = vec![self::planned("x", wrong)];
        let err = MigratedView::new(source_file(dir.path()), BTreeMap::new(), planned, BTreeMap::new()).err().unwrap();
        assert!(matches!(err, ViewError::BadLeaf { .. }), "{err}");
        let missing = Expr::Source(Leaf {
            aux: Some("graph".into()),
            ..match leaf() {
                Expr::Source(leaf) => leaf,
                _ => unreachable!(),
            }
        });
        let planned = vec![self::planned("x", missing)];
        let err = MigratedView::new(source_file(dir.path()), BTreeMap::new(), planned, BTreeMap::new()).err().unwrap();
        assert_eq!(err.to_string(), "the plan for `x` needs the auxiliary input `graph`, which was not given");
    }
}
