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
