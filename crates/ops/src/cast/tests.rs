//! Reference values for every conversion, as literal bits.
//!
//! Each expected value is derived by hand from the algorithm PyTorch documents in its
//! source (cited per table), never from the code under test.

use super::*;

fn cast_one(bits: u64, from: DType, to: DType) -> u64 {
    let size = from.bits() / 8;
    let src = &bits.to_le_bytes()[..size];
    let out = cast_bytes(src, from, to).unwrap();
    let mut wide = [0u8; 8];
    wide[..out.len()].copy_from_slice(&out);
    u64::from_le_bytes(wide)
}

fn check(from: DType, to: DType, table: &[(u64, u64, &str)]) {
    for &(input, expected, why) in table {
        let got = cast_one(input, from, to);
        assert_eq!(got, expected, "{from} {input:#x} -> {to}: expected {expected:#x}, got {got:#x} ({why})");
    }
}

/// c10/util/BFloat16.h `round_to_nearest_even`: NaN → 0x7FC0; otherwise
/// `(bits + 0x7FFF + ((bits >> 16) & 1)) >> 16`.
#[test]
fn f32_to_bf16_matches_c10() {
    check(
        DType::F32,
        DType::BF16,
        &[
            (0x3F80_0000, 0x3F80, "1.0 exact"),
            (0x3F80_8000, 0x3F80, "tie, lsb 0: stays"),
            (0x3F81_8000, 0x3F82, "tie, lsb 1: rounds up to even"),
            (0x3F80_8001, 0x3F81, "above the tie rounds up"),
            (0x3F80_7FFF, 0x3F80, "below the tie rounds down"),
            (0x7F7F_FFFF, 0x7F80, "f32 max overflows to +inf"),
            (0x7F7F_7FFF, 0x7F7F, "bf16 max finite stays"),
            (0x7F80_0000, 0x7F80, "+inf"),
            (0xFF80_0000, 0xFF80, "-inf"),
            (0x8000_0000, 0x8000, "-0.0"),
            (0x0001_0000, 0x0001, "smallest bf16 subnormal"),
            (0x0000_8000, 0x0000, "tie between 0 and the smallest subnormal: even is 0"),
            (0x0001_8000, 0x0002, "subnormal tie rounds to even"),
            (0x7FC0_0000, 0x7FC0, "quiet NaN"),
            (0x7FC1_2345, 0x7FC0, "NaN payload dropped"),
            (0xFFC0_0000, 0x7FC0, "negative NaN loses its sign"),
            (0x7F80_0001, 0x7FC0, "signalling NaN"),
        ],
    );
}

/// c10/util/Half.h `fp16_ieee_from_fp32_value`: round to nearest even (subnormals too),
/// overflow to infinity, NaN → sign | 0x7E00.
#[test]
fn f32_to_f16_matches_c10() {
    check(
        DType::F32,
        DType::F16,
        &[
            (0x3F80_0000, 0x3C00, "1.0"),
            (0xC000_0000, 0xC000, "-2.0"),
            (0x3F80_1000, 0x3C00, "1 + 2^-11: tie, even mantissa 0 stays"),
            (0x3F80_3000, 0x3C02, "1 + 3·2^-11: tie between 0x3C01 and 0x3C02, even wins"),
            (0x3F80_1001, 0x3C01, "just above the tie"),
            (0x477F_E000, 0x7BFF, "65504, the largest finite f16"),
            (0x477F_EFFF, 0x7BFF, "just below 65520 rounds down to 65504"),
            (0x477F_F000, 0x7C00, "65520: tie between 65504 and 65536, even is infinity"),
            (0x4780_0000, 0x7C00, "65536 overflows"),
            (0x7F7F_FFFF, 0x7C00, "f32 max overflows"),
            (0x7F80_0000, 0x7C00, "+inf"),
            (0xFF80_0000, 0xFC00, "-inf"),
            (0x8000_0000, 0x8000, "-0.0"),
            (0x3380_0000, 0x0001, "2^-24, the smallest subnormal"),
            (0x3300_0000, 0x0000, "2^-25: tie between 0 and 2^-24, even is 0"),
            (0x3340_0000, 0x0001, "1.5·2^-25 rounds up to 2^-24"),
            (0x33C0_0000, 0x0002, "1.5·2^-24: tie between 1 and 2 ulps, even is 2"),
            (0x3880_0000, 0x0400, "2^-14, the smallest normal"),
            (0x387F_C000, 0x03FF, "the largest subnormal"),
            (0x7FC0_0000, 0x7E00, "quiet NaN"),
            (0x7FC1_2345, 0x7E00, "NaN payload dropped"),
            (0xFFC0_0000, 0xFE00, "negative NaN keeps its sign"),
            (0x7F80_0001, 0x7E00, "signalling NaN"),
        ],
    );
}

