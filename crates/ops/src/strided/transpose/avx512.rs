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
    // The lines are checked once for the whole tile rather than one by one (the checks
    // and their address arithmetic were as many instructions as the transpose itself).
    assert!(lines_fit(C, source_row_bytes, tile_in.len()), "the tile's source lines lie in `tile_in`");
    assert!(lines_fit(C, row_bytes, tile_out.len()), "the tile's output lines lie in `tile_out`");
    assert!(
        !stream || (tile_out.as_ptr() as usize % LINE == 0 && row_bytes % LINE == 0),
        "streaming stores go to whole aligned lines"
    );
    let mut regs: [__m512i; C] = std::array::from_fn(|b| {
        // SAFETY: line `b < C` lies in `tile_in` (`lines_fit` above); the load has no
        // alignment requirement, and this CPU has AVX-512F.
        unsafe { _mm512_loadu_si512(tile_in.as_ptr().add(b * source_row_bytes).cast()) }
    });
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
        // SAFETY: line `a < C` lies in `tile_out` (`lines_fit` above), on a line boundary
        // if `stream` (asserted above: the streaming store needs it); this CPU has AVX-512F.
        unsafe {
            let line = tile_out.as_mut_ptr().add(a * row_bytes).cast();
            if stream {
                _mm512_stream_si512(line, *reg)
            } else {
                _mm512_storeu_si512(line, *reg)
            }
        }
    }
}

/// Whether `count` lines of `LINE` bytes, `step` bytes apart from the start, fit in `len`
/// bytes.
fn lines_fit(count: usize, step: usize, len: usize) -> bool {
    (count - 1).checked_mul(step).and_then(|last| last.checked_add(LINE)).is_some_and(|end| end <= len)
}

/// The bits of `x` where `mask` is set, of `y` elsewhere.
#[target_feature(enable = "avx512f")]
#[inline]
fn select(mask: __m512i, x: __m512i, y: __m512i) -> __m512i {
    // Truth table of (mask, y, x) → mask ? x : y.
    _mm512_ternarylogic_epi64::<0xAC>(mask, y, x)
}
