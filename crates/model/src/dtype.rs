//! Element types, with the names safetensors files and the language use.

use std::fmt;

/// An element type of a tensor: every dtype the safetensors format defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean, one byte (0 or 1).
    Bool,
    /// 4-bit float e2m1, packed two per byte (`F4`).
    F4,
    /// 6-bit float e2m3 (`F6_E2M3`), packed: four elements in three bytes (safetensors 0.8
    /// counts 6 bits per element, so a tensor's element count times 6 must fill whole bytes).
    F6E2M3,
    /// 6-bit float e3m2 (`F6_E3M2`), packed like [`DType::F6E2M3`].
    F6E3M2,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float e5m2.
    F8E5M2,
    /// 8-bit float e4m3 (finite, no infinities).
    F8E4M3,
    /// 8-bit exponent-only scale (`F8_E8M0`).
    F8E8M0,
    /// 8-bit float e4m3, finite, no negative zero (`F8_E4M3FNUZ`).
    F8E4M3Fnuz,
    /// 8-bit float e5m2, finite, no negative zero (`F8_E5M2FNUZ`).
    F8E5M2Fnuz,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE single precision.
    F32,
    /// Complex of two f32 (`C64`).
    C64,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

/// A set of dtypes a schema accepts for one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DTypeClass {
    /// Exactly this dtype.
    Exact(DType),
    /// Any floating-point dtype (`float`).
    Float,
    /// Any integer dtype, signed or not (`int`).
    Int,
    /// Any dtype (`any`).
    Any,
}

impl DType {
    /// All dtypes, in the order of the safetensors specification (which is also the
    /// derived `Ord`: the `safetensors` crate writes tensors by descending dtype in this order).
    pub const ALL: [DType; 22] = [
        DType::Bool,
        DType::F4,
        DType::F6E2M3,
        DType::F6E3M2,
        DType::U8,
        DType::I8,
        DType::F8E5M2,
        DType::F8E4M3,
        DType::F8E8M0,
        DType::F8E4M3Fnuz,
        DType::F8E5M2Fnuz,
        DType::I16,
        DType::U16,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::U32,
        DType::F32,
        DType::C64,
        DType::F64,
        DType::I64,
        DType::U64,
    ];

    /// The name in a safetensors header (`F32`, `BF16`, `F8_E4M3`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::F4 => "F4",
            DType::F6E2M3 => "F6_E2M3",
            DType::F6E3M2 => "F6_E3M2",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::F8E5M2 => "F8_E5M2",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E8M0 => "F8_E8M0",
            DType::F8E4M3Fnuz => "F8_E4M3FNUZ",
            DType::F8E5M2Fnuz => "F8_E5M2FNUZ",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I32 => "I32",
            DType::U32 => "U32",
            DType::F32 => "F32",
            DType::C64 => "C64",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::U64 => "U64",
        }
    }

    /// Parses a safetensors header name.
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|dtype| dtype.safetensors_name() == name)
    }

    /// The name in the language (`f32`, `bf16`, `f8_e4m3`, `bool`).
    pub fn language_name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::F4 => "f4",
            DType::F6E2M3 => "f6_e2m3",
            DType::F6E3M2 => "f6_e3m2",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::F8E5M2 => "f8_e5m2",
            DType::F8E4M3 => "f8_e4m3",
            DType::F8E8M0 => "f8_e8m0",
            DType::F8E4M3Fnuz => "f8_e4m3fnuz",
            DType::F8E5M2Fnuz => "f8_e5m2fnuz",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::F32 => "f32",
            DType::C64 => "c64",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U64 => "u64",
        }
    }

    /// Parses a language name (`f32`; also accepts `float32`-style PyTorch names).
    pub fn from_language_name(name: &str) -> Option<DType> {
        let alias = match name {
            "float32" | "float" => "f32",
            "float16" | "half" => "f16",
            "bfloat16" => "bf16",
            "float64" | "double" => "f64",
            "int64" | "long" => "i64",
            "int32" | "int" => "i32",
            "int16" | "short" => "i16",
            "int8" => "i8",
            "uint8" => "u8",
            "uint16" => "u16",
            "uint32" => "u32",
            "uint64" => "u64",
            "complex64" => "c64",
            other => other,
        };
        DType::ALL.into_iter().find(|dtype| dtype.language_name() == alias)
    }

    /// Bits per element, as the `safetensors` crate (0.8) counts them: 4 for `F4` and 6 for
    /// the `F6_*` types, which are packed.
    pub fn bits(self) -> usize {
        match self {
            DType::F4 => 4,
            DType::F6E2M3 | DType::F6E3M2 => 6,
            DType::Bool
            | DType::U8
            | DType::I8
            | DType::F8E5M2
            | DType::F8E4M3
            | DType::F8E8M0
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz => 8,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 16,
            DType::I32 | DType::U32 | DType::F32 => 32,
            DType::C64 | DType::F64 | DType::I64 | DType::U64 => 64,
        }
    }

    /// Bytes needed for `numel` elements, or `None` on overflow or when `numel` does not
    /// fill whole bytes (an odd count of `F4`).
    pub fn byte_len(self, numel: u64) -> Option<u64> {
        let bits = numel.checked_mul(self.bits() as u64)?;
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Size in bytes of one element, for whole-byte dtypes (`None` for `F4` and `F6_*`).
    pub fn size(self) -> Option<usize> {
        (self.bits() % 8 == 0).then_some(self.bits() / 8)
    }

    /// Whether this is a floating-point type (complex excluded).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F4
                | DType::F6E2M3
                | DType::F6E3M2
                | DType::F8E5M2
                | DType::F8E4M3
                | DType::F8E8M0
                | DType::F8E4M3Fnuz
                | DType::F8E5M2Fnuz
                | DType::F16
                | DType::BF16
                | DType::F32
                | DType::F64
        )
    }

    /// Whether this is an integer type (bool excluded).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::U8 | DType::I8 | DType::I16 | DType::U16 | DType::I32 | DType::U32 | DType::I64 | DType::U64
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.language_name())
    }
}

