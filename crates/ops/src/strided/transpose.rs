//! The transpose kernel: `out[a][b] = data[base + a + b·stride]`, the copy behind every
//! `transpose` and every permutation that moves the contiguous axis.
//!
//! The copy goes in square tiles of one cache line per side (16 × 16 f32, 32 × 32 bf16).
//! Each source line of a tile is read once and each output line written once, whole:
//! on x86-64 CPUs with AVX-512 (checked at run time) a tile is one 64-byte register per
//! source line, transposed in registers; elsewhere the source lines are first copied to a
//! small local buffer and transposed from there with SSE2 (every x86-64 CPU has it) or
//! element by element. (Reading a tile's lines in place more than once does not work:
//! weights have power-of-two row strides, which put all the lines of a tile in one cache
//! set, so they evict each other before they are finished.)
//!
//! Tiles are visited in bands of [`BAND`] output rows: across the band (a few lines of
//! each of a tile's source rows, read in order), then the next tiles along those source
//! rows. The band's output pages stay in the TLB while each takes one line per tile.
//! (Walking down a whole column of tiles instead costs a TLB miss per line, which is
//! dearest in a virtual machine; walking a whole source row reads one line from each of
//! hundreds of rows at a time. Measured on a shared VM, this order was the fastest.)
//! The hardware prefetcher does not follow a few lines from each of 16–32 rows, so while
//! a tile is copied the lines of the tile one band later (the same columns of the next
//! source rows) are prefetched, and the output lines the next tiles along the same output
//! rows will write.

use super::{copy_run, gather_elements};

/// Bytes per cache line: one side of a tile.
const LINE: usize = 64;

/// Output rows per band of tiles.
const BAND: usize = 256;

/// The tile's source lines: line `b` holds source row `b0 + b`, elements `a0..a0 + LINE / N`.
type Lines = [[u8; LINE]; LINE];

/// `out[a][b] = data[base + a + b·stride]` for `a < rows`, `b < cols`, elements of `elem`
/// bytes.
pub(super) fn copy_transposed(
    data: &[u8],
    elem: usize,
    base: usize,
    rows: usize,
    cols: usize,
    stride: usize,
    out: &mut [u8],
) {
    match elem {
        1 => transpose_tiles::<1>(data, base, rows, cols, stride, out),
        2 => transpose_tiles::<2>(data, base, rows, cols, stride, out),
        4 => transpose_tiles::<4>(data, base, rows, cols, stride, out),
        8 => transpose_tiles::<8>(data, base, rows, cols, stride, out),
        _ => {
            for row in 0..rows {
                copy_run(data, elem, base + row, cols, stride, &mut out[row * cols * elem..(row + 1) * cols * elem]);
            }
        }
    }
}

/// How a whole tile is transposed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TileKernel {
    /// Through a local copy of the source lines (SSE2 on x86-64, else element by element).
    Buffered,
    /// One AVX-512 register per source line, for 2-, 4- and 8-byte elements.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl TileKernel {
    /// The fastest kernel this CPU runs for `N`-byte elements.
    fn best<const N: usize>() -> Self {
        #[cfg(target_arch = "x86_64")]
        if avx512::supports::<N>() {
            return TileKernel::Avx512;
        }
        TileKernel::Buffered
    }
}

/// [`copy_transposed`] for `N`-byte elements: the whole tiles, then the ragged right and
/// bottom edges element by element.
fn transpose_tiles<const N: usize>(data: &[u8], base: usize, rows: usize, cols: usize, stride: usize, out: &mut [u8]) {
    transpose_tiles_with::<N>(TileKernel::best::<N>(), data, base, rows, cols, stride, out)
}

