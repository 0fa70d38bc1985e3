//! The AVX-512 tile: one 64-byte register per source line, transposed in registers.

use std::arch::x86_64::{
    __m512i, _mm512_loadu_si512, _mm512_permutex2var_epi64, _mm512_set1_epi32, _mm512_set1_epi64, _mm512_set_epi64,
    _mm512_shuffle_i64x2, _mm512_slli_epi32, _mm512_slli_epi64, _mm512_srli_epi32, _mm512_srli_epi64,
    _mm512_storeu_si512, _mm512_stream_si512, _mm512_ternarylogic_epi64, _mm512_unpackhi_epi64, _mm512_unpacklo_epi64,
};

use super::{pairs, LINE};

/// Whether this CPU has the AVX-512 instructions the tile for `N`-byte elements uses
/// (the answer is cached by the standard library).
pub(super) fn supports<const N: usize>() -> bool {
    matches!(N, 2 | 4 | 8) && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// Transposes the tile whose source line `b` is at `b · source_row_bytes` of `tile_in`
/// into output lines at `a · row_bytes` of `tile_out`: `LINE / N` registers. With
/// `stream`, the output lines are written with streaming stores (each must be aligned).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn transpose_tile<const N: usize>(
    tile_in: &[u8],
    source_row_bytes: usize,
    tile_out: &mut [u8],
    row_bytes: usize,
    stream: bool,
) {
    match N {
        2 => transpose_registers::<32>(tile_in, source_row_bytes, tile_out, row_bytes, stream),
        4 => transpose_registers::<16>(tile_in, source_row_bytes, tile_out, row_bytes, stream),
        8 => transpose_registers::<8>(tile_in, source_row_bytes, tile_out, row_bytes, stream),
        _ => unreachable!("`supports` admits 2-, 4- and 8-byte elements only"),
    }
}

/// A `C` × `C` transpose of `64 / C`-byte elements, by blocks: the register pairs
/// `C / 2` apart swap 256-bit halves, then pairs `C / 4` apart swap 128-bit quarters,
/// and so on down to single elements (each round transposes the 2 × 2 block matrix
/// of every block the previous one left: register `i` takes the even blocks of `i`
/// and `i + d` interleaved, register `i + d` the odd ones). The rounds are unrolled
/// ([`pairs`]), so that the registers are not spilled to memory between them.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn transpose_registers<const C: usize>(
    tile_in: &[u8],
    source_row_bytes: usize,
    tile_out: &mut [u8],
    row_bytes: usize,
    stream: bool,
) {
    let mut regs: [__m512i; C] =
        std::array::from_fn(|b| load(&tile_in[b * source_row_bytes..b * source_row_bytes + LINE]));
    let even_quarters = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    let odd_quarters = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    let halves = |x, y| (_mm512_shuffle_i64x2::<0x44>(x, y), _mm512_shuffle_i64x2::<0xEE>(x, y));
    let quarters =
        |x, y| (_mm512_permutex2var_epi64(x, even_quarters, y), _mm512_permutex2var_epi64(x, odd_quarters, y));
    let words64 = |x, y| (_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    // The two smallest swaps move elements within 64- and 32-bit words: shifts and a
    // bitwise select, which run beside the shuffles (a two-register word shuffle,
    // `vpermt2w`, is several µops on many CPUs).
    let low_dwords = _mm512_set1_epi64(0xFFFF_FFFF);
    let words32 =
        |x, y| (select(low_dwords, x, _mm512_slli_epi64::<32>(y)), select(low_dwords, _mm512_srli_epi64::<32>(x), y));
    let low_words = _mm512_set1_epi32(0xFFFF);
    let words16 =
        |x, y| (select(low_words, x, _mm512_slli_epi32::<16>(y)), select(low_words, _mm512_srli_epi32::<16>(x), y));
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
        let line = &mut tile_out[a * row_bytes..a * row_bytes + LINE];
        if stream {
            store_streaming(line, *reg)
        } else {
            store(line, *reg)
        }
    }
}

/// The bits of `x` where `mask` is set, of `y` elsewhere.
#[target_feature(enable = "avx512f")]
#[inline]
fn select(mask: __m512i, x: __m512i, y: __m512i) -> __m512i {
    // Truth table of (mask, y, x) → mask ? x : y.
    _mm512_ternarylogic_epi64::<0xAC>(mask, y, x)
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

/// [`store`] past the caches, to one whole aligned line.
#[inline(always)]
fn store_streaming(bytes: &mut [u8], value: __m512i) {
    let bytes: &mut [u8; LINE] = bytes.try_into().expect("one line");
    assert!(bytes.as_ptr() as usize % LINE == 0, "a streaming store to an unaligned line");
    // SAFETY: `bytes` is 64 writable bytes on a 64-byte boundary (checked above), and
    // the caller runs only on a CPU with AVX-512F.
    unsafe { _mm512_stream_si512(bytes.as_mut_ptr().cast(), value) }
}