impl DTypeClass {
    /// Parses a language dtype or class name.
    pub fn from_language_name(name: &str) -> Option<DTypeClass> {
        match name {
            "float" => Some(DTypeClass::Float),
            "int" => Some(DTypeClass::Int),
            "any" => Some(DTypeClass::Any),
            other => DType::from_language_name(other).map(DTypeClass::Exact),
        }
    }

    /// Whether `dtype` belongs to the class.
    pub fn accepts(self, dtype: DType) -> bool {
        match self {
            DTypeClass::Exact(exact) => exact == dtype,
            DTypeClass::Float => dtype.is_float(),
            DTypeClass::Int => dtype.is_int(),
            DTypeClass::Any => true,
        }
    }
}

impl fmt::Display for DTypeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DTypeClass::Exact(dtype) => dtype.fmt(f),
            DTypeClass::Float => f.write_str("float"),
            DTypeClass::Int => f.write_str("int"),
            DTypeClass::Any => f.write_str("any"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dtype in DType::ALL {
            assert_eq!(DType::from_safetensors_name(dtype.safetensors_name()), Some(dtype));
            assert_eq!(DType::from_language_name(dtype.language_name()), Some(dtype));
        }
        assert_eq!(DType::from_safetensors_name("F128"), None);
    }

    #[test]
    fn byte_len_handles_packing_and_overflow() {
        assert_eq!(DType::F32.byte_len(3), Some(12));
        assert_eq!(DType::F4.byte_len(4), Some(2));
        assert_eq!(DType::F4.byte_len(3), None);
        assert_eq!(DType::F6E2M3.byte_len(4), Some(3));
        assert_eq!(DType::F6E3M2.byte_len(2), None);
        assert_eq!(DType::F6E3M2.size(), None);
        assert_eq!(DType::F64.byte_len(u64::MAX), None);
    }

    #[test]
    fn classes_accept_their_members() {
        assert!(DTypeClass::Float.accepts(DType::BF16));
        assert!(!DTypeClass::Float.accepts(DType::I64));
        assert!(DTypeClass::Int.accepts(DType::U8));
        assert!(!DTypeClass::Int.accepts(DType::Bool));
        assert!(DTypeClass::Any.accepts(DType::C64));
    }
}