/// `fp16_ieee_to_fp32_value`: exact; a NaN gets the quiet bit, payload shifted by 13.
#[test]
fn f16_to_f32_is_exact() {
    check(
        DType::F16,
        DType::F32,
        &[
            (0x3C00, 0x3F80_0000, "1.0"),
            (0x0001, 0x3380_0000, "2^-24"),
            (0x83FF, 0xB87F_C000, "negative largest subnormal"),
            (0x7BFF, 0x477F_E000, "65504"),
            (0xFC00, 0xFF80_0000, "-inf"),
            (0x8000, 0x8000_0000, "-0.0"),
            (0x7E00, 0x7FC0_0000, "quiet NaN"),
            (0x7C01, 0x7FC0_2000, "signalling NaN is quieted, payload kept"),
            (0xFE01, 0xFFC0_2000, "negative NaN keeps its sign"),
        ],
    );
}

/// BFloat16.h `f32_from_bits`: the bits shifted left by 16, nothing else.
#[test]
fn bf16_to_f32_shifts() {
    check(
        DType::BF16,
        DType::F32,
        &[
            (0x3F80, 0x3F80_0000, "1.0"),
            (0x7F81, 0x7F81_0000, "signalling NaN stays"),
            (0x0001, 0x0001_0000, "subnormal"),
        ],
    );
}

/// x86 `cvtsd2ss`: round to nearest even; NaN → quiet, payload bits 51..29 kept.
#[test]
fn f64_to_f32_matches_the_hardware() {
    check(
        DType::F64,
        DType::F32,
        &[
            (0x3FF0_0000_0000_0000, 0x3F80_0000, "1.0"),
            (0x3FF0_0000_1000_0000, 0x3F80_0000, "1 + 2^-24: tie, even stays"),
            (0x3FF0_0000_3000_0000, 0x3F80_0002, "1 + 3·2^-24: tie, even is up"),
            (0x47EF_FFFF_E000_0000, 0x7F7F_FFFF, "f32 max exact"),
            (0x47EF_FFFF_F000_0000, 0x7F80_0000, "tie above f32 max rounds to infinity"),
            (0x4830_0000_0000_0000, 0x7F80_0000, "2^132 overflows"),
            (0x36A0_0000_0000_0000, 0x0000_0001, "2^-149, the smallest f32 subnormal"),
            (0x3690_0000_0000_0000, 0x0000_0000, "2^-150: tie, even is 0"),
            (0x8000_0000_0000_0000, 0x8000_0000, "-0.0"),
            (0xFFF0_0000_0000_0000, 0xFF80_0000, "-inf"),
            (0x7FF8_0000_0000_0001, 0x7FC0_0000, "low payload bits are dropped"),
            (0x7FF0_0000_2000_0000, 0x7FC0_0001, "signalling NaN quieted, payload bit 29 kept"),
            (0xFFF8_0000_0000_0000, 0xFFC0_0000, "negative NaN keeps its sign"),
        ],
    );
}

/// f32 → f64 is exact; a signalling NaN gets the quiet bit, payload shifted by 29.
#[test]
fn f32_to_f64_is_exact() {
    check(
        DType::F32,
        DType::F64,
        &[
            (0x3F80_0000, 0x3FF0_0000_0000_0000, "1.0"),
            (0x0000_0001, 0x36A0_0000_0000_0000, "2^-149"),
            (0x7F80_0001, 0x7FF8_0000_2000_0000, "signalling NaN quieted"),
            (0xFF80_0000, 0xFFF0_0000_0000_0000, "-inf"),
        ],
    );
}

/// f64 → f16 rounds twice (to f32, then to f16), as `c10::Half(float)` is the only
/// constructor. 1 + 2^-11 + 2^-36 rounds up directly, but to 1 + 2^-11 in f32 (an f16 tie),
/// then to even: 0x3C00.
#[test]
fn f64_to_f16_rounds_through_f32() {
    check(DType::F64, DType::F16, &[(0x3FF0_0200_0001_0000, 0x3C00, "double rounding through f32")]);
}

/// `static_cast<float>(int)` rounds once to nearest even; bf16 goes through f32.
#[test]
fn int_to_float_rounds_to_nearest_even() {
    check(
        DType::I64,
        DType::F32,
        &[
            (16_777_217, 0x4B80_0000, "2^24 + 1: tie, even is 2^24"),
            (16_777_219, 0x4B80_0002, "2^24 + 3: tie, even is 2^24 + 4"),
            ((-1i64) as u64, 0xBF80_0000, "-1"),
            (i64::MIN as u64, 0xDF00_0000, "-2^63 exact"),
        ],
    );
    // 2^24 + 2^16 + 1: f32 gives 2^24 + 2^16 (a tie, even), then bf16 gives 2^24 (a tie,
    // even); rounding directly would give 2^24 + 2^17.
    check(DType::I32, DType::BF16, &[(0x0101_0001, 0x4B80, "double rounding through f32")]);
    check(DType::U64, DType::F64, &[(u64::MAX, 0x43F0_0000_0000_0000, "2^64 - 1 rounds to 2^64")]);
}

