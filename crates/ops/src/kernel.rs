//! Pure kernels: computing the bytes of an expression from the bytes of its sources.
//!
//! Reshape, permute and narrow chains are views (offset, shape, strides) over one buffer,
//! copied once by a strided copy whose innermost run is a `memcpy` (or a fixed-size
//! element loop when the innermost axis is strided; a tiled loop for transposes). A cast
//! converts straight from the runs of its input's view; the other nodes materialise their
//! inputs and compute with tight loops per dtype. Nothing dispatches per element.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::ops::Range;

use safeshift_model::{DType, DTypeClass, Sym};

use crate::byte_range::byte_range;
use crate::cast::{cast_bytes, cast_into, restore_bytes, scalar_bytes, CastError, CastMode};
use crate::expr::{dtype_of, shape_of, Expr, Init, Leaf, ShapeError};
use crate::simplify::simplify;
use crate::strided::{advance, coalesce, copy_strided};

/// A boxed error from the caller's source callback.
pub type SourceError = Box<dyn StdError + Send + Sync>;

/// The caller's source callback: the stored bytes of a leaf (borrowed when possible).
pub type SourceFn<'a, E> = dyn Fn(&Leaf) -> Result<Cow<'a, [u8]>, E> + 'a;

/// Why an expression could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The expression is ill-formed.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A shape that is not concrete.
    #[error("shape [{shape}] is not concrete")]
    Symbolic {
        /// The shape.
        shape: String,
    },
    /// A dtype class where an exact dtype is needed.
    #[error("dtype `{dtype}` is not exact")]
    InexactDtype {
        /// The class.
        dtype: DTypeClass,
    },
    /// A dtype the kernels cannot compute with (only byte ranges of it can be read).
    #[error("tensors of dtype `{dtype}` can only be passed through, not computed")]
    Unsupported {
        /// The dtype.
        dtype: DType,
    },
    /// A conversion failed.
    #[error(transparent)]
    Cast(#[from] CastError),
    /// The caller could not provide a source.
    #[error("cannot read `{name}`")]
    Source {
        /// The source tensor.
        name: String,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// The caller provided a buffer of the wrong size.
    #[error("`{name}` has {actual} bytes, expected {expected}")]
    SourceLength {
        /// The source tensor.
        name: String,
        /// The size its dtype and shape imply.
        expected: u64,
        /// The size given.
        actual: u64,
    },
    /// An index tensor holds an index outside the axis.
    #[error("index {index} is out of range for an axis of size {size}")]
    Index {
        /// The index.
        index: i64,
        /// The axis size.
        size: u64,
    },
    /// An index tensor that should be a permutation is not one.
    #[error("the index tensor is not a permutation of 0..{size}")]
    NotPermutation {
        /// Its length.
        size: u64,
    },
    /// A row range outside the tensor.
    #[error("rows {start}..{end} are out of range for a first axis of size {rows}")]
    Rows {
        /// First row asked for.
        start: u64,
        /// One past the last.
        end: u64,
        /// Rows the tensor has.
        rows: u64,
    },
    /// Copies of one tensor that were to be merged differ.
    #[error("{} differ: merging them into one would lose data (a lossy merge: allow lossy results, `--allow-lossy`, to keep the first)", names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "))]
    UnequalMerge {
        /// The source tensors merged.
        names: Vec<String>,
    },
    /// A 0-d tensor has no rows to slice.
    #[error("a 0-d tensor has no rows")]
    Scalar,
    /// A size that does not fit in memory addressing.
    #[error("tensor too large")]
    TooLarge,
    /// [`evaluate_into`] was given a buffer of another size than the result.
    #[error("the result has {expected} bytes, but the output buffer has {actual}")]
    OutputLength {
        /// The result's size.
        expected: u64,
        /// The buffer's size.
        actual: u64,
    },
}

/// Computes the bytes of `expr` (little-endian, row-major). `sources` gives the bytes of
/// each leaf as stored; they are borrowed when possible. The expression is simplified
/// first; when it is a byte range of one source, that range is copied directly.
pub fn evaluate<'a, E>(expr: &Expr, sources: &SourceFn<'a, E>) -> Result<Vec<u8>, EvalError>
where
    E: Into<SourceError>,
{
    shape_of(expr)?;
    let simplified = simplify(expr.clone());
    let fetch = |leaf: &Leaf| fetch(leaf, sources);
    if let Some(range) = byte_range(&simplified) {
        let leaf = find_leaf(&simplified, &range.source, range.aux.as_deref())
            .expect("a byte range names a leaf of its expression");
        let bytes = fetch(leaf)?;
        let range = usize::try_from(range.start).map_err(|_| EvalError::TooLarge)?
            ..usize::try_from(range.end).map_err(|_| EvalError::TooLarge)?;
        return Ok(bytes[range].to_vec());
    }
    Evaluator { fetch: &fetch }.materialize(&simplified)
}

