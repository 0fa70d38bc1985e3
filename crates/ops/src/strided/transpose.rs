//! The transpose kernel: `out[a][b] = data[base + a + b·stride]`, the copy behind every
//! `transpose` and every permutation that moves the contiguous axis.
//!
//! The copy goes in square tiles of one cache line per side (16 × 16 f32, 32 × 32 bf16).
//! Each source line of a tile is read once and each output line written once, whole.
//! On x86-64 the tile kernel is chosen at run time: with AVX-512 a tile is one 64-byte
//! register per source line, transposed in registers ([`avx512`]); with AVX2, four blocks
//! of half lines ([`avx2`]); elsewhere the source lines are first copied to a small local
//! buffer and transposed from there with SSE2 (every x86-64 CPU has it, [`sse2`]) or
//! element by element. (Reading a tile's lines in place more than once does not work:
//! weights have power-of-two row strides, which put all the lines of a tile in one cache
//! set, so they evict each other before they are finished.)
//!
//! An output much larger than the caches ([`STREAM_FROM`]) is written with streaming
//! (non-temporal) stores, as `memcpy` does at that size: a plain store first reads the
//! line it writes, so a transpose with plain stores moves three bytes per byte copied
//! where `memcpy` moves two. A streaming store must write a whole aligned line at once,
//! so the tiles then start at the first column whose output is line-aligned. Likewise the
//! tiles start at the first row whose source lines are aligned (a misaligned line is two
//! to read). The rows and columns outside the tiles are copied with the ragged edges.
//!
//! Tiles are visited in bands of output rows covering [`BAND_BYTES`] of each source row:
//! across the band (a few lines of each of a tile's source rows, read in order), then the
//! next tiles along those source rows. The band's output pages stay in the TLB while each
//! takes one line per tile. (Walking down a whole column of tiles instead costs a TLB miss
//! per line, which is dearest in a virtual machine; walking a whole source row reads one
//! line from each of hundreds of rows at a time. Measured on a shared VM, half a 4 KiB
//! page per source row was the fastest band for both 2- and 4-byte elements.)
//! The hardware prefetcher does not follow a few lines from each of 16–32 rows, so while
//! a tile is copied the lines of the tile one band later (the same columns of the next
//! source rows) are prefetched into the second-level cache (the first level would not keep them: they all fall in one
//! set), and, with plain stores, the output lines the next tiles along the same output
//! rows will write.

use super::{copy_run, gather_elements};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod sse2;

/// Bytes per cache line: one side of a tile.
const LINE: usize = 64;

/// Bytes of each source row that one band of tiles covers.
const BAND_BYTES: usize = 2048;

/// Outputs at least this large are written with streaming stores: several times the
/// per-core second-level cache, where the output would not stay in cache anyway.
const STREAM_FROM: usize = 4 << 20;

/// A tile's lines: the buffered kernel's copy of the source lines (line `b` holds source
/// row `b0 + b`, elements `a0..a0 + LINE / N`), or the AVX2 kernel's staged output lines.
type Lines = [[u8; LINE]; LINE];

/// [`Lines`] on a line boundary, so that each of its lines is one cache line.
#[repr(align(64))]
struct AlignedLines(Lines);

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
    /// Four blocks of 32-byte registers, for 2-, 4- and 8-byte elements.
    #[cfg(target_arch = "x86_64")]
    Avx2,
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
        #[cfg(target_arch = "x86_64")]
        if avx2::supports::<N>() {
            return TileKernel::Avx2;
        }
        TileKernel::Buffered
    }

    /// Whether the kernel can write its output lines with streaming stores.
    fn streams(self) -> bool {
        self != TileKernel::Buffered
    }
}

/// [`copy_transposed`] for `N`-byte elements: the whole tiles, then the ragged edges
/// element by element.
fn transpose_tiles<const N: usize>(data: &[u8], base: usize, rows: usize, cols: usize, stride: usize, out: &mut [u8]) {
    let kernel = TileKernel::best::<N>();
    let stream = kernel.streams() && out.len() >= STREAM_FROM;
    transpose_tiles_with::<N>(kernel, stream, data, base, rows, cols, stride, out)
}

/// The first row of lines `step` bytes apart, from `start` on, that begins on a line
/// boundary, counted in `N`-byte elements, if there is one (`step` a whole number of lines,
/// the first line boundary on an element boundary).
fn first_aligned<const N: usize>(start: *const u8, step: usize) -> Option<usize> {
    let skew = (LINE - start as usize % LINE) % LINE;
    (step % LINE == 0 && skew % N == 0).then_some(skew / N)
}

