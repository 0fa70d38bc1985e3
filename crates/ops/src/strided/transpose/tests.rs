use proptest::prelude::*;

use super::*;

/// The SSE2 tile equals the element-by-element one for every element size.
#[test]
fn vector_tile_equals_scalar_tile() {
    fn check<const N: usize>() {
        let mut lines: Lines = [[0u8; LINE]; LINE];
        for (b, line) in lines.iter_mut().enumerate() {
            for (i, byte) in line.iter_mut().enumerate() {
                *byte = (b * 67 + i * 3) as u8;
            }
        }
        let row_bytes = LINE + 24; // output lines are not adjacent
        let size = (LINE / N - 1) * row_bytes + LINE;
        let (mut vector, mut scalar) = (vec![0u8; size], vec![0u8; size]);
        transpose_tile::<N>(&lines, &mut vector, row_bytes);
        transpose_tile_scalar::<N>(&lines, &mut scalar, row_bytes);
        assert_eq!(vector, scalar, "{N}-byte elements");
    }
    check::<1>();
    check::<2>();
    check::<4>();
    check::<8>();
}

/// The tile kernels this CPU runs for `N`-byte elements.
fn kernels<const N: usize>() -> Vec<TileKernel> {
    let mut kernels = vec![TileKernel::Buffered];
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::supports::<N>() {
            kernels.push(TileKernel::Avx2);
        }
        if avx512::supports::<N>() {
            kernels.push(TileKernel::Avx512);
        }
    }
    kernels
}

/// A buffer of `len` bytes whose slice `start..start + len` begins `skew` bytes past a
/// line boundary.
fn skewed(len: usize, skew: usize) -> (Vec<u8>, usize) {
    let buffer = vec![0u8; len + 2 * LINE];
    let start = (LINE - buffer.as_ptr() as usize % LINE) % LINE + skew % LINE;
    (buffer, start)
}

/// Every tile kernel this CPU runs, with plain and with streaming stores, equals the
/// element-by-element gather on a transpose of `rows` × `cols` with row stride `stride`,
/// read from `source_skew` bytes past a line boundary and written `out_skew` bytes past one.
fn check_kernels<const N: usize>(
    rows: usize,
    cols: usize,
    stride: usize,
    source_skew: usize,
    out_skew: usize,
) -> Result<(), TestCaseError> {
    let base = 3.min(stride - rows);
    let (mut source, from) = skewed((cols * stride + rows) * N, source_skew);
    let data = &mut source[from..from + (cols * stride + rows) * N];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (i * 131 + i / 251) as u8;
    }
    let data = &*data;
    let mut expected = vec![0u8; rows * cols * N];
    for a in 0..rows {
        gather_elements::<N>(data, base + a, stride, &mut expected[a * cols * N..(a + 1) * cols * N]);
    }
    let (mut buffer, start) = skewed(expected.len(), out_skew);
    for kernel in kernels::<N>() {
        for stream in [false, true] {
            let out = &mut buffer[start..start + expected.len()];
            out.fill(0xA5);
            transpose_tiles_with::<N>(kernel, stream, data, base, rows, cols, stride, out);
            prop_assert!(
                *out == expected,
                "{kernel:?}, streaming {stream}, {N}-byte elements, {rows}×{cols}, stride {stride}, \
                 source skew {source_skew}, output skew {out_skew}"
            );
        }
    }
    Ok(())
}

/// [`check_kernels`] for element size `elem`.
fn check_kernels_of(
    elem: usize,
    rows: usize,
    cols: usize,
    stride: usize,
    source_skew: usize,
    out_skew: usize,
) -> Result<(), TestCaseError> {
    match elem {
        1 => check_kernels::<1>(rows, cols, stride, source_skew, out_skew),
        2 => check_kernels::<2>(rows, cols, stride, source_skew, out_skew),
        4 => check_kernels::<4>(rows, cols, stride, source_skew, out_skew),
        _ => check_kernels::<8>(rows, cols, stride, source_skew, out_skew),
    }
}

/// Tiny, one-row, one-column and just-over-a-tile shapes, for every element size, with
/// source and output on, just past, and an element past a line boundary.
#[test]
fn tile_kernels_equal_the_gather_on_edge_shapes() {
    let shapes: [(usize, usize); 11] =
        [(1, 1), (1, 64), (64, 1), (1, 200), (200, 1), (2, 3), (31, 33), (32, 32), (33, 31), (64, 64), (65, 96)];
    for elem in [1usize, 2, 4, 8] {
        for (rows, cols) in shapes {
            for stride in [rows, rows + 5, (rows * elem).next_multiple_of(LINE) / elem] {
                for skew in [0, 1, elem, LINE - elem] {
                    check_kernels_of(elem, rows, cols, stride, skew, skew).unwrap();
                    check_kernels_of(elem, rows, cols, stride, 0, skew).unwrap();
                    check_kernels_of(elem, rows, cols, stride, skew, 0).unwrap();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary sizes (several bands, ragged edges), row strides and alignments; output
    /// rows and source rows of whole lines half of the time each (where the tiles align).
    #[test]
    fn tile_kernels_equal_the_gather(
        rows in 1usize..2200,
        cols in 1usize..150,
        whole_out_lines in any::<bool>(),
        whole_source_lines in any::<bool>(),
        extra in 0usize..40,
        elem in prop::sample::select(vec![1usize, 2, 4, 8]),
        skews in (0usize..64, 0usize..64),
        odd_skews in (any::<bool>(), any::<bool>()),
    ) {
        let side = LINE / elem;
        let cols = if whole_out_lines { cols.div_ceil(side) * side } else { cols };
        let stride = if whole_source_lines { (rows + extra).div_ceil(side) * side } else { rows + extra };
        let skew = |elements: usize, odd: bool| (elements * elem + usize::from(odd)) % LINE;
        check_kernels_of(elem, rows, cols, stride, skew(skews.0, odd_skews.0), skew(skews.1, odd_skews.1))?;
    }
}