/// Computes the bytes of `expr` straight into `out`, which must have exactly the result's
/// size (the writer's buffer for one tensor). Chains of reshapes, permutations and narrows
/// over a source (transposes, head splits) are copied from the source into `out` with no
/// intermediate buffer; other nodes are computed and then copied.
pub fn evaluate_into<'a, E>(expr: &Expr, out: &mut [u8], sources: &SourceFn<'a, E>) -> Result<(), EvalError>
where
    E: Into<SourceError>,
{
    shape_of(expr)?;
    let simplified = simplify(expr.clone());
    let fetch = |leaf: &Leaf| fetch(leaf, sources);
    if byte_range(&simplified).is_some() {
        // Sub-byte dtypes only move as byte ranges; `evaluate` knows how.
        let bytes = evaluate(&simplified, sources)?;
        if bytes.len() != out.len() {
            return Err(EvalError::OutputLength { expected: bytes.len() as u64, actual: out.len() as u64 });
        }
        out.copy_from_slice(&bytes);
        return Ok(());
    }
    let evaluator = Evaluator { fetch: &fetch };
    // A cast at the top converts straight from its input's runs (often the memory map)
    // into `out`: no intermediate buffer to allocate, zero and copy.
    if let Expr::Cast { input, dtype, mode: CastMode::Torch } = without_reshapes(&simplified) {
        let (from, _) = element_size(dtype_of(input))?;
        if crate::cast::supported(from) {
            let view = evaluator.view(without_reshapes(input))?;
            let expected = product(&view.shape)?
                .checked_mul(dtype.size().ok_or(EvalError::Unsupported { dtype: *dtype })?)
                .ok_or(EvalError::TooLarge)?;
            if expected != out.len() {
                return Err(EvalError::OutputLength { expected: expected as u64, actual: out.len() as u64 });
            }
            if let Some(done) = cast_runs(&view, from, *dtype, out) {
                return Ok(done?);
            }
        }
    }
    let view = evaluator.view(without_reshapes(&simplified))?;
    let expected = product(&view.shape)?.checked_mul(view.elem).ok_or(EvalError::TooLarge)?;
    if expected != out.len() {
        return Err(EvalError::OutputLength { expected: expected as u64, actual: out.len() as u64 });
    }
    view.write_into(out);
    Ok(())
}

/// Computes only rows `rows` (indices along the first axis) of `expr`; the slice is
/// pushed down towards the sources before anything is computed.
pub fn evaluate_slice<'a, E>(expr: &Expr, rows: Range<u64>, sources: &SourceFn<'a, E>) -> Result<Vec<u8>, EvalError>
where
    E: Into<SourceError>,
{
    evaluate(&narrow_rows(expr, rows)?, sources)
}

/// `expr` restricted to rows `rows` of its first axis, simplified (so that
/// [`byte_range`] of the result finds slices of sources).
pub fn narrow_rows(expr: &Expr, rows: Range<u64>) -> Result<Expr, EvalError> {
    let shape = shape_of(expr)?;
    let first = shape.first().ok_or(EvalError::Scalar)?;
    let count = concrete(first, &shape)?;
    if rows.start > rows.end || rows.end > count {
        return Err(EvalError::Rows { start: rows.start, end: rows.end, rows: count });
    }
    let start = i64::try_from(rows.start).map_err(|_| EvalError::TooLarge)?;
    let len = i64::try_from(rows.end - rows.start).map_err(|_| EvalError::TooLarge)?;
    Ok(crate::simplify::narrow(simplify(expr.clone()), 0, Sym::int(start), Sym::int(len)))
}

