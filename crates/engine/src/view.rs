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
use crate::writer::{write_with_extras, OutputTensor, TensorSource, WriteOptions, WriteSummary, EXTRAS_METADATA_KEY};

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

/// Where an output tensor's bytes come from, for a caller's buffer (see `fill`).
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// Bytes `start..` of tensor number `leaf` of `checkpoint`: a byte range of its file
    /// when `mapped` (read with `pread`), cut from the built tensor otherwise.
    Range { checkpoint: &'a Checkpoint, leaf: usize, start: u64, mapped: bool },
    /// Computed from the sources by the kernels.
    Computed { name: &'a str, expr: &'a Expr },
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
    /// A buffer given to [`MigratedView::read_into`] has another size than the tensor.
    #[error("cannot read `{tensor}` into a buffer of {found} bytes: the tensor has {expected}")]
    BufferSize {
        /// The output tensor.
        tensor: String,
        /// The tensor's byte count.
        expected: u64,
        /// The buffer's.
        found: u64,
    },
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

    /// The checkpoint as it is: every state-dict tensor planned as itself, the metadata
    /// unchanged, the extras carried as always. Writing it is `convert`: any input
    /// format to safetensors, contiguous tensors copied as file ranges.
    pub fn pass_through(source: Checkpoint) -> Result<MigratedView, ViewError> {
        let planned = source.layout().tensors.iter().map(PlannedTensor::unchanged).collect();
        let metadata = source.layout().metadata.clone();
        MigratedView::new(source, BTreeMap::new(), planned, metadata)
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

    /// Whether `tensor(name)` borrows its bytes from the source map instead of computing:
    /// its expression is a byte range of a source tensor that is itself a byte range of
    /// its file (an extra: whether the source borrows it).
    pub fn is_zero_copy(&self, name: &str) -> bool {
        match self.by_name.get(name) {
            Some(&index) => self.planned[index].range.as_ref().is_some_and(|range| {
                self.checkpoint_of(name, range.aux.as_deref())
                    .is_ok_and(|checkpoint| checkpoint.is_zero_copy(&range.source))
            }),
            None => self.is_extra(name) && self.source.is_zero_copy(name),
        }
    }

    /// The source's extras (tensors outside its state dict), carried through unchanged:
    /// [`MigratedView::tensor`] reads them and [`MigratedView::write_to`] writes them after
    /// the state dict.
    pub fn extras(&self) -> &[TensorInfo] {
        self.source.extras()
    }

    fn is_extra(&self, name: &str) -> bool {
        self.source.extras().iter().any(|info| info.name == name)
    }

    /// The bytes of tensor `name` (or of an extra): borrowed from the map when its
    /// expression is a byte range of a source, computed otherwise.
    pub fn tensor(&self, name: &str) -> Result<Cow<'_, [u8]>, ViewError> {
        let Some(&index) = self.by_name.get(name) else {
            if self.is_extra(name) {
                return Ok(self.source.tensor_bytes(name)?);
            }
            return Err(ViewError::UnknownTensor(name.to_owned()));
        };
        let planned = &self.planned[index];
        if let Some(range) = &planned.range {
            return self.range_bytes(name, range);
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
            return self.range_bytes(name, &range);
        }
        self.compute(name, &narrowed).map(Cow::Owned)
    }

    /// Unmaps this process's pages of the source tensors `name` reads (`madvise`, see the
    /// writer's use): a loader that has copied the tensor where it belongs keeps its resident
    /// set bounded instead of growing by every page it read. The bytes stay in the page
    /// cache and later reads fault them in again; bytes a client wrote into the
    /// copy-on-write map through a borrowed tensor are lost. Advisory: errors are ignored.
    ///
    /// A borrowed tensor releases only the bytes it borrowed: after `q` of a fused `qkv`,
    /// the pages of `k` and `v` stay mapped for the reads that follow.
    pub fn release(&self, name: &str) {
        let Some(&index) = self.by_name.get(name) else {
            return;
        };
        let planned = &self.planned[index];
        match &planned.range {
            Some(range) => {
                if let Ok(checkpoint) = self.checkpoint_of(name, range.aux.as_deref()) {
                    checkpoint.release_range(&range.source, range.start..range.end);
                }
            }
            None => self.release_sources(name, &planned.expr),
        }
    }

    /// Writes the result to `path` with the engine's atomic writer, then the source's
    /// extras unchanged (their names recorded under
    /// [`EXTRAS_METADATA_KEY`](crate::EXTRAS_METADATA_KEY)). Byte ranges are copied from
    /// the source file (`pread`/`write` through a reused buffer); computed tensors are
    /// produced one at a time, so memory stays bounded by the largest of them.
    pub fn write_to(&self, path: &Path, options: &WriteOptions) -> Result<WriteSummary, WriteError> {
        let mut options = options.clone();
        for (key, value) in &self.layout.metadata {
            options.metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        // A plan that passes extras through lists them under the extras key (the graph
        // layer's compile does); otherwise the source's extras follow the plan unchanged.
        let planned_extras: Option<Vec<String>> =
            self.layout.metadata.get(EXTRAS_METADATA_KEY).and_then(|text| serde_json::from_str(text).ok());
        let mut tensors = Vec::with_capacity(self.planned.len());
        let mut extras = Vec::new();
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
            let output = OutputTensor { name: info.name.clone(), dtype: info.dtype, shape: info.shape.clone(), source };
            match &planned_extras {
                Some(names) if names.contains(&info.name) => extras.push(output),
                _ => tensors.push(output),
            }
        }
        if planned_extras.is_none() {
            extras.extend(self.source.extras().iter().map(|info| self.extra_output(info)));
        }
        write_with_extras(path, tensors, extras, &options)
    }

    /// An extra as the writer takes it: a file range when it is one, built otherwise.
    fn extra_output(&self, info: &TensorInfo) -> OutputTensor<'_> {
        let source = match self.source.tensor_location(&info.name) {
            Some(location) => TensorSource::File(location),
            None => {
                let name = info.name.clone();
                TensorSource::Generate(Box::new(move |buffer: &mut [u8]| {
                    buffer.copy_from_slice(&self.source.tensor_bytes(&name)?);
                    Ok(())
                }))
            }
        };
        OutputTensor { name: info.name.clone(), dtype: info.dtype, shape: info.shape.clone(), source }
    }

    /// The index of tensor `name` (not an extra), once `len` is known to be its byte count.
    pub(crate) fn sized_index(&self, name: &str, len: usize) -> Result<usize, ViewError> {
        let index = self.index(name)?;
        let expected = self.layout.tensors[index].byte_len().unwrap_or(u64::MAX);
        if len as u64 != expected {
            return Err(ViewError::BufferSize { tensor: name.to_owned(), expected, found: len as u64 });
        }
        Ok(index)
    }

    /// Where the bytes of tensor number `index` come from when read into a caller's buffer.
    pub(crate) fn origin(&self, index: usize) -> Result<Origin<'_>, ViewError> {
        let name = self.layout.tensors[index].name.as_str();
        let planned = &self.planned[index];
        let Some(range) = &planned.range else {
            return Ok(Origin::Computed { name, expr: &planned.expr });
        };
        let checkpoint = self.checkpoint_of(name, range.aux.as_deref())?;
        // `new` checked every leaf against its checkpoint.
        let leaf = checkpoint.index_of(&range.source).ok_or_else(|| ViewError::BadLeaf {
            tensor: name.to_owned(),
            leaf: range.source.clone(),
            problem: format!("is not in `{}`", checkpoint.path().display()),
        })?;
        Ok(Origin::Range { checkpoint, leaf, start: range.start, mapped: checkpoint.is_zero_copy(&range.source) })
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

    pub(crate) fn release_sources(&self, tensor: &str, expr: &Expr) {
        let mut leaves = Vec::new();
        collect_leaves(expr, &mut leaves);
        for leaf in leaves {
            if let Ok(checkpoint) = self.checkpoint_of(tensor, leaf.aux.as_deref()) {
                checkpoint.release_pages(&leaf.name);
            }
        }
    }

    /// The bytes `range` names: borrowed when the source tensor is a byte range of its
    /// file, cut from the built tensor otherwise.
    fn range_bytes(&self, tensor: &str, range: &ByteRange) -> Result<Cow<'_, [u8]>, ViewError> {
        let bytes = self.checkpoint_of(tensor, range.aux.as_deref())?.tensor_bytes(&range.source)?;
        // The leaf was checked against the header in `new`, and `byte_range` stays within
        // the leaf's byte count, so this slice is in bounds.
        let (start, end) = (range.start as usize, range.end as usize);
        Ok(match bytes {
            Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[start..end]),
            Cow::Owned(mut bytes) => {
                bytes.truncate(end);
                bytes.drain(..start);
                Cow::Owned(bytes)
            }
        })
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
    pub(crate) fn compute_into(&self, tensor: &str, expr: &Expr, out: &mut [u8]) -> Result<(), ViewError> {
        let fetch = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, ViewError> {
            let checkpoint = self.checkpoint_of(tensor, leaf.aux.as_deref())?;
            Ok(checkpoint.tensor_bytes(&leaf.name)?)
        };
        evaluate_into(expr, out, &fetch).map_err(|source| ViewError::Eval { tensor: tensor.to_owned(), source })
    }

    fn compute(&self, tensor: &str, expr: &Expr) -> Result<Vec<u8>, ViewError> {
        let fetch = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, ViewError> {
            let checkpoint = self.checkpoint_of(tensor, leaf.aux.as_deref())?;
            Ok(checkpoint.tensor_bytes(&leaf.name)?)
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
        let as_expected = leaf.shape.len() == info.shape.len()
            && leaf
                .shape
                .iter()
                .zip(&info.shape)
                .all(|(dim, &size)| dim.as_int().and_then(|value| u64::try_from(value).ok()) == Some(size));
        if !as_expected {
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
        crate::write(&path, tensors, &WriteOptions::default()).unwrap();
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

    #[test]
    fn read_into_fills_a_buffer_with_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        for name in ["k", "t"] {
            let mut out = vec![0xAA; view.tensor(name).unwrap().len()];
            view.read_into(name, &mut out).unwrap();
            assert_eq!(out, view.tensor(name).unwrap().as_ref(), "{name}");
        }
        let err = view.read_into("t", &mut [0; 4]).unwrap_err();
        assert_eq!(err.to_string(), "cannot read `t` into a buffer of 4 bytes: the tensor has 96");
        assert!(matches!(view.read_into("nope", &mut []), Err(ViewError::UnknownTensor(_))));
    }

    /// `release` after one part of a fused tensor leaves the other parts' pages mapped.
    #[test]
    fn releasing_a_borrowed_part_keeps_the_other_parts_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fused.safetensors");
        let rows = 3 * 256u64; // three parts of 256 rows of 1 KiB: 256 KiB each
        let bytes: Vec<u8> = (0..rows * 1024).map(|i| (i % 251) as u8).collect();
        let tensors = vec![OutputTensor {
            name: "qkv".into(),
            dtype: DType::U8,
            shape: vec![rows, 1024],
            source: TensorSource::Bytes(Cow::Borrowed(&bytes)),
        }];
        crate::write(&path, tensors, &WriteOptions::default()).unwrap();
        let leaf = Expr::Source(Leaf {
            aux: None,
            name: "qkv".into(),
            dtype: DTypeClass::Exact(DType::U8),
            shape: vec![Sym::int(rows as i64), Sym::int(1024)],
        });
        let part = |index: i64| Expr::Narrow {
            input: Box::new(leaf.clone()),
            axis: 0,
            start: Sym::int(256 * index),
            len: Sym::int(256),
        };
        let planned = vec![planned("q", part(0)), planned("k", part(1)), planned("v", part(2))];
        let view =
            MigratedView::new(Checkpoint::open(&path).unwrap(), BTreeMap::new(), planned, BTreeMap::new()).unwrap();
        let address = view.tensor("q").unwrap().as_ptr() as usize;
        for name in ["q", "k", "v"] {
            // Every page read (a sum cannot stop early).
            assert!(view.tensor(name).unwrap().iter().map(|&byte| u64::from(byte)).sum::<u64>() > 0);
        }
        let touched = crate::checkpoint::tests::mapping_rss_kib(address);
        view.release("q");
        let released = crate::checkpoint::tests::mapping_rss_kib(address);
        assert!(touched >= 768, "{touched} KiB resident after reading 768 KiB");
        // `q`'s 256 KiB left (give or take its edge pages); `k` and `v` stayed.
        assert!(released + 240 <= touched && released + 272 >= touched, "{touched} KiB resident, {released} KiB after");
        assert_eq!(view.tensor("q").unwrap().as_ref(), &bytes[..256 * 1024]);
    }
}