/// Truncation toward zero; saturation and NaN → 0 are our definition (PyTorch: undefined).
#[test]
fn float_to_int_truncates_and_saturates() {
    check(
        DType::F32,
        DType::I8,
        &[
            (0xBFF3_3333, 0xFF, "-1.9 → -1"),
            (0x3FF3_3333, 0x01, "1.9 → 1"),
            (0x4396_0000, 0x7F, "300 saturates to 127"),
            (0xC396_0000, 0x80, "-300 saturates to -128"),
            (0x7FC0_0000, 0x00, "NaN → 0"),
            (0xFF80_0000, 0x80, "-inf → -128"),
        ],
    );
    check(DType::F64, DType::U8, &[(0xBFF0_0000_0000_0000, 0x00, "-1 saturates to 0")]);
}

/// `static_cast` between integers wraps modulo 2^bits.
#[test]
fn int_to_int_wraps() {
    check(DType::I64, DType::U8, &[(300, 44, "300 mod 256"), ((-1i64) as u64, 0xFF, "-1")]);
    check(DType::I32, DType::U32, &[(0xFFFF_FFFF, 0xFFFF_FFFF, "-1 → 2^32 - 1")]);
    check(DType::U8, DType::I8, &[(0xFF, 0xFF, "255 → -1")]);
    check(DType::I8, DType::I64, &[(0x80, (-128i64) as u64, "sign extends")]);
}

/// Nonzero is true: NaN is true, -0.0 is false; true is 1.
#[test]
fn bool_conversions() {
    check(
        DType::F32,
        DType::Bool,
        &[(0x3F00_0000, 1, "0.5"), (0x8000_0000, 0, "-0.0"), (0x7FC0_0000, 1, "NaN"), (0, 0, "0.0")],
    );
    check(DType::Bool, DType::F16, &[(1, 0x3C00, "true"), (0, 0, "false"), (2, 0x3C00, "any nonzero byte")]);
    check(DType::I64, DType::Bool, &[(256, 1, "nonzero")]);
}

/// Undoing a widening cast keeps NaN payloads; a signalling NaN comes back quiet.
#[test]
fn restore_undoes_widening() {
    let restore = |bits: u64, from: DType, to: DType| {
        let size = from.bits() / 8;
        let out = restore_bytes(&bits.to_le_bytes()[..size], from, to).unwrap();
        let mut wide = [0u8; 8];
        wide[..out.len()].copy_from_slice(&out);
        u64::from_le_bytes(wide)
    };
    // f16 0x7E4F widens to 0x7FC9_E000; PyTorch narrowing would give 0x7E00.
    assert_eq!(cast_one(0x7E4F, DType::F16, DType::F32), 0x7FC9_E000);
    assert_eq!(restore(0x7FC9_E000, DType::F32, DType::F16), 0x7E4F);
    assert_eq!(restore(0xFFC1_0000, DType::F32, DType::BF16), 0xFFC1);
    assert_eq!(restore(0x7FF8_0000_2000_0000, DType::F64, DType::F32), 0x7FC0_0001);
    // 0x7C01 (signalling) widens to 0x7FC0_2000, which restores to the quiet 0x7E01.
    assert_eq!(restore(cast_one(0x7C01, DType::F16, DType::F32), DType::F32, DType::F16), 0x7E01);
    // Ordinary values narrow as PyTorch does (they fit exactly).
    assert_eq!(restore(0x3F80_0000, DType::F32, DType::BF16), 0x3F80);
    assert_eq!(restore(0xC000_0000_0000_0000, DType::F64, DType::F16), 0xC000);
}

#[test]
fn lossless_means_widening() {
    assert!(lossless(DType::F16, DType::F32));
    assert!(lossless(DType::BF16, DType::F64));
    assert!(!lossless(DType::F32, DType::BF16));
    assert!(!lossless(DType::F16, DType::BF16));
    assert!(lossless(DType::U8, DType::F16));
    assert!(lossless(DType::I8, DType::BF16));
    assert!(!lossless(DType::I16, DType::F16));
    assert!(lossless(DType::I32, DType::F64));
    assert!(!lossless(DType::I64, DType::F64));
    assert!(lossless(DType::U8, DType::I16));
    assert!(!lossless(DType::U8, DType::I8));
    assert!(!lossless(DType::I8, DType::U64));
    assert!(lossless(DType::Bool, DType::I8));
    assert!(!lossless(DType::F32, DType::I64));
}

#[test]
fn unsupported_dtypes_are_errors() {
    assert_eq!(
        cast_bytes(&[0; 4], DType::F8E4M3, DType::F32),
        Err(CastError::Unsupported { from: DType::F8E4M3, to: DType::F32 })
    );
    assert_eq!(cast_bytes(&[0; 3], DType::F32, DType::F16), Err(CastError::Length { len: 3, dtype: DType::F32 }));
}