/// Evaluates without simplifying first: the reference the property tests hold
/// [`evaluate`] to.
#[cfg(test)]
pub(crate) fn evaluate_unsimplified<'a, E>(expr: &Expr, sources: &SourceFn<'a, E>) -> Result<Vec<u8>, EvalError>
where
    E: Into<SourceError>,
{
    shape_of(expr)?;
    let fetch = |leaf: &Leaf| fetch(leaf, sources);
    Evaluator { fetch: &fetch }.materialize(expr)
}

/// The names of the input tensors `expr` reads, in order.
fn leaf_names(expr: &Expr, out: &mut Vec<String>) {
    if let Expr::Source(leaf) = expr {
        out.push(leaf.name.clone());
    }
    expr.children().into_iter().for_each(|child| leaf_names(child, out));
}

/// The leaf called `name` (in `aux`) somewhere in `expr`.
fn find_leaf<'e>(expr: &'e Expr, name: &str, aux: Option<&str>) -> Option<&'e Leaf> {
    match expr {
        Expr::Source(leaf) => (leaf.name == name && leaf.aux.as_deref() == aux).then_some(leaf),
        Expr::Reshape { input, .. }
        | Expr::Permute { input, .. }
        | Expr::Narrow { input, .. }
        | Expr::Cast { input, .. }
        | Expr::Pad { input, .. } => find_leaf(input, name, aux),
        Expr::Concat { inputs, .. } | Expr::Merge { inputs } => {
            inputs.iter().find_map(|input| find_leaf(input, name, aux))
        }
        Expr::Fill { .. } => None,
        Expr::Gather { input, index, .. } => find_leaf(input, name, aux).or_else(|| find_leaf(index, name, aux)),
        Expr::InversePermutation { index } | Expr::Argsort { input: index } => find_leaf(index, name, aux),
    }
}

fn fetch<'a, E>(leaf: &Leaf, sources: &SourceFn<'a, E>) -> Result<Cow<'a, [u8]>, EvalError>
where
    E: Into<SourceError>,
{
    let bytes = sources(leaf).map_err(|err| EvalError::Source { name: leaf.name.clone(), source: err.into() })?;
    let dtype = exact(leaf.dtype)?;
    let count = concrete_numel(&leaf.shape)?;
    let expected = dtype.byte_len(count).ok_or(EvalError::TooLarge)?;
    if bytes.len() as u64 != expected {
        return Err(EvalError::SourceLength { name: leaf.name.clone(), expected, actual: bytes.len() as u64 });
    }
    Ok(bytes)
}

fn exact(dtype: DTypeClass) -> Result<DType, EvalError> {
    match dtype {
        DTypeClass::Exact(dtype) => Ok(dtype),
        other => Err(EvalError::InexactDtype { dtype: other }),
    }
}

fn concrete(sym: &Sym, shape: &[Sym]) -> Result<u64, EvalError> {
    sym.as_int()
        .and_then(|value| u64::try_from(value).ok())
        .ok_or_else(|| EvalError::Symbolic { shape: crate::expr::shape_text(shape) })
}

fn concrete_shape(shape: &[Sym]) -> Result<Vec<usize>, EvalError> {
    shape
        .iter()
        .map(|dim| concrete(dim, shape).and_then(|value| usize::try_from(value).map_err(|_| EvalError::TooLarge)))
        .collect()
}

fn concrete_numel(shape: &[Sym]) -> Result<u64, EvalError> {
    let mut total = 1u64;
    for dim in shape {
        total = total.checked_mul(concrete(dim, shape)?).ok_or(EvalError::TooLarge)?;
    }
    Ok(total)
}

fn product(shape: &[usize]) -> Result<usize, EvalError> {
    shape.iter().try_fold(1usize, |acc, &dim| acc.checked_mul(dim)).ok_or(EvalError::TooLarge)
}

fn element_size(dtype: DTypeClass) -> Result<(DType, usize), EvalError> {
    let dtype = exact(dtype)?;
    match dtype.size() {
        Some(size) => Ok((dtype, size)),
        None => Err(EvalError::Unsupported { dtype }),
    }
}

/// An empty buffer with room for `count` elements of `elem` bytes; an impossible size is
/// an error, not an abort (shapes can come from registry text).
fn buffer(count: usize, elem: usize) -> Result<Vec<u8>, EvalError> {
    let total = count.checked_mul(elem).ok_or(EvalError::TooLarge)?;
    let mut out = Vec::new();
    out.try_reserve_exact(total).map_err(|_| EvalError::TooLarge)?;
    Ok(out)
}

