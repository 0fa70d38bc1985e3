use proptest::prelude::*;

use super::copy_strided;

/// The viewed elements, row-major, one element at a time: the reference.
fn naive(data: &[u8], elem: usize, offset: usize, shape: &[usize], strides: &[usize]) -> Vec<u8> {
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(count * elem);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let at = offset + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&data[at * elem..(at + 1) * elem]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// A contiguous tensor's shape, a permutation of its axes and a narrow of each axis
/// (start and length as fractions), sized so that whole transposed tiles (up to 64 × 64
/// one-byte elements) and ragged edges both occur.
/// Element size, shape, axes, and (start, length) fractions per axis.
type ViewCase = (usize, Vec<usize>, Vec<usize>, Vec<(f64, f64)>);

fn arb_view() -> impl Strategy<Value = ViewCase> {
    let elem = prop::sample::select(vec![1usize, 2, 3, 4, 8]);
    let dims = prop::collection::vec(prop_oneof![3 => 1usize..8, 2 => 8usize..140], 1..5)
        .prop_filter("at most 100,000 elements", |shape| shape.iter().product::<usize>() <= 100_000);
    (elem, dims).prop_flat_map(|(elem, shape)| {
        let rank = shape.len();
        let axes = Just((0..rank).collect::<Vec<_>>()).prop_shuffle();
        let narrows = prop::collection::vec((0.0..1.0f64, 0.0..=1.0f64), rank);
        (Just(elem), Just(shape), axes, narrows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn strided_copy_equals_the_element_by_element_reference((elem, shape, axes, narrows) in arb_view()) {
        let count: usize = shape.iter().product();
        let data: Vec<u8> = (0..count * elem).map(|i| (i * 131 + i / 251) as u8).collect();
        let mut strides = vec![1usize; shape.len()];
        for axis in (0..shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * shape[axis + 1];
        }
        let mut view_shape: Vec<usize> = axes.iter().map(|&axis| shape[axis]).collect();
        let view_strides: Vec<usize> = axes.iter().map(|&axis| strides[axis]).collect();
        let mut offset = 0;
        for ((size, stride), (start, len)) in view_shape.iter_mut().zip(&view_strides).zip(&narrows) {
            let first = (start * *size as f64) as usize % *size;
            let kept = ((len * (*size - first) as f64).ceil() as usize).clamp(1, *size - first);
            offset += first * stride;
            *size = kept;
        }
        let expected = naive(&data, elem, offset, &view_shape, &view_strides);
        let mut out = vec![0xA5u8; expected.len()];
        copy_strided(&data, elem, offset, &view_shape, &view_strides, &mut out);
        prop_assert!(out == expected, "shape {view_shape:?} strides {view_strides:?} offset {offset} elem {elem}");
    }
}

#[test]
fn transposes_of_whole_and_ragged_tiles() {
    for elem in [1usize, 2, 4, 8] {
        for (rows, cols) in [(64, 64), (128, 64), (65, 130), (1, 200), (200, 1), (63, 63), (16, 33)] {
            let data: Vec<u8> = (0..rows * cols * elem).map(|i| (i % 253) as u8).collect();
            // The transpose of a contiguous [rows, cols] tensor.
            let (shape, strides) = ([cols, rows], [1, cols]);
            let expected = naive(&data, elem, 0, &shape, &strides);
            let mut out = vec![0u8; expected.len()];
            copy_strided(&data, elem, 0, &shape, &strides, &mut out);
            assert!(out == expected, "{rows}×{cols}, {elem}-byte elements");
        }
    }
}

/// Transposes whose output is large enough for streaming stores (4 MiB), its rows whole lines,
/// written 16 bytes past a line boundary as a fresh allocation often is, through the
/// kernel the CPU chooses.
#[test]
fn large_transposes_equal_the_reference() {
    for (elem, rows, cols) in [(2usize, 1472usize, 1537usize), (4, 1088, 1025), (8, 704, 769)] {
        assert!(rows * cols * elem >= 4 << 20);
        let data: Vec<u8> = (0..rows * cols * elem).map(|i| (i * 131 + i / 251) as u8).collect();
        let (shape, strides) = ([cols, rows], [1, cols]);
        let expected = naive(&data, elem, 0, &shape, &strides);
        let mut buffer = vec![0u8; expected.len() + 128];
        let start = (64 - buffer.as_ptr() as usize % 64) % 64 + 16;
        let out = &mut buffer[start..start + expected.len()];
        copy_strided(&data, elem, 0, &shape, &strides, out);
        assert!(*out == expected, "{rows}×{cols}, {elem}-byte elements");
    }
}
