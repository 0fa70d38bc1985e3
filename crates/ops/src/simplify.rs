//! Algebraic simplification of expressions, so that chains of operations collapse.
//!
//! The rules (each preserves the computed bytes exactly):
//! * reshape ∘ reshape = one reshape; a reshape to the input's own shape disappears;
//! * permute ∘ permute = one permute (a transpose pair cancels); the identity permutation
//!   disappears; a permutation that only moves size-1 axes is a reshape;
//! * narrow ∘ narrow along one axis = one narrow; a narrow of the whole axis disappears;
//! * a cast to the dtype the input already has disappears;
//! * nested concats along one axis flatten; adjacent narrows of one tensor along the
//!   concat axis merge (so split then concat is the original); a concat of one part is it;
//! * a narrow is pushed towards the sources: through permute, cast, pad, fill, gather and
//!   concat (picking the parts it overlaps), and through a reshape when rows align.
//!
//! Pushing narrows down is what turns a row slice of a computed tensor into a slice of its
//! sources, and a slice of a split back into a byte range of the input file.

use safeshift_model::{DTypeClass, Sym};

use crate::expr::{numel, shape_of, Expr, Init};

/// Simplifies `expr`: bottom-up passes until nothing changes (one rule can enable
/// another higher up), so the result is a fixed point. An ill-formed expression is
/// returned as it is.
pub fn simplify(expr: Expr) -> Expr {
    // A leaf is its own fixed point (most outputs of a plan of renames are leaves).
    if matches!(expr, Expr::Source(_) | Expr::Fill { .. }) {
        return expr;
    }
    let mut current = expr;
    // Each pass only shrinks or reorders; the bound is a guard, not a tuning knob.
    for _ in 0..16 {
        let next = simplify_once(current.clone());
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn simplify_once(expr: Expr) -> Expr {
    match expr {
        Expr::Source(_) | Expr::Fill { .. } => expr,
        Expr::Reshape { input, shape } => reshape(simplify_once(*input), shape),
        Expr::Permute { input, axes } => permute(simplify_once(*input), axes),
        Expr::Narrow { input, axis, start, len } => narrow(simplify_once(*input), axis, start, len),
        Expr::Concat { inputs, axis } => concat(inputs.into_iter().map(simplify_once).collect(), axis),
        Expr::Cast { input, dtype, mode } => {
            let input = simplify_once(*input);
            if crate::expr::dtype_of(&input) == DTypeClass::Exact(dtype) {
                return input;
            }
            Expr::Cast { input: Box::new(input), dtype, mode }
        }
        Expr::Pad { input, axis, after, value } => {
            let input = simplify_once(*input);
            if after == Sym::int(0) {
                return input;
            }
            Expr::Pad { input: Box::new(input), axis, after, value }
        }
        Expr::Gather { input, axis, index } => {
            Expr::Gather { input: Box::new(simplify_once(*input)), axis, index: Box::new(simplify_once(*index)) }
        }
        Expr::InversePermutation { index } => Expr::InversePermutation { index: Box::new(simplify_once(*index)) },
        Expr::Argsort { input } => Expr::Argsort { input: Box::new(simplify_once(*input)) },
        Expr::Merge { inputs } => Expr::Merge { inputs: inputs.into_iter().map(simplify_once).collect() },
    }
}

/// Builds `reshape(input, shape)` for a simplified `input`.
fn reshape(input: Expr, shape: Vec<Sym>) -> Expr {
    let input = match input {
        Expr::Reshape { input: inner, .. } => *inner,
        Expr::Fill { dtype, init, .. } if init != Init::Eye => return Expr::Fill { dtype, shape, init },
        other => other,
    };
    if shape_of(&input).is_ok_and(|own| own == shape) {
        return input;
    }
    Expr::Reshape { input: Box::new(input), shape }
}

/// Builds `permute(input, axes)` for a simplified `input`.
fn permute(input: Expr, axes: Vec<usize>) -> Expr {
    let (input, axes) = match input {
        // Output axis j of the outer permute is axis `inner[outer[j]]` of the inner input.
        Expr::Permute { input: inner, axes: inner_axes } if inner_axes.len() == axes.len() => {
            let composed = axes.iter().map(|&axis| inner_axes[axis]).collect();
            (*inner, composed)
        }
        other => (other, axes),
    };
    if axes.iter().enumerate().all(|(i, &axis)| i == axis) {
        return input;
    }
    if let Ok(shape) = shape_of(&input) {
        if axes.len() == shape.len() {
            // Moving only size-1 axes keeps the row-major order of the elements.
            let one = Sym::int(1);
            let moved: Vec<usize> = axes.iter().copied().filter(|&axis| shape[axis] != one).collect();
            if moved.windows(2).all(|pair| pair[0] < pair[1]) {
                let out_shape = axes.iter().map(|&axis| shape[axis].clone()).collect();
                return reshape(input, out_shape);
            }
        }
    }
    Expr::Permute { input: Box::new(input), axes }
}

/// Builds `concat(inputs, axis)` for simplified inputs.
fn concat(inputs: Vec<Expr>, axis: usize) -> Expr {
    let mut parts: Vec<Expr> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let flattened = match input {
            Expr::Concat { inputs: inner, axis: inner_axis } if inner_axis == axis => inner,
            other => vec![other],
        };
        for part in flattened {
            if let Some(merged) = parts.last_mut().and_then(|last| merge_adjacent(last, &part, axis)) {
                *parts.last_mut().expect("checked above") = merged;
            } else {
                parts.push(part);
            }
        }
    }
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    Expr::Concat { inputs: parts, axis }
}

/// `narrow(x, a, s, l) ++ narrow(x, a, s + l, m)` along `a` is `narrow(x, a, s, l + m)`.
fn merge_adjacent(first: &Expr, second: &Expr, axis: usize) -> Option<Expr> {
    let (
        Expr::Narrow { input: a, axis: axis_a, start: start_a, len: len_a },
        Expr::Narrow { input: b, axis: axis_b, start: start_b, len: len_b },
    ) = (first, second)
    else {
        return None;
    };
    if *axis_a != axis || *axis_b != axis || a != b || start_a.add(len_a) != *start_b {
        return None;
    }
    Some(narrow((**a).clone(), axis, start_a.clone(), len_a.add(len_b)))
}

/// Builds `narrow(input, axis, start, len)` for a simplified `input`, pushing it down.
pub(crate) fn narrow(input: Expr, axis: usize, start: Sym, len: Sym) -> Expr {
    let Ok(shape) = shape_of(&input) else {
        return Expr::Narrow { input: Box::new(input), axis, start, len };
    };
    let Some(size) = shape.get(axis).cloned() else {
        return Expr::Narrow { input: Box::new(input), axis, start, len };
    };
    if start == Sym::int(0) && len == size {
        return input;
    }
    let keep = |input: Expr| Expr::Narrow { input: Box::new(input), axis, start: start.clone(), len: len.clone() };
    match input {
        Expr::Narrow { input: inner, axis: inner_axis, start: inner_start, len: _ } if inner_axis == axis => {
            narrow(*inner, axis, inner_start.add(&start), len)
        }
        // Narrows on different axes commute; the one on the lower axis goes inside, so a
        // chain of them reads as a byte range when the leading axes shrink to size 1.
        Expr::Narrow { input: inner, axis: inner_axis, start: inner_start, len: inner_len } if inner_axis > axis => {
            narrow(narrow(*inner, axis, start, len), inner_axis, inner_start, inner_len)
        }
        Expr::Permute { input: inner, axes } => {
            let inner_axis = axes[axis];
            permute(narrow(*inner, inner_axis, start, len), axes)
        }
        Expr::Cast { input: inner, dtype, mode } => {
            Expr::Cast { input: Box::new(narrow(*inner, axis, start, len)), dtype, mode }
        }
        Expr::Fill { dtype, mut shape, init } if init != Init::Eye => {
            shape[axis] = len;
            Expr::Fill { dtype, shape, init }
        }
        Expr::Pad { input: inner, axis: pad_axis, after, value } => {
            if pad_axis != axis {
                let narrowed = narrow(*inner, axis, start, len);
                return Expr::Pad { input: Box::new(narrowed), axis: pad_axis, after, value };
            }
            let inner_size = shape_of(&inner).ok().map(|s| s[axis].clone());
            let within = match (start.add(&len).as_int(), inner_size.as_ref().and_then(Sym::as_int)) {
                (Some(end), Some(inner_size)) => end <= inner_size,
                _ => false,
            };
            if within {
                return narrow(*inner, axis, start, len);
            }
            keep(Expr::Pad { input: inner, axis: pad_axis, after, value })
        }
        Expr::Gather { input: inner, axis: gather_axis, index } => {
            if gather_axis == axis {
                let index = narrow(*index, 0, start, len);
                return Expr::Gather { input: inner, axis, index: Box::new(index) };
            }
            let narrowed = narrow(*inner, axis, start, len);
            Expr::Gather { input: Box::new(narrowed), axis: gather_axis, index }
        }
        Expr::Concat { inputs, axis: concat_axis } => {
            if concat_axis != axis {
                let parts = inputs.into_iter().map(|part| narrow(part, axis, start.clone(), len.clone())).collect();
                return concat(parts, concat_axis);
            }
            narrow_concat(inputs, axis, start, len)
        }
        Expr::Reshape { input: inner, shape: out_shape } if axis == 0 => narrow_reshape(*inner, out_shape, start, len),
        other => keep(other),
    }
}

/// A narrow of a concat along the concat axis: the parts it overlaps, each narrowed.
fn narrow_concat(inputs: Vec<Expr>, axis: usize, start: Sym, len: Sym) -> Expr {
    let sizes: Option<Vec<Sym>> = inputs.iter().map(|part| shape_of(part).ok().map(|s| s[axis].clone())).collect();
    let rebuild = |inputs: Vec<Expr>, start: Sym, len: Sym| Expr::Narrow {
        input: Box::new(Expr::Concat { inputs, axis }),
        axis,
        start,
        len,
    };
    let Some(sizes) = sizes else {
        return rebuild(inputs, start, len);
    };
    let Some(first_part) = inputs.first().cloned() else {
        return rebuild(inputs, start, len);
    };
    // Symbolic: only an exact part can be picked.
    let mut offset = Sym::int(0);
    for (index, size) in sizes.iter().enumerate() {
        if offset == start && *size == len {
            return inputs.into_iter().nth(index).expect("index in range");
        }
        offset = offset.add(size);
    }
    let concrete: Option<Vec<i64>> = sizes.iter().map(Sym::as_int).collect();
    let (Some(concrete), Some(first), Some(count)) = (concrete, start.as_int(), len.as_int()) else {
        return rebuild(inputs, start, len);
    };
    let end = first + count;
    let mut parts = Vec::new();
    let mut offset = 0i64;
    for (part, size) in inputs.into_iter().zip(concrete) {
        let (lo, hi) = (first.max(offset), end.min(offset + size));
        if lo < hi {
            parts.push(narrow(part, axis, Sym::int(lo - offset), Sym::int(hi - lo)));
        }
        offset += size;
    }
    if parts.is_empty() {
        // An empty slice: zero indices of the first part have the right shape.
        return Expr::Narrow { input: Box::new(first_part), axis, start: Sym::int(0), len: Sym::int(0) };
    }
    concat(parts, axis)
}

/// Rows `start..start + len` of `reshape(inner, out_shape)`.
fn narrow_reshape(inner: Expr, out_shape: Vec<Sym>, start: Sym, len: Sym) -> Expr {
    let mut sliced_shape = out_shape.clone();
    sliced_shape[0] = len.clone();
    let out_row = numel(&out_shape[1..]);
    let Ok(in_shape) = shape_of(&inner) else {
        return Expr::Narrow {
            input: Box::new(Expr::Reshape { input: Box::new(inner), shape: out_shape }),
            axis: 0,
            start,
            len,
        };
    };
    if let Some(in_first) = in_shape.first() {
        let in_row = numel(&in_shape[1..]);
        // Equal row sizes mean equal rows only if the row counts agree (rows may be empty).
        if in_row == out_row && *in_first == out_shape[0] {
            return reshape(narrow(inner, 0, start, len), sliced_shape);
        }
        // Rows of the output map to whole rows of the input when the row sizes divide.
        let (first, count, out_row, in_row) = (start.as_int(), len.as_int(), out_row.as_int(), in_row.as_int());
        if let (Some(first), Some(count), Some(out_row), Some(in_row)) = (first, count, out_row, in_row) {
            let (begin, size) = (first * out_row, count * out_row);
            if in_row > 0 && begin % in_row == 0 && size % in_row == 0 {
                return reshape(narrow(inner, 0, Sym::int(begin / in_row), Sym::int(size / in_row)), sliced_shape);
            }
        }
    }
    // A contiguous chain can always be flattened and sliced as a run of elements.
    // (Built directly: narrowing the flat reshape would come back here.)
    if in_shape.len() > 1 && crate::byte_range::is_contiguous_chain(&inner) {
        let flat = reshape(inner, vec![numel(&in_shape)]);
        let flat_slice =
            Expr::Narrow { input: Box::new(flat), axis: 0, start: start.mul(&out_row), len: len.mul(&out_row) };
        return reshape(flat_slice, sliced_shape);
    }
    Expr::Narrow { input: Box::new(Expr::Reshape { input: Box::new(inner), shape: out_shape }), axis: 0, start, len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Leaf;
    use safeshift_model::DType;

    fn ints(values: &[i64]) -> Vec<Sym> {
        values.iter().map(|&v| Sym::int(v)).collect()
    }

    fn source(shape: &[i64]) -> Expr {
        Expr::Source(Leaf { aux: None, name: "w".into(), dtype: DTypeClass::Exact(DType::F32), shape: ints(shape) })
    }

    #[test]
    fn reshape_chains_collapse_to_the_source() {
        let w = source(&[6, 4]);
        let twice = Expr::Reshape {
            input: Box::new(Expr::Reshape { input: Box::new(w.clone()), shape: ints(&[24]) }),
            shape: ints(&[6, 4]),
        };
        assert_eq!(simplify(twice), w);
    }

    #[test]
    fn transpose_pair_cancels() {
        let w = source(&[6, 4]);
        let t = Expr::Permute { input: Box::new(w.clone()), axes: vec![1, 0] };
        let tt = Expr::Permute { input: Box::new(t), axes: vec![1, 0] };
        assert_eq!(simplify(tt), w);
    }

    #[test]
    fn permutes_compose() {
        let w = source(&[2, 3, 4]);
        let a = Expr::Permute { input: Box::new(w.clone()), axes: vec![1, 2, 0] };
        let b = Expr::Permute { input: Box::new(a), axes: vec![2, 0, 1] };
        assert_eq!(simplify(b), w);
    }

    #[test]
    fn split_then_concat_is_the_source() {
        let w = source(&[6, 4]);
        let part = |start, len| Expr::Narrow {
            input: Box::new(w.clone()),
            axis: 0,
            start: Sym::int(start),
            len: Sym::int(len),
        };
        let concat = Expr::Concat { inputs: vec![part(0, 2), part(2, 1), part(3, 3)], axis: 0 };
        assert_eq!(simplify(concat), w);
    }

    #[test]
    fn narrow_of_concat_picks_the_part() {
        let a = source(&[2, 4]);
        let b = Expr::Source(Leaf {
            name: "b".into(),
            ..match source(&[3, 4]) {
                Expr::Source(l) => l,
                _ => unreachable!(),
            }
        });
        let concat = Expr::Concat { inputs: vec![a, b.clone()], axis: 0 };
        let narrow = Expr::Narrow { input: Box::new(concat), axis: 0, start: Sym::int(2), len: Sym::int(3) };
        assert_eq!(simplify(narrow), b);
    }

    #[test]
    fn unit_axis_permute_is_a_reshape() {
        let w = source(&[1, 5]);
        let t = Expr::Permute { input: Box::new(w.clone()), axes: vec![1, 0] };
        assert_eq!(simplify(t), Expr::Reshape { input: Box::new(w), shape: ints(&[5, 1]) });
    }
}