/// `total` zero bytes.
fn zeroed(total: usize) -> Result<Vec<u8>, EvalError> {
    let mut out = buffer(total, 1)?;
    out.resize(total, 0);
    Ok(out)
}

/// `element` repeated `count` times.
fn repeated(element: &[u8], count: usize) -> Result<Vec<u8>, EvalError> {
    let mut out = buffer(count, element.len())?;
    for _ in 0..count {
        out.extend_from_slice(element);
    }
    Ok(out)
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// `expr` without its outer reshapes: a reshape keeps the row-major order of the
/// elements, so whoever only needs that order (materialising, casting, a block of a
/// concat) can read the input's view directly, even when it is not contiguous.
fn without_reshapes(expr: &Expr) -> &Expr {
    match expr {
        Expr::Reshape { input, .. } => without_reshapes(input),
        other => other,
    }
}

/// A strided view over a buffer, in elements.
struct View<'a> {
    data: Cow<'a, [u8]>,
    elem: usize,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl View<'_> {
    fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// Writes the viewed elements, row-major, into `out` (exactly their size).
    fn write_into(&self, out: &mut [u8]) {
        if out.is_empty() {
            return;
        }
        if self.is_contiguous() {
            let start = self.offset * self.elem;
            out.copy_from_slice(&self.data[start..start + out.len()]);
        } else {
            copy_strided(&self.data, self.elem, self.offset, &self.shape, &self.strides, out);
        }
    }

    /// The viewed elements, row-major, in a new (or the same) buffer.
    fn into_bytes(self) -> Result<Vec<u8>, EvalError> {
        let count = product(&self.shape)?;
        let total = count.checked_mul(self.elem).ok_or(EvalError::TooLarge)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        if self.is_contiguous() {
            let start = self.offset * self.elem;
            return Ok(match self.data {
                Cow::Owned(mut data) if start == 0 && data.len() == total => {
                    data.truncate(total);
                    data
                }
                data => data[start..start + total].to_vec(),
            });
        }
        let mut out = zeroed(total)?;
        copy_strided(&self.data, self.elem, self.offset, &self.shape, &self.strides, &mut out);
        Ok(out)
    }
}

/// Runs of at least this many elements are converted in place by a fused cast; shorter
/// ones are gathered first (a call per run would cost more than the copy).
const MIN_CAST_RUN: usize = 256;

/// Casts the elements of `view` into `out` (row-major) without gathering them first when
/// the view is made of long contiguous runs; `None` when it is not.
fn cast_runs(view: &View<'_>, from: DType, to: DType, out: &mut [u8]) -> Option<Result<(), CastError>> {
    if out.is_empty() {
        return Some(Ok(()));
    }
    let mut dims = coalesce(&view.shape, &view.strides);
    let (run, stride) = dims.pop().unwrap_or((1, 1));
    if stride != 1 || (run < MIN_CAST_RUN && !dims.is_empty()) {
        return None;
    }
    let (elem, out_elem) = (view.elem, to.size()?);
    let mut index = vec![0usize; dims.len()];
    let mut base = view.offset;
    for out_chunk in out.chunks_exact_mut(run * out_elem) {
        if let Err(err) = cast_into(&view.data[base * elem..(base + run) * elem], from, to, out_chunk) {
            return Some(Err(err));
        }
        advance(&dims, &mut index, &mut base);
    }
    Some(Ok(()))
}

type Fetch<'f, 'a> = &'f dyn Fn(&Leaf) -> Result<Cow<'a, [u8]>, EvalError>;

struct Evaluator<'f, 'a> {
    fetch: Fetch<'f, 'a>,
}

