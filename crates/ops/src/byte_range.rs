//! Which expressions are a contiguous byte range of one source: the zero-copy test.
//!
//! A source tensor is its own bytes; a reshape keeps the row-major order so it keeps the
//! range; a narrow along an axis whose preceding axes all have size 1 is a sub-range. After
//! [`simplify`](crate::simplify()) that covers renames, reshapes, splits and truncations
//! along the first axis, row slices of those, and chains of them. The engine then borrows
//! these bytes from the map instead of computing anything.

use safeshift_model::{DTypeClass, Sym};

use crate::expr::{numel, shape_of, Expr, Leaf};
use crate::simplify::simplify;

/// A contiguous run of bytes of one source tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// The tensor's name in its file.
    pub source: String,
    /// `None` for the input checkpoint, the aux input's name otherwise.
    pub aux: Option<String>,
    /// Offset of the first byte, relative to the start of the tensor's data.
    pub start: u64,
    /// Offset one past the last byte.
    pub end: u64,
}

/// `Some` exactly when the simplified `expr` is a contiguous byte range of one source
/// whose shape is concrete.
pub fn byte_range(expr: &Expr) -> Option<ByteRange> {
    range_of_simplified(&simplify(expr.clone()))
}

/// [`byte_range`] of an expression that is already simplified (a planned tensor's).
pub(crate) fn range_of_simplified(simplified: &Expr) -> Option<ByteRange> {
    let (leaf, start_bits, end_bits) = bit_range(simplified)?;
    if start_bits % 8 != 0 || end_bits % 8 != 0 {
        return None;
    }
    Some(ByteRange { source: leaf.name.clone(), aux: leaf.aux.clone(), start: start_bits / 8, end: end_bits / 8 })
}

/// Whether `expr` (as written) is a chain of sources, reshapes and range-preserving
/// narrows: the shapes the kernel can view without copying.
pub(crate) fn is_contiguous_chain(expr: &Expr) -> bool {
    bit_range(expr).is_some()
}

fn bit_range(expr: &Expr) -> Option<(&Leaf, u64, u64)> {
    match expr {
        Expr::Source(leaf) => {
            let DTypeClass::Exact(dtype) = leaf.dtype else {
                return None;
            };
            let count = concrete(&numel(&leaf.shape))?;
            Some((leaf, 0, count.checked_mul(dtype.bits() as u64)?))
        }
        Expr::Reshape { input, .. } => bit_range(input),
        Expr::Narrow { input, axis, start, len } => {
            let shape = shape_of(input).ok()?;
            if shape[..*axis].iter().any(|dim| *dim != Sym::int(1)) {
                return None;
            }
            let (leaf, base, end) = bit_range(input)?;
            let row_elems = concrete(&numel(&shape[axis + 1..]))?;
            let DTypeClass::Exact(dtype) = leaf.dtype else {
                return None;
            };
            let row_bits = row_elems.checked_mul(dtype.bits() as u64)?;
            let first = base.checked_add(concrete(start)?.checked_mul(row_bits)?)?;
            let last = first.checked_add(concrete(len)?.checked_mul(row_bits)?)?;
            (last <= end).then_some((leaf, first, last))
        }
        _ => None,
    }
}

fn concrete(sym: &Sym) -> Option<u64> {
    u64::try_from(sym.as_int()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_model::DType;

    fn source(dtype: DType, shape: &[i64]) -> Expr {
        Expr::Source(Leaf {
            aux: None,
            name: "w".into(),
            dtype: DTypeClass::Exact(dtype),
            shape: shape.iter().map(|&d| Sym::int(d)).collect(),
        })
    }

    #[test]
    fn source_and_first_axis_narrow_are_ranges() {
        let w = source(DType::F32, &[6, 4]);
        assert_eq!(byte_range(&w).map(|r| (r.start, r.end)), Some((0, 96)));
        let rows = Expr::Narrow { input: Box::new(w.clone()), axis: 0, start: Sym::int(2), len: Sym::int(3) };
        assert_eq!(byte_range(&rows).map(|r| (r.start, r.end)), Some((32, 80)));
        let cols = Expr::Narrow { input: Box::new(w), axis: 1, start: Sym::int(0), len: Sym::int(2) };
        assert_eq!(byte_range(&cols), None);
    }

    #[test]
    fn narrow_after_unit_axes_is_a_range() {
        let w = source(DType::BF16, &[1, 6, 4]);
        let rows = Expr::Narrow { input: Box::new(w), axis: 1, start: Sym::int(1), len: Sym::int(2) };
        assert_eq!(byte_range(&rows).map(|r| (r.start, r.end)), Some((8, 24)));
    }

    #[test]
    fn symbolic_shapes_have_no_range() {
        let w =
            Expr::Source(Leaf { aux: None, name: "w".into(), dtype: DTypeClass::Float, shape: vec![Sym::dim("n")] });
        assert_eq!(byte_range(&w), None);
    }
}
