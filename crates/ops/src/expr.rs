//! The core algebra every operation lowers to: lazy tensor expressions over named leaves.
//!
//! An [`Expr`] describes how to compute one output tensor from tensors of the input
//! checkpoint (and of auxiliary files) without computing it. Shapes are [`Sym`]s, so the
//! same expression serves the static checker (symbolic dims) and the engine (all dims
//! constant). [`shape_of`] and [`dtype_of`] are the shape and type rules of the algebra.

use std::fmt;

use safeshift_model::{DType, DTypeClass, Sym};

use crate::cast::CastMode;

/// A tensor that an expression reads: one of the input checkpoint, or of an auxiliary file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// `None` for the input checkpoint; `Some(input)` for the aux file `input`.
    pub aux: Option<String>,
    /// The tensor's name in that file.
    pub name: String,
    /// Its dtype (a class in symbolic use; exact when bytes are computed).
    pub dtype: DTypeClass,
    /// Its shape.
    pub shape: Vec<Sym>,
}

/// How a [`Expr::Fill`] tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Ones on the main diagonal of a 2-d tensor, zeros elsewhere.
    Eye,
    /// Every element `value`, converted to the dtype like [`Expr::Cast`] from `f64`.
    Value(f64),
}

/// A lazy tensor expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A tensor of the input checkpoint or of an aux file, read as it is stored.
    Source(Leaf),
    /// The same elements in row-major order, another shape (same element count).
    Reshape {
        /// The tensor reshaped.
        input: Box<Expr>,
        /// The new shape.
        shape: Vec<Sym>,
    },
    /// Axes reordered: output axis `i` is input axis `axes[i]`.
    Permute {
        /// The tensor permuted.
        input: Box<Expr>,
        /// A permutation of `0..rank`.
        axes: Vec<usize>,
    },
    /// Indices `start..start + len` along `axis`.
    Narrow {
        /// The tensor narrowed.
        input: Box<Expr>,
        /// The axis.
        axis: usize,
        /// First index kept.
        start: Sym,
        /// Number of indices kept.
        len: Sym,
    },
    /// Tensors joined along `axis` (all other dims equal).
    Concat {
        /// The parts, in order; at least one.
        inputs: Vec<Expr>,
        /// The axis.
        axis: usize,
    },
    /// Elements converted to `dtype` (see [`crate::cast`] for the exact rules).
    Cast {
        /// The tensor converted.
        input: Box<Expr>,
        /// The target dtype.
        dtype: DType,
        /// PyTorch's conversion, or the exact undoing of a widening cast.
        mode: CastMode,
    },
    /// `after` indices of `value` appended along `axis`.
    Pad {
        /// The tensor padded.
        input: Box<Expr>,
        /// The axis.
        axis: usize,
        /// How many indices to append.
        after: Sym,
        /// The value of the new elements.
        value: f64,
    },
    /// A new tensor.
    Fill {
        /// Its dtype.
        dtype: DTypeClass,
        /// Its shape.
        shape: Vec<Sym>,
        /// Its values.
        init: Init,
    },
    /// Indices along `axis` picked by a 1-d integer `index` tensor: output index `i` along
    /// `axis` is input index `index[i]`.
    Gather {
        /// The tensor read.
        input: Box<Expr>,
        /// The axis.
        axis: usize,
        /// A 1-d integer tensor of indices.
        index: Box<Expr>,
    },
    /// The inverse of a permutation held in a 1-d integer tensor: `out[index[i]] = i`, as
    /// `i64`. Evaluating it fails when `index` is not a permutation.
    InversePermutation {
        /// The permutation.
        index: Box<Expr>,
    },
    /// The stable argsort of a 1-d integer tensor, as `i64`: position `i` holds the index
    /// of the `i`-th smallest value, equal values in their original order (torch's
    /// `sort(stable=True).indices`). Always a permutation.
    Argsort {
        /// The values sorted.
        input: Box<Expr>,
    },
    /// Copies of one tensor merged into one: the first input, once every input has the
    /// same bytes. Evaluating it fails, naming the tensors, when they differ: keeping one
    /// of two different tensors would lose the other ([`accept_unequal_merges`] keeps the
    /// first when the caller allows a lossy result).
    Merge {
        /// The copies, all of one dtype and shape; at least one.
        inputs: Vec<Expr>,
    },
}

