//! Copying a strided view of a buffer into a row-major buffer: the kernel behind every
//! chain of reshapes, permutations and narrows (transposes, head splits, column slices).
//!
//! Axes are coalesced first, so that the innermost run is as long as possible. A run that
//! is contiguous in the source is one `memcpy`; a transpose of the two innermost axes is
//! copied in tiles ([`transpose`]); other strided runs are gathered element by element,
//! with a loop specialised for the element size.

mod transpose;

use transpose::copy_transposed;

/// Copies the view (`offset`, `shape`, `strides` in elements of `elem` bytes) of `data`
/// into `out`, row-major. `out` holds exactly the viewed elements, and every viewed
/// element lies inside `data` (the view was derived from `data`'s own shape).
pub(crate) fn copy_strided(
    data: &[u8],
    elem: usize,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
    out: &mut [u8],
) {
    let mut dims = coalesce(shape, strides);
    let Some((inner_size, inner_stride)) = dims.pop() else {
        out.copy_from_slice(&data[offset * elem..(offset + 1) * elem]);
        return;
    };
    // A transpose of the two innermost axes (the source is contiguous along the other
    // one): copy in tiles, so that both sides stay in cache.
    let tile = match dims.last() {
        Some(&(rows, 1)) if inner_stride != 1 => {
            dims.pop();
            Some(rows)
        }
        _ => None,
    };
    let chunk = inner_size * elem * tile.unwrap_or(1);
    let mut index = vec![0usize; dims.len()];
    let mut base = offset;
    for out_chunk in out.chunks_exact_mut(chunk) {
        match tile {
            Some(rows) => copy_transposed(data, elem, base, rows, inner_size, inner_stride, out_chunk),
            None => copy_run(data, elem, base, inner_size, inner_stride, out_chunk),
        }
        advance(&dims, &mut index, &mut base);
    }
}

/// Moves `index` (over `dims`, (size, stride) each) to the next position in row-major
/// order, and `base` (an element offset) with it; past the last one, back to the first.
pub(crate) fn advance(dims: &[(usize, usize)], index: &mut [usize], base: &mut usize) {
    for axis in (0..dims.len()).rev() {
        index[axis] += 1;
        *base += dims[axis].1;
        if index[axis] < dims[axis].0 {
            return;
        }
        *base -= dims[axis].1 * dims[axis].0;
        index[axis] = 0;
    }
}

/// (size, stride) per axis, size-1 axes dropped and axes that are contiguous with their
/// inner neighbour merged.
pub(crate) fn coalesce(shape: &[usize], strides: &[usize]) -> Vec<(usize, usize)> {
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&size, &stride) in shape.iter().zip(strides) {
        if size == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(outer) if outer.1 == size * stride => *outer = (outer.0 * size, stride),
            _ => dims.push((size, stride)),
        }
    }
    dims
}

/// `out[k] = data[base + k·stride]` for the `count` elements of `out`.
pub(super) fn copy_run(data: &[u8], elem: usize, base: usize, count: usize, stride: usize, out: &mut [u8]) {
    if stride == 1 {
        out.copy_from_slice(&data[base * elem..(base + count) * elem]);
        return;
    }
    match elem {
        1 => gather_elements::<1>(data, base, stride, out),
        2 => gather_elements::<2>(data, base, stride, out),
        4 => gather_elements::<4>(data, base, stride, out),
        8 => gather_elements::<8>(data, base, stride, out),
        _ => {
            for (k, dst) in out.chunks_exact_mut(elem).enumerate() {
                let at = (base + k * stride) * elem;
                dst.copy_from_slice(&data[at..at + elem]);
            }
        }
    }
}

/// `out[k] = data[base + k·stride]` for the `N`-byte elements of `out`.
#[inline(always)]
pub(super) fn gather_elements<const N: usize>(data: &[u8], base: usize, stride: usize, out: &mut [u8]) {
    for (k, dst) in out.chunks_exact_mut(N).enumerate() {
        let at = (base + k * stride) * N;
        let src: &[u8; N] = data[at..at + N].try_into().expect("N bytes");
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests;
