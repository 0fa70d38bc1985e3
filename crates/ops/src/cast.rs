//! Element type conversion, bit for bit as PyTorch's CPU scalar conversions do it.
//!
//! Supported dtypes: `bool`, `u8`, `i8`, `i16`, `u16`, `i32`, `u32`, `i64`, `u64`,
//! `f16`, `bf16`, `f32`, `f64`. The rules, with their PyTorch source:
//!
//! * **f32 → bf16** (`c10/util/BFloat16.h`, `round_to_nearest_even`): round to nearest,
//!   ties to even, by adding `0x7FFF + lsb` to the f32 bits and keeping the top half;
//!   overflow becomes infinity; every NaN becomes `0x7FC0` (sign and payload dropped).
//!   PyTorch's AVX2/AVX-512 loops produce `0xFFFF` for NaN instead: both are NaN; we
//!   follow the scalar definition.
//! * **f32 → f16** (`c10/util/Half.h`, `fp16_ieee_from_fp32_value`, from the FP16
//!   library): round to nearest even, subnormals included; overflow becomes infinity;
//!   NaN becomes `sign | 0x7E00` (payload dropped).
//! * **f16 → f32** (`fp16_ieee_to_fp32_value`): exact; a NaN keeps its sign and payload and
//!   gets the quiet bit. **bf16 → f32**: the bits shifted left by 16, exactly (a signalling
//!   NaN stays signalling).
//! * **f64 → f32** (the hardware conversion `cvtsd2ss`): round to nearest even, overflow
//!   to infinity; a NaN keeps its sign and the top 22 payload bits and gets the quiet bit.
//!   **f32 → f64**: exact; a NaN keeps sign and payload and gets the quiet bit.
//! * **f64 → f16 / bf16, int → f16 / bf16**: `c10::Half` and `c10::BFloat16` only have a
//!   constructor from `float`, so PyTorch converts to f32 first and rounds twice; so do we.
//! * **int → f32 / f64**: one rounding to nearest even (`static_cast`).
//! * **int → int**: two's complement wrap-around (`static_cast`, modular since C++20).
//! * **float → int**: truncation toward zero. PyTorch leaves NaN and out-of-range values
//!   undefined (x86 gives the "integer indefinite" value); we define them: out-of-range
//!   values saturate to the integer's minimum or maximum and NaN becomes 0. Such a cast is
//!   always `lossy`.
//! * **to bool**: nonzero is `true` (NaN is `true`, `-0.0` is `false`); **from bool**: any
//!   nonzero byte is 1.

use safeshift_model::DType;

/// Why a buffer could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// A dtype the conversion kernels do not handle.
    #[error("cannot cast from `{from}` to `{to}`: only bool, integer, f16, bf16, f32 and f64 are supported")]
    Unsupported {
        /// The source dtype.
        from: DType,
        /// The target dtype.
        to: DType,
    },
    /// A byte count that is not a whole number of source elements.
    #[error("{len} bytes are not a whole number of `{dtype}` elements")]
    Length {
        /// The byte count.
        len: usize,
        /// The source dtype.
        dtype: DType,
    },
}

/// How [`Expr::Cast`](crate::Expr::Cast) converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CastMode {
    /// PyTorch's conversion ([`cast_bytes`]).
    Torch,
    /// The exact undoing of a widening cast ([`restore_bytes`]): the values are known to
    /// fit, and NaN payloads are kept instead of canonicalised.
    Restore,
}

/// Whether the conversion kernels handle `dtype`.
pub fn supported(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Bool
            | DType::U8
            | DType::I8
            | DType::I16
            | DType::U16
            | DType::I32
            | DType::U32
            | DType::I64
            | DType::U64
            | DType::F16
            | DType::BF16
            | DType::F32
            | DType::F64
    )
}

/// Whether every value of `from` converts to `to` and back unchanged (a widening cast).
pub fn lossless(from: DType, to: DType) -> bool {
    if from == to || from == DType::Bool {
        return true;
    }
    let float_precision = |dtype| match dtype {
        DType::F16 => Some(11),
        DType::BF16 => Some(8),
        DType::F32 => Some(24),
        DType::F64 => Some(53),
        _ => None,
    };
    let int_bits = |dtype| match dtype {
        DType::U8 => Some((8, false)),
        DType::I8 => Some((8, true)),
        DType::U16 => Some((16, false)),
        DType::I16 => Some((16, true)),
        DType::U32 => Some((32, false)),
        DType::I32 => Some((32, true)),
        DType::U64 => Some((64, false)),
        DType::I64 => Some((64, true)),
        _ => None,
    };
    match (from, to) {
        (DType::F16 | DType::BF16, DType::F32 | DType::F64) | (DType::F32, DType::F64) => true,
        _ => match (int_bits(from), int_bits(to), float_precision(to)) {
            (Some((from_bits, false)), Some((to_bits, signed)), _) => {
                to_bits > from_bits || !signed && to_bits == from_bits
            }
            (Some((from_bits, true)), Some((to_bits, true)), _) => to_bits >= from_bits,
            // Magnitudes up to 2^(bits - 1) (signed) or 2^bits - 1 (unsigned) need that many
            // significant bits.
            (Some((bits, signed)), None, Some(precision)) => bits - usize::from(signed) <= precision,
            _ => false,
        },
    }
}