impl Expr {
    /// The expressions this one reads, in order (none for a leaf or a fill): the one
    /// traversal every walk over an expression shares.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Source(_) | Expr::Fill { .. } => Vec::new(),
            Expr::Reshape { input, .. }
            | Expr::Permute { input, .. }
            | Expr::Narrow { input, .. }
            | Expr::Cast { input, .. }
            | Expr::Pad { input, .. }
            | Expr::Argsort { input }
            | Expr::InversePermutation { index: input } => vec![&**input],
            Expr::Concat { inputs, .. } | Expr::Merge { inputs } => inputs.iter().collect(),
            Expr::Gather { input, index, .. } => vec![&**input, &**index],
        }
    }

    /// [`Expr::children`], to edit in place.
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Source(_) | Expr::Fill { .. } => Vec::new(),
            Expr::Reshape { input, .. }
            | Expr::Permute { input, .. }
            | Expr::Narrow { input, .. }
            | Expr::Cast { input, .. }
            | Expr::Pad { input, .. }
            | Expr::Argsort { input }
            | Expr::InversePermutation { index: input } => vec![&mut **input],
            Expr::Concat { inputs, .. } | Expr::Merge { inputs } => inputs.iter_mut().collect(),
            Expr::Gather { input, index, .. } => vec![&mut **input, &mut **index],
        }
    }
}

/// `expr` with every [`Expr::Merge`] replaced by its first input: what `--allow-lossy`
/// accepts when per-dataset copies differ.
pub fn accept_unequal_merges(expr: Expr) -> Expr {
    let boxed = |input: Box<Expr>| Box::new(accept_unequal_merges(*input));
    match expr {
        Expr::Merge { mut inputs } => {
            let first = if inputs.is_empty() { return Expr::Merge { inputs } } else { inputs.swap_remove(0) };
            accept_unequal_merges(first)
        }
        Expr::Source(_) | Expr::Fill { .. } => expr,
        Expr::Reshape { input, shape } => Expr::Reshape { input: boxed(input), shape },
        Expr::Permute { input, axes } => Expr::Permute { input: boxed(input), axes },
        Expr::Narrow { input, axis, start, len } => Expr::Narrow { input: boxed(input), axis, start, len },
        Expr::Concat { inputs, axis } => {
            Expr::Concat { inputs: inputs.into_iter().map(accept_unequal_merges).collect(), axis }
        }
        Expr::Cast { input, dtype, mode } => Expr::Cast { input: boxed(input), dtype, mode },
        Expr::Pad { input, axis, after, value } => Expr::Pad { input: boxed(input), axis, after, value },
        Expr::Gather { input, axis, index } => Expr::Gather { input: boxed(input), axis, index: boxed(index) },
        Expr::InversePermutation { index } => Expr::InversePermutation { index: boxed(index) },
        Expr::Argsort { input } => Expr::Argsort { input: boxed(input) },
    }
}

