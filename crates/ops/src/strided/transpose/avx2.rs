//! The AVX2 tile: four blocks of `32 / N` source half lines, one 32-byte register each,
//! transposed in registers.

use std::arch::x86_64::{
    __m256i, _mm256_blend_epi16, _mm256_blend_epi32, _mm256_loadu_si256, _mm256_permute2x128_si256, _mm256_slli_si256,
    _mm256_srli_si256, _mm256_storeu_si256, _mm256_stream_si256, _mm256_unpackhi_epi64, _mm256_unpacklo_epi64,
};

use super::{pairs, Lines, LINE};

/// Bytes per register: half a line.
const REG: usize = 32;

/// Whether this CPU has the AVX2 instructions the tile for `N`-byte elements uses (the
/// answer is cached by the standard library).
pub(super) fn supports<const N: usize>() -> bool {
    matches!(N, 2 | 4 | 8) && is_x86_feature_detected!("avx2")
}

/// Transposes the tile whose source line `b` is at `b · source_row_bytes` of `tile_in`
/// into output lines at `a · row_bytes` of `tile_out`. With `stream`, the output lines are
/// written with streaming stores (each must be aligned): a block gives half lines, and
/// the two halves of a line must reach the write-combining buffer together, so the
/// blocks go to `staged` first and each line is streamed from there at once.
#[target_feature(enable = "avx2")]
pub(super) fn transpose_tile<const N: usize>(
    tile_in: &[u8],
    source_row_bytes: usize,
    tile_out: &mut [u8],
    row_bytes: usize,
    stream: bool,
    staged: &mut Lines,
) {
    let side = LINE / N;
    if !stream {
        transpose_blocks::<N>(tile_in, source_row_bytes, tile_out, row_bytes);
        return;
    }
    transpose_blocks::<N>(tile_in, source_row_bytes, staged.as_flattened_mut(), LINE);
    for (a, line) in staged[..side].iter().enumerate() {
        let out_line = &mut tile_out[a * row_bytes..a * row_bytes + LINE];
        let (first, second) = out_line.split_at_mut(REG);
        store_streaming(first, load(&line[..REG]));
        store_streaming(second, load(&line[REG..]));
    }
}

/// The four blocks of the tile: output half line `h` of output line `a` is the transposed
/// block of source lines `h · K..` (`K = 32 / N`) and the columns of `a`.
#[target_feature(enable = "avx2")]
fn transpose_blocks<const N: usize>(tile_in: &[u8], source_row_bytes: usize, tile_out: &mut [u8], row_bytes: usize) {
    let k = REG / N;
    for column_half in 0..2 {
        for row_half in 0..2 {
            let block_in = &tile_in[row_half * k * source_row_bytes + column_half * REG..];
            let block_out = &mut tile_out[column_half * k * row_bytes + row_half * REG..];
            match N {
                2 => transpose_registers::<16>(block_in, source_row_bytes, block_out, row_bytes),
                4 => transpose_registers::<8>(block_in, source_row_bytes, block_out, row_bytes),
                8 => transpose_registers::<4>(block_in, source_row_bytes, block_out, row_bytes),
                _ => unreachable!("`supports` admits 2-, 4- and 8-byte elements only"),
            }
        }
    }
}

/// A `K` × `K` transpose of `32 / K`-byte elements, by blocks as in the AVX-512 tile:
/// pairs `K / 2` apart swap 128-bit halves, then 64-bit words, and so on down to single
/// elements.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose_registers<const K: usize>(
    block_in: &[u8],
    source_row_bytes: usize,
    block_out: &mut [u8],
    row_bytes: usize,
) {
    let mut regs: [__m256i; K] =
        std::array::from_fn(|b| load(&block_in[b * source_row_bytes..b * source_row_bytes + REG]));
    let halves = |x, y| (_mm256_permute2x128_si256::<0x20>(x, y), _mm256_permute2x128_si256::<0x31>(x, y));
    let words64 = |x, y| (_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
    let words32 = |x, y| {
        (
            _mm256_blend_epi32::<0xAA>(x, _mm256_slli_si256::<4>(y)),
            _mm256_blend_epi32::<0xAA>(_mm256_srli_si256::<4>(x), y),
        )
    };
    let words16 = |x, y| {
        (
            _mm256_blend_epi16::<0xAA>(x, _mm256_slli_si256::<2>(y)),
            _mm256_blend_epi16::<0xAA>(_mm256_srli_si256::<2>(x), y),
        )
    };
    pairs(&mut regs, K / 2, halves);
    pairs(&mut regs, K / 4, words64);
    if K >= 8 {
        pairs(&mut regs, K / 8, words32);
    }
    if K >= 16 {
        pairs(&mut regs, K / 16, words16);
    }
    for (a, reg) in regs.iter().enumerate() {
        store(&mut block_out[a * row_bytes..a * row_bytes + REG], *reg);
    }
}

#[inline(always)]
fn load(bytes: &[u8]) -> __m256i {
    let bytes: &[u8; REG] = bytes.try_into().expect("one register");
    // SAFETY: `bytes` is 32 readable bytes; the load has no alignment requirement, and
    // the caller runs only on a CPU with AVX2.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

#[inline(always)]
fn store(bytes: &mut [u8], value: __m256i) {
    let bytes: &mut [u8; REG] = bytes.try_into().expect("one register");
    // SAFETY: `bytes` is 32 writable bytes; the store has no alignment requirement, and
    // the caller runs only on a CPU with AVX2.
    unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast(), value) }
}

/// [`store`] past the caches, to a 32-byte boundary.
#[inline(always)]
fn store_streaming(bytes: &mut [u8], value: __m256i) {
    let bytes: &mut [u8; REG] = bytes.try_into().expect("one register");
    assert!(bytes.as_ptr() as usize % REG == 0, "a streaming store to an unaligned half line");
    // SAFETY: `bytes` is 32 writable bytes on a 32-byte boundary (checked above), and the
    // caller runs only on a CPU with AVX2.
    unsafe { _mm256_stream_si256(bytes.as_mut_ptr().cast(), value) }
}