/// Converts little-endian `src` of dtype `from` to a new little-endian buffer of `to`.
pub fn cast_bytes(src: &[u8], from: DType, to: DType) -> Result<Vec<u8>, CastError> {
    if !supported(from) || !supported(to) {
        return Err(CastError::Unsupported { from, to });
    }
    let (from_size, to_size) = (from.bits() / 8, to.bits() / 8);
    if src.len() % from_size != 0 {
        return Err(CastError::Length { len: src.len(), dtype: from });
    }
    let mut dst = vec![0u8; src.len() / from_size * to_size];
    if from == to {
        dst.copy_from_slice(src);
        return Ok(dst);
    }
    macro_rules! to_any {
        ($s:ty) => {
            match to {
                DType::Bool => run::<$s, Bool>(src, &mut dst),
                DType::U8 => run::<$s, u8>(src, &mut dst),
                DType::I8 => run::<$s, i8>(src, &mut dst),
                DType::I16 => run::<$s, i16>(src, &mut dst),
                DType::U16 => run::<$s, u16>(src, &mut dst),
                DType::I32 => run::<$s, i32>(src, &mut dst),
                DType::U32 => run::<$s, u32>(src, &mut dst),
                DType::I64 => run::<$s, i64>(src, &mut dst),
                DType::U64 => run::<$s, u64>(src, &mut dst),
                DType::F16 => run::<$s, F16>(src, &mut dst),
                DType::BF16 => run::<$s, Bf16>(src, &mut dst),
                DType::F32 => run::<$s, f32>(src, &mut dst),
                DType::F64 => run::<$s, f64>(src, &mut dst),
                _ => unreachable!("checked by supported()"),
            }
        };
    }
    match from {
        DType::Bool => to_any!(Bool),
        DType::U8 => to_any!(u8),
        DType::I8 => to_any!(i8),
        DType::I16 => to_any!(i16),
        DType::U16 => to_any!(u16),
        DType::I32 => to_any!(i32),
        DType::U32 => to_any!(u32),
        DType::I64 => to_any!(i64),
        DType::U64 => to_any!(u64),
        DType::F16 => to_any!(F16),
        DType::BF16 => to_any!(Bf16),
        DType::F32 => to_any!(f32),
        DType::F64 => to_any!(f64),
        _ => unreachable!("checked by supported()"),
    }
    Ok(dst)
}

/// Undoes a widening cast from `to` to `from` (`src` holds only values of `to`): like
/// [`cast_bytes`], except that a NaN keeps its sign and payload (truncated to the narrower
/// mantissa) instead of becoming the canonical NaN. So f16 → f32 → f16, bf16 → f32 → bf16
/// and f32 → f64 → f32 give back every bit pattern, except that a signalling NaN comes
/// back quiet (the widening, in PyTorch as in IEEE hardware, sets the quiet bit).
pub fn restore_bytes(src: &[u8], from: DType, to: DType) -> Result<Vec<u8>, CastError> {
    match (from, to) {
        (DType::F32, DType::F16 | DType::BF16) | (DType::F64, DType::F32 | DType::F16 | DType::BF16) => {}
        _ => return cast_bytes(src, from, to),
    }
    let from_size = from.bits() / 8;
    if src.len() % from_size != 0 {
        return Err(CastError::Length { len: src.len(), dtype: from });
    }
    let mut dst = Vec::with_capacity(src.len() / from_size * (to.bits() / 8));
    for chunk in src.chunks_exact(from_size) {
        let value = match from {
            DType::F64 => restore_f64_to_f32(f64::from_le_bytes(chunk.try_into().expect("8 bytes"))),
            _ => f32::from_le_bytes(chunk.try_into().expect("4 bytes")),
        };
        match to {
            DType::F32 => dst.extend_from_slice(&value.to_le_bytes()),
            DType::F16 => dst.extend_from_slice(&restore_f32_to_f16(value).to_le_bytes()),
            _ => dst.extend_from_slice(&restore_f32_to_bf16(value).to_le_bytes()),
        }
    }
    Ok(dst)
}

fn restore_f64_to_f32(value: f64) -> f32 {
    if !value.is_nan() {
        return value as f32;
    }
    let bits = value.to_bits();
    let payload = ((bits >> 29) as u32 & 0x007F_FFFF).max(1);
    f32::from_bits(((bits >> 32) as u32 & 0x8000_0000) | 0x7F80_0000 | payload)
}