/// Why an expression is ill-formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// An axis beyond the rank.
    #[error("axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        /// The axis asked for.
        axis: usize,
        /// The tensor's rank.
        rank: usize,
    },
    /// A reshape that changes the element count (or cannot be proved not to).
    #[error("cannot reshape [{from}] to [{to}]: element counts differ")]
    Reshape {
        /// The input shape.
        from: String,
        /// The requested shape.
        to: String,
    },
    /// Axes that are not a permutation of `0..rank`.
    #[error("axes {axes:?} are not a permutation of 0..{rank}")]
    Permutation {
        /// The axes.
        axes: Vec<usize>,
        /// The rank.
        rank: usize,
    },
    /// A narrow beyond the end of the axis, or with negative bounds.
    #[error("indices {start}..{start} + {len} are out of range for an axis of size {size}")]
    Narrow {
        /// First index.
        start: String,
        /// Length.
        len: String,
        /// The axis size.
        size: String,
    },
    /// Parts of a concat that disagree off the concat axis, or in dtype.
    #[error("cannot concatenate [{a}] and [{b}] along axis {axis}")]
    Concat {
        /// One shape.
        a: String,
        /// Another.
        b: String,
        /// The axis.
        axis: usize,
    },
    /// A concat of nothing.
    #[error("concat of no tensors")]
    EmptyConcat,
    /// An index tensor that is not 1-d.
    #[error("an index tensor must be 1-d, not [{shape}]")]
    Index {
        /// Its shape.
        shape: String,
    },
    /// `eye` for a tensor that is not 2-d.
    #[error("`eye` needs a 2-d shape, not [{shape}]")]
    Eye {
        /// The shape.
        shape: String,
    },
    /// A negative or fractional size.
    #[error("`{size}` is not a valid size")]
    Size {
        /// The size.
        size: String,
    },
}