impl<'a> Evaluator<'_, 'a> {
    fn materialize(&self, expr: &Expr) -> Result<Vec<u8>, EvalError> {
        self.view(without_reshapes(expr))?.into_bytes()
    }

    /// A view of `expr`: free for reshape (of a contiguous view), permute and narrow.
    fn view(&self, expr: &Expr) -> Result<View<'a>, EvalError> {
        match expr {
            Expr::Source(leaf) => {
                let (_, elem) = element_size(leaf.dtype)?;
                let data = (self.fetch)(leaf)?;
                let shape = concrete_shape(&leaf.shape)?;
                Ok(View { data, elem, offset: 0, strides: contiguous_strides(&shape), shape })
            }
            Expr::Reshape { input, shape } => {
                let view = self.view(input)?;
                let shape = concrete_shape(shape)?;
                let (data, offset, elem) = if view.is_contiguous() {
                    (view.data, view.offset, view.elem)
                } else {
                    let elem = view.elem;
                    (Cow::Owned(view.into_bytes()?), 0, elem)
                };
                Ok(View { data, elem, offset, strides: contiguous_strides(&shape), shape })
            }
            Expr::Permute { input, axes } => {
                let view = self.view(input)?;
                let shape = axes.iter().map(|&axis| view.shape[axis]).collect();
                let strides = axes.iter().map(|&axis| view.strides[axis]).collect();
                Ok(View { shape, strides, ..view })
            }
            Expr::Narrow { input, axis, start, len } => {
                let mut view = self.view(input)?;
                let shape = [start.clone(), len.clone()];
                let start = usize::try_from(concrete(start, &shape)?).map_err(|_| EvalError::TooLarge)?;
                let len = usize::try_from(concrete(len, &shape)?).map_err(|_| EvalError::TooLarge)?;
                view.offset += start * view.strides[*axis];
                view.shape[*axis] = len;
                Ok(view)
            }
            other => {
                let shape = concrete_shape(&shape_of(other)?)?;
                let (_, elem) = element_size(dtype_of(other))?;
                let data = Cow::Owned(self.compute(other, &shape, elem)?);
                Ok(View { data, elem, offset: 0, strides: contiguous_strides(&shape), shape })
            }
        }
    }

    /// Nodes that are not views; `shape` is the node's concrete shape.
    fn compute(&self, expr: &Expr, shape: &[usize], elem: usize) -> Result<Vec<u8>, EvalError> {
        match expr {
            Expr::Concat { inputs, axis } => {
                let outer = product(&shape[..*axis])?;
                let inner = product(&shape[axis + 1..])? * elem;
                if outer == 1 {
                    // The parts are consecutive blocks: copy each view straight into place.
                    let mut out = zeroed(product(shape)?.checked_mul(elem).ok_or(EvalError::TooLarge)?)?;
                    let mut at = 0;
                    for part in inputs {
                        let view = self.view(without_reshapes(part))?;
                        let len = product(&view.shape)? * elem;
                        view.write_into(&mut out[at..at + len]);
                        at += len;
                    }
                    return Ok(out);
                }
                let parts: Vec<(Vec<u8>, usize)> = inputs
                    .iter()
                    .map(|part| {
                        let rows = concrete_shape(&shape_of(part)?)?[*axis];
                        Ok((self.materialize(part)?, rows * inner))
                    })
                    .collect::<Result<_, EvalError>>()?;
                let mut out = buffer(product(shape)?, elem)?;
                for block in 0..outer {
                    for (bytes, chunk) in &parts {
                        out.extend_from_slice(&bytes[block * chunk..(block + 1) * chunk]);
                    }
                }
                Ok(out)
            }
            Expr::Cast { input, dtype, mode } => {
                let (from, _) = element_size(dtype_of(input))?;
                let view = self.view(without_reshapes(input))?;
                if *mode == CastMode::Torch && crate::cast::supported(from) {
                    // Fused: convert straight from the source runs (often the memory map).
                    let mut out = zeroed(product(shape)?.checked_mul(elem).ok_or(EvalError::TooLarge)?)?;
                    if let Some(done) = cast_runs(&view, from, *dtype, &mut out) {
                        done?;
                        return Ok(out);
                    }
                }
                let bytes = view.into_bytes()?;
                Ok(match mode {
                    CastMode::Torch => cast_bytes(&bytes, from, *dtype)?,
                    CastMode::Restore => restore_bytes(&bytes, from, *dtype)?,
                })
            }
            Expr::Pad { input, axis, value, .. } => {
                let (dtype, _) = element_size(dtype_of(input))?;
                let in_shape = concrete_shape(&shape_of(input)?)?;
                let bytes = self.materialize(input)?;
                let outer = product(&shape[..*axis])?;
                let inner = product(&shape[axis + 1..])? * elem;
                let (in_chunk, pad_chunk) = (in_shape[*axis] * inner, (shape[*axis] - in_shape[*axis]) * inner);
                let pad = repeated(&scalar_bytes(*value, dtype)?, pad_chunk / elem)?;
                let mut out = buffer(product(shape)?, elem)?;
                for block in 0..outer {
                    out.extend_from_slice(&bytes[block * in_chunk..(block + 1) * in_chunk]);
                    out.extend_from_slice(&pad);
                }
                Ok(out)
            }
            Expr::Fill { dtype, init, .. } => {
                let (dtype, _) = element_size(*dtype)?;
                let count = product(shape)?;
                match init {
                    Init::Zeros => zeroed(count.checked_mul(elem).ok_or(EvalError::TooLarge)?),
                    Init::Ones => repeated(&scalar_bytes(1.0, dtype)?, count),
                    Init::Value(value) => repeated(&scalar_bytes(*value, dtype)?, count),
                    Init::Eye => {
                        let mut out = zeroed(count.checked_mul(elem).ok_or(EvalError::TooLarge)?)?;
                        let one = scalar_bytes(1.0, dtype)?;
                        for diagonal in 0..shape[0].min(shape[1]) {
                            let at = (diagonal * shape[1] + diagonal) * elem;
                            out[at..at + elem].copy_from_slice(&one);
                        }
                        Ok(out)
                    }
                }
            }
            Expr::Gather { input, axis, index } => {
                let in_shape = concrete_shape(&shape_of(input)?)?;
                let size = in_shape[*axis];
                let indices = self.indices(index, size as u64)?;
                let bytes = self.materialize(input)?;
                let outer = product(&shape[..*axis])?;
                let inner = product(&shape[axis + 1..])? * elem;
                let mut out = buffer(product(shape)?, elem)?;
                for block in 0..outer {
                    let base = block * size * inner;
                    for &row in &indices {
                        out.extend_from_slice(&bytes[base + row * inner..base + (row + 1) * inner]);
                    }
                }
                Ok(out)
            }
            Expr::InversePermutation { index } => {
                let size = shape[0];
                let indices = self.indices(index, size as u64)?;
                let mut inverse = vec![usize::MAX; size];
                for (position, &row) in indices.iter().enumerate() {
                    if inverse[row] != usize::MAX {
                        return Err(EvalError::NotPermutation { size: size as u64 });
                    }
                    inverse[row] = position;
                }
                Ok(inverse.iter().flat_map(|&position| (position as i64).to_le_bytes()).collect())
            }
            Expr::Merge { inputs } => {
                let first = self.materialize(&inputs[0])?;
                for other in &inputs[1..] {
                    if self.materialize(other)? != first {
                        let mut names = Vec::new();
                        for input in inputs {
                            leaf_names(input, &mut names);
                        }
                        return Err(EvalError::UnequalMerge { names });
                    }
                }
                Ok(first)
            }
            Expr::Argsort { input } => {
                let (dtype, _) = element_size(dtype_of(input))?;
                if !dtype.is_int() {
                    return Err(EvalError::Unsupported { dtype });
                }
                let wide = cast_bytes(&self.materialize(input)?, dtype, DType::I64)?;
                let values: Vec<i64> =
                    wide.chunks_exact(8).map(|chunk| i64::from_le_bytes(chunk.try_into().expect("8 bytes"))).collect();
                let mut order: Vec<usize> = (0..values.len()).collect();
                order.sort_by_key(|&position| values[position]); // stable
                Ok(order.iter().flat_map(|&position| (position as i64).to_le_bytes()).collect())
            }
            Expr::Source(_) | Expr::Reshape { .. } | Expr::Permute { .. } | Expr::Narrow { .. } => {
                self.materialize(expr)
            }
        }
    }

    /// The values of a 1-d integer index tensor, each checked against `size`.
    fn indices(&self, index: &Expr, size: u64) -> Result<Vec<usize>, EvalError> {
        let (dtype, _) = element_size(dtype_of(index))?;
        if !dtype.is_int() {
            return Err(EvalError::Unsupported { dtype });
        }
        let wide = cast_bytes(&self.materialize(index)?, dtype, DType::I64)?;
        wide.chunks_exact(8)
            .map(|chunk| {
                let value = i64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                match u64::try_from(value) {
                    Ok(row) if row < size => Ok(row as usize),
                    _ => Err(EvalError::Index { index: value, size }),
                }
            })
            .collect()
    }
}