fn restore_f32_to_f16(value: f32) -> u16 {
    if !value.is_nan() {
        return f32_to_f16(value);
    }
    let bits = value.to_bits();
    let payload = ((bits >> 13) & 0x03FF).max(1) as u16;
    ((bits >> 16) & 0x8000) as u16 | 0x7C00 | payload
}

fn restore_f32_to_bf16(value: f32) -> u16 {
    if !value.is_nan() {
        return f32_to_bf16(value);
    }
    let bits = value.to_bits();
    let payload = ((bits >> 16) & 0x007F).max(1) as u16;
    ((bits >> 16) & 0x8000) as u16 | 0x7F80 | payload
}

/// The bytes of one element of `dtype` holding `value`, converted from `f64` as
/// [`cast_bytes`] does (fill and pad values).
pub fn scalar_bytes(value: f64, dtype: DType) -> Result<Vec<u8>, CastError> {
    cast_bytes(&value.to_le_bytes(), DType::F64, dtype)
}

/// f32 → bf16 bits, as `c10::detail::round_to_nearest_even`.
#[inline(always)]
pub fn f32_to_bf16(value: f32) -> u16 {
    // Branch-free (a select), so that the cast loop vectorises.
    let bits = value.to_bits();
    let rounding_bias = ((bits >> 16) & 1) + 0x7FFF;
    let rounded = (bits.wrapping_add(rounding_bias) >> 16) as u16;
    if value.is_nan() {
        0x7FC0
    } else {
        rounded
    }
}

/// bf16 bits → f32, exactly.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// f32 → f16 bits, as `c10::detail::fp16_ieee_from_fp32_value`: the float arithmetic
/// below rounds the mantissa to nearest even in the f32 adder.
pub fn f32_to_f16(value: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (value.abs() * scale_to_inf) * scale_to_zero;
    let w = value.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xFF00_0000).max(0x7100_0000);
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16) | if shl1_w > 0xFF00_0000 { 0x7E00 } else { nonsign }) as u16
}

/// f16 bits → f32, exactly (a NaN gets the quiet bit).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exponent = u32::from((bits >> 10) & 0x1F);
    let mantissa = u32::from(bits & 0x03FF);
    match (exponent, mantissa) {
        (0x1F, 0) => f32::from_bits(sign | 0x7F80_0000),
        (0x1F, _) => f32::from_bits(sign | 0x7FC0_0000 | mantissa << 13),
        (0, 0) => f32::from_bits(sign),
        // Subnormal: mantissa × 2^-24, exact in f32.
        (0, _) => f32::from_bits(sign | (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits()),
        _ => f32::from_bits(sign | (exponent + 112) << 23 | mantissa << 13),
    }
}

/// f64 → f32 as the hardware does it: round to nearest even; NaN keeps sign and top
/// payload bits and gets the quiet bit.
pub fn f64_to_f32(value: f64) -> f32 {
    if value.is_nan() {
        let bits = value.to_bits();
        let sign = ((bits >> 32) as u32) & 0x8000_0000;
        let payload = ((bits >> 29) as u32) & 0x007F_FFFF;
        return f32::from_bits(sign | 0x7FC0_0000 | payload);
    }
    value as f32
}

/// f32 → f64, exactly; NaN keeps sign and payload and gets the quiet bit.
pub fn f32_to_f64(value: f32) -> f64 {
    if value.is_nan() {
        let bits = value.to_bits();
        let sign = u64::from(bits & 0x8000_0000) << 32;
        let payload = u64::from(bits & 0x007F_FFFF) << 29;
        return f64::from_bits(sign | 0x7FF8_0000_0000_0000 | payload);
    }
    f64::from(value)
}

/// One element type as stored (little-endian).
trait Elem: Copy {
    const SIZE: usize;
    fn read(bytes: &[u8]) -> Self;
    fn write(self, out: &mut [u8]);
}

/// The value an element converts through: f32 for 16- and 32-bit floats, f64 for f64,
/// i64 for signed integers and bool, u64 for unsigned integers.
trait Load: Elem {
    type Mid;
    fn load(self) -> Self::Mid;
}

/// Conversion into an element from an intermediate value.
trait StoreFrom<M>: Elem {
    fn store(value: M) -> Self;
}

#[derive(Clone, Copy)]
struct F16(u16);
#[derive(Clone, Copy)]
struct Bf16(u16);
#[derive(Clone, Copy)]
struct Bool(u8);