/// [`transpose_tiles`] with a given tile kernel, streaming stores or not (the tests run
/// each combination; streaming falls back to plain stores where the lines do not align).
#[allow(clippy::too_many_arguments)]
fn transpose_tiles_with<const N: usize>(
    kernel: TileKernel,
    stream: bool,
    data: &[u8],
    base: usize,
    rows: usize,
    cols: usize,
    stride: usize,
    out: &mut [u8],
) {
    let side = LINE / N;
    let row_bytes = cols * N;
    let source_row_bytes = stride * N;
    // Tiles cover the output columns `lead..full_cols` (with streaming stores, from the
    // first whose lines are aligned) and the output rows `top..full_rows`, from the first
    // whose source lines are aligned (a misaligned line is two lines to read).
    let (stream, lead) = match first_aligned::<N>(out.as_ptr(), row_bytes) {
        Some(lead) if stream && kernel.streams() => (true, lead.min(cols)),
        _ => (false, 0),
    };
    let top = first_aligned::<N>(data.as_ptr().wrapping_add(base * N), source_row_bytes).unwrap_or(0).min(rows);
    let full_rows = top + (rows - top) / side * side;
    let full_cols = lead + (cols - lead) / side * side;
    let band = BAND_BYTES / N;
    let mut lines = AlignedLines([[0u8; LINE]; LINE]);
    for band_start in (top..full_rows).step_by(band) {
        let band_end = (band_start + band).min(full_rows);
        for b0 in (lead..full_cols).step_by(side) {
            for a0 in (band_start..band_end).step_by(side) {
                let first_in = (base + a0 + b0 * stride) * N;
                let first_out = a0 * row_bytes + b0 * N;
                for line in 0..side {
                    prefetch::<FAR>(data, first_in + (side + line) * source_row_bytes);
                    if !stream {
                        prefetch::<NEAR>(out, first_out + line * row_bytes + LINE);
                    }
                }
                let tile_in = &data[first_in..first_in + (side - 1) * source_row_bytes + LINE];
                let tile_out = &mut out[first_out..first_out + (side - 1) * row_bytes + LINE];
                match kernel {
                    TileKernel::Buffered => {
                        for (b, line) in lines.0[..side].iter_mut().enumerate() {
                            line.copy_from_slice(&tile_in[b * source_row_bytes..b * source_row_bytes + LINE]);
                        }
                        transpose_tile::<N>(&lines.0, tile_out, row_bytes);
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `best` chose this kernel only on a CPU with AVX2 (the tests, too).
                    TileKernel::Avx2 => unsafe {
                        avx2::transpose_tile::<N>(tile_in, source_row_bytes, tile_out, row_bytes, stream, &mut lines.0)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `best` chose this kernel only on a CPU with AVX-512F and BW (the tests, too).
                    TileKernel::Avx512 => unsafe {
                        avx512::transpose_tile::<N>(tile_in, source_row_bytes, tile_out, row_bytes, stream)
                    },
                }
            }
        }
    }
    if stream {
        // Streaming stores are weakly ordered: make them visible before the buffer is
        // handed on (to another thread, say).
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of the x86-64 baseline; a fence touches no memory.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        };
    }
    // The top and bottom edges, rows outside the tiles, and the left and right ones,
    // columns outside the tiles.
    transpose_rows::<N>(data, base, 0..top, cols, stride, out);
    for a in top..full_rows {
        let row = &mut out[a * row_bytes..(a + 1) * row_bytes];
        gather_elements::<N>(data, base + a, stride, &mut row[..lead * N]);
        gather_elements::<N>(data, base + a + full_cols * stride, stride, &mut row[full_cols * N..]);
    }
    transpose_rows::<N>(data, base, full_rows..rows, cols, stride, out);
}

/// The output rows `rows` (fewer than a tile), every column, reading each source row's
/// few elements at once (a gather per output row would read every source row's line
/// once per output row).
fn transpose_rows<const N: usize>(
    data: &[u8],
    base: usize,
    rows: std::ops::Range<usize>,
    cols: usize,
    stride: usize,
    out: &mut [u8],
) {
    let row_bytes = cols * N;
    for b in 0..cols {
        let first = (base + rows.start + b * stride) * N;
        let source = &data[first..first + rows.len() * N];
        for (element, a) in source.chunks_exact(N).zip(rows.clone()) {
            out[a * row_bytes + b * N..a * row_bytes + b * N + N].copy_from_slice(element);
        }
    }
}

/// Applies `swap` to every pair of registers `distance` apart (`i` with `i & distance ==
/// 0`), one round of a transpose in registers. The loop has no branch, so that the
/// compiler unrolls it and keeps the registers out of memory.
#[inline(always)]
fn pairs<T: Copy, const C: usize>(regs: &mut [T; C], distance: usize, swap: impl Fn(T, T) -> (T, T)) {
    for j in 0..C / 2 {
        let i = j / distance * 2 * distance + j % distance;
        (regs[i], regs[i + distance]) = swap(regs[i], regs[i + distance]);
    }
}

/// Asks for the cache line at `bytes[at]` ahead of its use (nothing past the end), with
/// the x86 hint `HINT` (`NEAR` or `FAR`).
#[inline(always)]
fn prefetch<const HINT: i32>(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < bytes.len() {
        // SAFETY: a prefetch of an address inside `bytes`; it reads nothing and cannot fault.
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(bytes.as_ptr().add(at).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

// The hints of [`prefetch`]: into the first-level cache, into the second.
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_MM_HINT_T0 as NEAR, _MM_HINT_T1 as FAR};
#[cfg(not(target_arch = "x86_64"))]
const NEAR: i32 = 0;
#[cfg(not(target_arch = "x86_64"))]
const FAR: i32 = 0;

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

#[cfg(test)]
mod tests;
