//! The transpose kernel: `out[a][b] = data[base + a + b·stride]`, the copy behind every
//! `transpose` and every permutation that moves the contiguous axis.
//!
//! The copy goes in square tiles of one cache line per side (16 × 16 f32, 32 × 32 bf16).
//! A tile's source lines are copied whole into a small local buffer, transposed there in
//! registers, and its output lines are written whole, so every line of either side
//! passes through the cache once. (Reading or writing a tile's lines in place does not:
//! weights have power-of-two row strides, which put all the lines of a tile in one cache
//! set, so they evict each other before they are finished.)
//!
//! Tiles are visited in bands of [`BAND`] output rows: across the band (a few lines of
//! each of a tile's source rows, read in order, which the hardware prefetcher follows),
//! then the next tiles along those source rows. The band's output pages stay in the TLB
//! while each takes one line per tile. (Walking down a whole column of tiles instead
//! costs a TLB miss per line, which is dearest in a virtual machine; walking a whole
//! source row reads one line from each of hundreds of rows at a time, which no prefetcher
//! follows. Measured on a shared VM, this order was the fastest of the three.)
//!
//! Within a tile, blocks of 16 bytes × as many lines are transposed with SSE2 unpacks on
//! x86-64 (every x86-64 CPU has SSE2), and element by element elsewhere.

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

/// [`copy_transposed`] for `N`-byte elements: the whole tiles, then the ragged right and
/// bottom edges element by element.
fn transpose_tiles<const N: usize>(data: &[u8], base: usize, rows: usize, cols: usize, stride: usize, out: &mut [u8]) {
    let side = LINE / N;
    let (full_rows, full_cols) = (rows - rows % side, cols - cols % side);
    let row_bytes = cols * N;
    let mut lines: Lines = [[0u8; LINE]; LINE];
    for band_start in (0..full_rows).step_by(BAND) {
        let band_end = (band_start + BAND).min(full_rows);
        for b0 in (0..full_cols).step_by(side) {
            for a0 in (band_start..band_end).step_by(side) {
                for (b, line) in lines[..side].iter_mut().enumerate() {
                    let at = (base + a0 + (b0 + b) * stride) * N;
                    line.copy_from_slice(&data[at..at + LINE]);
                }
                let first = a0 * row_bytes + b0 * N;
                let tile_out = &mut out[first..first + (side - 1) * row_bytes + LINE];
                transpose_tile::<N>(&lines, tile_out, row_bytes);
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

#[cfg(test)]
mod tests {
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
}