macro_rules! native_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn read(bytes: &[u8]) -> $t {
                <$t>::from_le_bytes(bytes.try_into().expect("chunk of the element size"))
            }
            #[inline(always)]
            fn write(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
native_elem!(u8, i8, i16, u16, i32, u32, i64, u64, f32, f64);

macro_rules! wrapped_elem {
    ($($t:ident($inner:ty)),*) => {$(
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$inner>();
            #[inline(always)]
            fn read(bytes: &[u8]) -> $t {
                $t(<$inner>::from_le_bytes(bytes.try_into().expect("chunk of the element size")))
            }
            #[inline(always)]
            fn write(self, out: &mut [u8]) {
                out.copy_from_slice(&self.0.to_le_bytes());
            }
        }
    )*};
}
wrapped_elem!(F16(u16), Bf16(u16), Bool(u8));

macro_rules! load_as {
    ($mid:ty: $($t:ty),*) => {$(
        impl Load for $t {
            type Mid = $mid;
            #[inline(always)]
            fn load(self) -> $mid {
                self as $mid
            }
        }
    )*};
}
load_as!(i64: i8, i16, i32, i64);
load_as!(u64: u8, u16, u32, u64);
load_as!(f32: f32);
load_as!(f64: f64);

impl Load for F16 {
    type Mid = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        f16_to_f32(self.0)
    }
}
impl Load for Bf16 {
    type Mid = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        bf16_to_f32(self.0)
    }
}
impl Load for Bool {
    type Mid = i64;
    #[inline(always)]
    fn load(self) -> i64 {
        i64::from(self.0 != 0)
    }
}

macro_rules! store_int {
    ($($t:ty),*) => {$(
        impl StoreFrom<f32> for $t {
            #[inline(always)]
            fn store(value: f32) -> $t { value as $t }
        }
        impl StoreFrom<f64> for $t {
            #[inline(always)]
            fn store(value: f64) -> $t { value as $t }
        }
        impl StoreFrom<i64> for $t {
            #[inline(always)]
            fn store(value: i64) -> $t { value as $t }
        }
        impl StoreFrom<u64> for $t {
            #[inline(always)]
            fn store(value: u64) -> $t { value as $t }
        }
    )*};
}
store_int!(u8, i8, i16, u16, i32, u32, i64, u64);

impl StoreFrom<f32> for f32 {
    #[inline(always)]
    fn store(value: f32) -> f32 {
        value
    }
}
impl StoreFrom<f64> for f32 {
    #[inline(always)]
    fn store(value: f64) -> f32 {
        f64_to_f32(value)
    }
}
impl StoreFrom<i64> for f32 {
    #[inline(always)]
    fn store(value: i64) -> f32 {
        value as f32
    }
}
impl StoreFrom<u64> for f32 {
    #[inline(always)]
    fn store(value: u64) -> f32 {
        value as f32
    }
}
impl StoreFrom<f32> for f64 {
    #[inline(always)]
    fn store(value: f32) -> f64 {
        f32_to_f64(value)
    }
}
impl StoreFrom<f64> for f64 {
    #[inline(always)]
    fn store(value: f64) -> f64 {
        value
    }
}
impl StoreFrom<i64> for f64 {
    #[inline(always)]
    fn store(value: i64) -> f64 {
        value as f64
    }
}
impl StoreFrom<u64> for f64 {
    #[inline(always)]
    fn store(value: u64) -> f64 {
        value as f64
    }
}

/// f16 and bf16 go through f32, as PyTorch's constructors do.
macro_rules! store_half {
    ($t:ident, $from_f32:path) => {
        impl<M> StoreFrom<M> for $t
        where
            f32: StoreFrom<M>,
        {
            #[inline(always)]
            fn store(value: M) -> $t {
                $t($from_f32(<f32 as StoreFrom<M>>::store(value)))
            }
        }
    };
}
store_half!(F16, f32_to_f16);
store_half!(Bf16, f32_to_bf16);

impl StoreFrom<f32> for Bool {
    #[inline(always)]
    fn store(value: f32) -> Bool {
        Bool(u8::from(value != 0.0))
    }
}
impl StoreFrom<f64> for Bool {
    #[inline(always)]
    fn store(value: f64) -> Bool {
        Bool(u8::from(value != 0.0))
    }
}
impl StoreFrom<i64> for Bool {
    #[inline(always)]
    fn store(value: i64) -> Bool {
        Bool(u8::from(value != 0))
    }
}
impl StoreFrom<u64> for Bool {
    #[inline(always)]
    fn store(value: u64) -> Bool {
        Bool(u8::from(value != 0))
    }
}

/// The tight loop for one dtype pair.
fn run<S, T>(src: &[u8], dst: &mut [u8])
where
    S: Load,
    T: StoreFrom<S::Mid>,
{
    for (input, output) in src.chunks_exact(S::SIZE).zip(dst.chunks_exact_mut(T::SIZE)) {
        T::store(S::read(input).load()).write(output);
    }
}

#[cfg(test)]
mod tests;