/// Renders a shape as `a, b, c` (no brackets).
pub fn shape_text(shape: &[Sym]) -> String {
    shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The product of a shape's dims (1 for a 0-d shape).
pub fn numel(shape: &[Sym]) -> Sym {
    shape.iter().fold(Sym::int(1), |acc, dim| acc.mul(dim))
}

/// The shape of the tensor an expression computes, checking the expression on the way.
pub fn shape_of(expr: &Expr) -> Result<Vec<Sym>, ShapeError> {
    match expr {
        Expr::Source(leaf) => Ok(leaf.shape.clone()),
        Expr::Reshape { input, shape } => {
            let from = shape_of(input)?;
            check_sizes(shape)?;
            if numel(&from) != numel(shape) {
                return Err(ShapeError::Reshape { from: shape_text(&from), to: shape_text(shape) });
            }
            Ok(shape.clone())
        }
        Expr::Permute { input, axes } => {
            let from = shape_of(input)?;
            if !is_permutation(axes, from.len()) {
                return Err(ShapeError::Permutation { axes: axes.clone(), rank: from.len() });
            }
            Ok(axes.iter().map(|&axis| from[axis].clone()).collect())
        }
        Expr::Narrow { input, axis, start, len } => {
            let mut shape = shape_of(input)?;
            let size = axis_size(&shape, *axis)?;
            let end = start.add(len);
            let bad = || ShapeError::Narrow { start: start.to_string(), len: len.to_string(), size: size.to_string() };
            if let (Some(start), Some(len), Some(size)) = (start.as_int(), len.as_int(), size.as_int()) {
                if start < 0 || len < 0 || start.checked_add(len).is_none_or(|end| end > size) {
                    return Err(bad());
                }
            } else if !is_size(start) || !is_size(len) || size.sub(&end).as_int().is_some_and(|rest| rest < 0) {
                return Err(bad());
            }
            shape[*axis] = len.clone();
            Ok(shape)
        }
        Expr::Concat { inputs, axis } => {
            let Some((first, rest)) = inputs.split_first() else {
                return Err(ShapeError::EmptyConcat);
            };
            let mut shape = shape_of(first)?;
            axis_size(&shape, *axis)?;
            let dtype = dtype_of(first);
            for part in rest {
                let other = shape_of(part)?;
                let agrees = other.len() == shape.len()
                    && (0..shape.len()).all(|i| i == *axis || other[i] == shape[i])
                    && compatible(dtype, dtype_of(part));
                if !agrees {
                    return Err(ShapeError::Concat { a: shape_text(&shape), b: shape_text(&other), axis: *axis });
                }
                shape[*axis] = shape[*axis].add(&other[*axis]);
            }
            Ok(shape)
        }
        Expr::Cast { input, .. } => shape_of(input),
        Expr::Pad { input, axis, after, .. } => {
            let mut shape = shape_of(input)?;
            let size = axis_size(&shape, *axis)?;
            check_sizes(std::slice::from_ref(after))?;
            shape[*axis] = size.add(after);
            Ok(shape)
        }
        Expr::Fill { shape, init, .. } => {
            check_sizes(shape)?;
            if *init == Init::Eye && shape.len() != 2 {
                return Err(ShapeError::Eye { shape: shape_text(shape) });
            }
            Ok(shape.clone())
        }
        Expr::Gather { input, axis, index } => {
            let mut shape = shape_of(input)?;
            axis_size(&shape, *axis)?;
            let index_shape = shape_of(index)?;
            if index_shape.len() != 1 {
                return Err(ShapeError::Index { shape: shape_text(&index_shape) });
            }
            shape[*axis] = index_shape[0].clone();
            Ok(shape)
        }
        Expr::Merge { inputs } => {
            let Some((first, rest)) = inputs.split_first() else {
                return Err(ShapeError::EmptyConcat);
            };
            let shape = shape_of(first)?;
            for other in rest {
                let other_shape = shape_of(other)?;
                if other_shape != shape || !compatible(dtype_of(first), dtype_of(other)) {
                    return Err(ShapeError::Concat { a: shape_text(&shape), b: shape_text(&other_shape), axis: 0 });
                }
            }
            Ok(shape)
        }
        Expr::InversePermutation { index: input } | Expr::Argsort { input } => {
            let index_shape = shape_of(input)?;
            if index_shape.len() != 1 {
                return Err(ShapeError::Index { shape: shape_text(&index_shape) });
            }
            Ok(index_shape)
        }
    }
}

/// The dtype of the tensor an expression computes.
pub fn dtype_of(expr: &Expr) -> DTypeClass {
    match expr {
        Expr::Source(leaf) => leaf.dtype,
        Expr::Cast { dtype, .. } => DTypeClass::Exact(*dtype),
        Expr::Fill { dtype, .. } => *dtype,
        Expr::InversePermutation { .. } | Expr::Argsort { .. } => DTypeClass::Exact(DType::I64),
        Expr::Reshape { input, .. }
        | Expr::Permute { input, .. }
        | Expr::Narrow { input, .. }
        | Expr::Pad { input, .. }
        | Expr::Gather { input, .. } => dtype_of(input),
        Expr::Concat { inputs, .. } | Expr::Merge { inputs } => inputs.first().map_or(DTypeClass::Any, dtype_of),
    }
}

/// Whether two dtype classes may hold the same dtype (exact dtypes must be equal).
fn compatible(a: DTypeClass, b: DTypeClass) -> bool {
    match (a, b) {
        (DTypeClass::Exact(a), DTypeClass::Exact(b)) => a == b,
        _ => true,
    }
}

fn axis_size(shape: &[Sym], axis: usize) -> Result<Sym, ShapeError> {
    shape.get(axis).cloned().ok_or(ShapeError::AxisOutOfRange { axis, rank: shape.len() })
}

/// Whether `axes` is a permutation of `0..rank`.
pub(crate) fn is_permutation(axes: &[usize], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    axes.len() == rank && axes.iter().all(|&axis| axis < rank && !std::mem::replace(&mut seen[axis], true))
}

/// Whether a sym can be a size: a non-negative integer, or symbolic.
pub(crate) fn is_size(sym: &Sym) -> bool {
    match sym.as_int() {
        Some(value) => value >= 0,
        None => !sym.dims().is_empty(),
    }
}

fn check_sizes(shape: &[Sym]) -> Result<(), ShapeError> {
    match shape.iter().find(|dim| !is_size(dim)) {
        Some(bad) => Err(ShapeError::Size { size: bad.to_string() }),
        None => Ok(()),
    }
}

impl fmt::Display for Expr {
    /// A compact one-line rendering for plans and messages: `narrow(src("a"), 0, 0, 4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Source(leaf) => match &leaf.aux {
                None => write!(f, "{:?}", leaf.name),
                Some(input) => write!(f, "{input}[{:?}]", leaf.name),
            },
            Expr::Reshape { input, shape } => write!(f, "reshape({input}, [{}])", shape_text(shape)),
            Expr::Permute { input, axes } => write!(f, "permute({input}, {axes:?})"),
            Expr::Narrow { input, axis, start, len } => write!(f, "narrow({input}, {axis}, {start}, {len})"),
            Expr::Concat { inputs, axis } => {
                f.write_str("concat(")?;
                for input in inputs {
                    write!(f, "{input}, ")?;
                }
                write!(f, "{axis})")
            }
            Expr::Cast { input, dtype, mode: CastMode::Torch } => write!(f, "cast({input}, {dtype})"),
            Expr::Cast { input, dtype, mode: CastMode::Restore } => write!(f, "restore({input}, {dtype})"),
            Expr::Pad { input, axis, after, value } => write!(f, "pad({input}, {axis}, {after}, {value})"),
            Expr::Fill { dtype, shape, init } => write!(f, "fill({dtype}[{}], {init:?})", shape_text(shape)),
            Expr::Gather { input, axis, index } => write!(f, "gather({input}, {axis}, {index})"),
            Expr::InversePermutation { index } => write!(f, "inverse_permutation({index})"),
            Expr::Argsort { input } => write!(f, "argsort({input})"),
            Expr::Merge { inputs } => {
                f.write_str("merge(")?;
                for (position, input) in inputs.iter().enumerate() {
                    if position > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{input}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(shape: &[i64]) -> Expr {
        Expr::Source(Leaf {
            aux: None,
            name: "w".into(),
            dtype: DTypeClass::Exact(DType::F32),
            shape: shape.iter().map(|&d| Sym::int(d)).collect(),
        })
    }

    #[test]
    fn shape_rules_check_their_inputs() {
        let w = Box::new(source(&[6, 4]));
        let reshape = Expr::Reshape { input: w.clone(), shape: vec![Sym::int(3), Sym::int(8)] };
        assert_eq!(shape_of(&reshape).unwrap(), vec![Sym::int(3), Sym::int(8)]);
        let bad = Expr::Reshape { input: w.clone(), shape: vec![Sym::int(5)] };
        assert!(matches!(shape_of(&bad), Err(ShapeError::Reshape { .. })));
        let narrow = Expr::Narrow { input: w.clone(), axis: 0, start: Sym::int(4), len: Sym::int(3) };
        assert!(matches!(shape_of(&narrow), Err(ShapeError::Narrow { .. })));
        let permute = Expr::Permute { input: w.clone(), axes: vec![0, 0] };
        assert!(matches!(shape_of(&permute), Err(ShapeError::Permutation { .. })));
        let concat = Expr::Concat { inputs: vec![source(&[6, 4]), source(&[2, 4])], axis: 0 };
        assert_eq!(shape_of(&concat).unwrap(), vec![Sym::int(8), Sym::int(4)]);
        let concat = Expr::Concat { inputs: vec![source(&[6, 4]), source(&[6, 3])], axis: 0 };
        assert!(matches!(shape_of(&concat), Err(ShapeError::Concat { .. })));
    }

    #[test]
    fn symbolic_shapes_compose() {
        let hidden = Sym::dim("hidden");
        let fused = Expr::Source(Leaf {
            aux: None,
            name: "qkv".into(),
            dtype: DTypeClass::Float,
            shape: vec![Sym::int(3).mul(&hidden), hidden.clone()],
        });
        let q = Expr::Narrow { input: Box::new(fused), axis: 0, start: Sym::int(0), len: hidden.clone() };
        assert_eq!(shape_of(&q).unwrap(), vec![hidden.clone(), hidden]);
    }
}