/// [`transpose_tiles`] with a given tile kernel (the tests run each one).
fn transpose_tiles_with<const N: usize>(
    kernel: TileKernel,
    data: &[u8],
    base: usize,
    rows: usize,
    cols: usize,
    stride: usize,
    out: &mut [u8],
) {
    let side = LINE / N;
    let (full_rows, full_cols) = (rows - rows % side, cols - cols % side);
    let row_bytes = cols * N;
    let source_row_bytes = stride * N;
    let mut lines: Lines = [[0u8; LINE]; LINE];
    for band_start in (0..full_rows).step_by(BAND) {
        let band_end = (band_start + BAND).min(full_rows);
        for b0 in (0..full_cols).step_by(side) {
            for a0 in (band_start..band_end).step_by(side) {
                let first_in = (base + a0 + b0 * stride) * N;
                let first_out = a0 * row_bytes + b0 * N;
                for line in 0..side {
                    prefetch(data, first_in + (side + line) * source_row_bytes);
                    prefetch(out, first_out + line * row_bytes + LINE);
                }
                let tile_in = &data[first_in..first_in + (side - 1) * source_row_bytes + LINE];
                let tile_out = &mut out[first_out..first_out + (side - 1) * row_bytes + LINE];
                match kernel {
                    TileKernel::Buffered => {
                        for (b, line) in lines[..side].iter_mut().enumerate() {
                            line.copy_from_slice(&tile_in[b * source_row_bytes..b * source_row_bytes + LINE]);
                        }
                        transpose_tile::<N>(&lines, tile_out, row_bytes);
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `best` chose this kernel only on a CPU with AVX-512F and BW.
                    TileKernel::Avx512 => unsafe {
                        avx512::transpose_tile::<N>(tile_in, source_row_bytes, tile_out, row_bytes)
                    },
                }
            }
        }
    }
    // The right edge: columns past the last whole tile.
    for a in 0..full_rows {
        let at = a * row_bytes + full_cols * N;
        gather_elements::<N>(data, base + a + full_cols * stride, stride, &mut out[at..(a + 1) * row_bytes]);
    }
    // The bottom edge: rows past the last whole tile, every column.
    for a in full_rows..rows {
        gather_elements::<N>(data, base + a, stride, &mut out[a * row_bytes..(a + 1) * row_bytes]);
    }
}

/// Asks for the cache line at `bytes[at]` ahead of its use (nothing past the end).
#[inline(always)]
fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < bytes.len() {
        // SAFETY: a prefetch of an address inside `bytes`; it reads nothing and cannot fault.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes.as_ptr().add(at).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// Writes output line `a` of the tile (`LINE` bytes at `a · row_bytes` of `out`): element
/// `a` of every source line.
#[inline(always)]
fn transpose_tile<const N: usize>(lines: &Lines, out: &mut [u8], row_bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline: every CPU that runs this code has it.
    unsafe {
        sse2::transpose_tile::<N>(lines, out, row_bytes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    transpose_tile_scalar::<N>(lines, out, row_bytes)
}

/// [`transpose_tile`] element by element: the portable version, and the reference the
/// SSE2 version is tested against.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn transpose_tile_scalar<const N: usize>(lines: &Lines, out: &mut [u8], row_bytes: usize) {
    for a in 0..LINE / N {
        let out_line = &mut out[a * row_bytes..a * row_bytes + LINE];
        for (b, dst) in out_line.chunks_exact_mut(N).enumerate() {
            dst.copy_from_slice(&lines[b][a * N..a * N + N]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128, _mm_unpackhi_epi16, _mm_unpackhi_epi32,
        _mm_unpackhi_epi64, _mm_unpackhi_epi8, _mm_unpacklo_epi16, _mm_unpacklo_epi32, _mm_unpacklo_epi64,
        _mm_unpacklo_epi8,
    };

    use super::{Lines, LINE};

    /// Bytes per register.
    const REG: usize = 16;

    /// The tile in blocks of `REG / N` source lines × `REG` bytes: each block is loaded
    /// into `REG / N` registers (one row of `REG / N` elements each), transposed by
    /// log2(`REG / N`) rounds of interleaving, and stored as `REG` bytes of `REG / N`
    /// output lines.
    #[target_feature(enable = "sse2")]
    pub(super) fn transpose_tile<const N: usize>(lines: &Lines, out: &mut [u8], row_bytes: usize) {
        let per_reg = REG / N;
        let rounds = per_reg.trailing_zeros();
        for column in 0..LINE / REG {
            for group in 0..LINE / N / per_reg {
                let mut regs = [_mm_setzero_si128(); REG];
                for (row, reg) in regs[..per_reg].iter_mut().enumerate() {
                    *reg = load(&lines[group * per_reg + row][column * REG..column * REG + REG]);
                }
                for _ in 0..rounds {
                    regs = interleave_round::<N>(&regs, per_reg);
                }
                for (row, reg) in regs[..per_reg].iter().enumerate() {
                    let at = (column * per_reg + row) * row_bytes + group * REG;
                    store(&mut out[at..at + REG], *reg);
                }
            }
        }
    }

    /// One round of the transpose by perfect shuffles: register `2i` gets the low halves
    /// of registers `i` and `i + count / 2` interleaved element by element, register
    /// `2i + 1` their high halves. log2(`count`) rounds transpose `count` × `count`.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn interleave_round<const N: usize>(regs: &[__m128i; REG], count: usize) -> [__m128i; REG] {
        let mut next = [_mm_setzero_si128(); REG];
        for i in 0..count / 2 {
            let (x, y) = (regs[i], regs[i + count / 2]);
            let (low, high) = match N {
                1 => (_mm_unpacklo_epi8(x, y), _mm_unpackhi_epi8(x, y)),
                2 => (_mm_unpacklo_epi16(x, y), _mm_unpackhi_epi16(x, y)),
                4 => (_mm_unpacklo_epi32(x, y), _mm_unpackhi_epi32(x, y)),
                _ => (_mm_unpacklo_epi64(x, y), _mm_unpackhi_epi64(x, y)),
            };
            next[2 * i] = low;
            next[2 * i + 1] = high;
        }
        next
    }

    #[inline(always)]
    fn load(bytes: &[u8]) -> __m128i {
        let bytes: &[u8; REG] = bytes.try_into().expect("one register");
        // SAFETY: `bytes` is 16 readable bytes; the load has no alignment requirement.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store(bytes: &mut [u8], value: __m128i) {
        let bytes: &mut [u8; REG] = bytes.try_into().expect("one register");
        // SAFETY: `bytes` is 16 writable bytes; the store has no alignment requirement.
        unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), value) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_bslli_epi128, _mm512_bsrli_epi128, _mm512_loadu_si512, _mm512_mask_blend_epi16,
        _mm512_mask_blend_epi32, _mm512_permutex2var_epi64, _mm512_set_epi64, _mm512_shuffle_i64x2,
        _mm512_storeu_si512, _mm512_unpackhi_epi64, _mm512_unpacklo_epi64,
    };

    use super::LINE;

    /// Whether this CPU has the AVX-512 instructions the tile for `N`-byte elements uses
    /// (the answer is cached by the standard library).
    pub(super) fn supports<const N: usize>() -> bool {
        matches!(N, 2 | 4 | 8) && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    }

    /// Transposes the tile whose source line `b` is at `b · source_row_bytes` of `tile_in`
    /// into output lines at `a · row_bytes` of `tile_out`: `LINE / N` registers.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn transpose_tile<const N: usize>(
        tile_in: &[u8],
        source_row_bytes: usize,
        tile_out: &mut [u8],
        row_bytes: usize,
    ) {
        match N {
            2 => transpose_registers::<32>(tile_in, source_row_bytes, tile_out, row_bytes),
            4 => transpose_registers::<16>(tile_in, source_row_bytes, tile_out, row_bytes),
            8 => transpose_registers::<8>(tile_in, source_row_bytes, tile_out, row_bytes),
            _ => unreachable!("`supports` admits 2-, 4- and 8-byte elements only"),
        }
    }

    /// A `C` × `C` transpose of `64 / C`-byte elements, by blocks: the register pairs
    /// `C / 2` apart swap 256-bit halves, then pairs `C / 4` apart swap 128-bit quarters,
    /// and so on down to single elements (each round transposes the 2 × 2 block matrix
    /// of every block the previous one left: register `i` takes the even blocks of `i`
    /// and `i + d` interleaved, register `i + d` the odd ones).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn transpose_registers<const C: usize>(
        tile_in: &[u8],
        source_row_bytes: usize,
        tile_out: &mut [u8],
        row_bytes: usize,
    ) {
        let mut regs: [__m512i; C] =
            std::array::from_fn(|b| load(&tile_in[b * source_row_bytes..b * source_row_bytes + LINE]));
        let even_quarters = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
        let odd_quarters = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
        let halves = |x, y| (_mm512_shuffle_i64x2::<0x44>(x, y), _mm512_shuffle_i64x2::<0xEE>(x, y));
        let quarters =
            |x, y| (_mm512_permutex2var_epi64(x, even_quarters, y), _mm512_permutex2var_epi64(x, odd_quarters, y));
        let words64 = |x, y| (_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
        let words32 = |x, y| {
            let odd = 0xAAAA;
            (
                _mm512_mask_blend_epi32(odd, x, _mm512_bslli_epi128::<4>(y)),
                _mm512_mask_blend_epi32(odd, _mm512_bsrli_epi128::<4>(x), y),
            )
        };
        let words16 = |x, y| {
            let odd = 0xAAAA_AAAA;
            (
                _mm512_mask_blend_epi16(odd, x, _mm512_bslli_epi128::<2>(y)),
                _mm512_mask_blend_epi16(odd, _mm512_bsrli_epi128::<2>(x), y),
            )
        };
        pairs(&mut regs, C / 2, halves);
        pairs(&mut regs, C / 4, quarters);
        pairs(&mut regs, C / 8, words64);
        if C >= 16 {
            pairs(&mut regs, C / 16, words32);
        }
        if C >= 32 {
            pairs(&mut regs, C / 32, words16);
        }
        for (a, reg) in regs.iter().enumerate() {
            store(&mut tile_out[a * row_bytes..a * row_bytes + LINE], *reg);
        }
    }

    /// Applies `swap` to every pair of registers `distance` apart (`i` with `i & distance == 0`).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn pairs<const C: usize>(
        regs: &mut [__m512i; C],
        distance: usize,
        swap: impl Fn(__m512i, __m512i) -> (__m512i, __m512i),
    ) {
        for i in 0..C {
            if i & distance == 0 {
                (regs[i], regs[i + distance]) = swap(regs[i], regs[i + distance]);
            }
        }
    }

    #[inline(always)]
    fn load(bytes: &[u8]) -> __m512i {
        let bytes: &[u8; LINE] = bytes.try_into().expect("one line");
        // SAFETY: `bytes` is 64 readable bytes; the load has no alignment requirement, and
        // the caller runs only on a CPU with AVX-512F.
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store(bytes: &mut [u8], value: __m512i) {
        let bytes: &mut [u8; LINE] = bytes.try_into().expect("one line");
        // SAFETY: `bytes` is 64 writable bytes; the store has no alignment requirement, and
        // the caller runs only on a CPU with AVX-512F.
        unsafe { _mm512_storeu_si512(bytes.as_mut_ptr().cast(), value) }
    }
}

#[cfg(test)]
mod tests {
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

    /// Every tile kernel this CPU runs equals the element-by-element gather, on
    /// transposes of arbitrary size (several bands, ragged edges) and row stride.
    fn check_kernels<const N: usize>(rows: usize, cols: usize, extra: usize) -> Result<(), TestCaseError> {
        let stride = rows + extra;
        let data: Vec<u8> = (0..(cols * stride + rows) * N).map(|i| (i * 131 + i / 251) as u8).collect();
        let base = 3.min(extra);
        let mut expected = vec![0u8; rows * cols * N];
        for a in 0..rows {
            gather_elements::<N>(&data, base + a, stride, &mut expected[a * cols * N..(a + 1) * cols * N]);
        }
        let mut kernels = vec![TileKernel::Buffered];
        #[cfg(target_arch = "x86_64")]
        if avx512::supports::<N>() {
            kernels.push(TileKernel::Avx512);
        }
        for kernel in kernels {
            let mut out = vec![0xA5u8; expected.len()];
            transpose_tiles_with::<N>(kernel, &data, base, rows, cols, stride, &mut out);
            prop_assert!(out == expected, "{kernel:?}, {N}-byte elements, {rows}×{cols}, stride {stride}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tile_kernels_equal_the_gather(rows in 1usize..700, cols in 1usize..150, extra in 0usize..40, elem in 0usize..4) {
            match elem {
                0 => check_kernels::<1>(rows, cols, extra)?,
                1 => check_kernels::<2>(rows, cols, extra)?,
                2 => check_kernels::<4>(rows, cols, extra)?,
                _ => check_kernels::<8>(rows, cols, extra)?,
            }
        }
    }
}
