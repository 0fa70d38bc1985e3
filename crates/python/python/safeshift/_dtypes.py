"""safeshift dtypes (the language's spelling: ``f32``, ``bf16``) in NumPy and torch."""

from __future__ import annotations

from typing import Any

from .errors import DTypeError

# The safetensors header spelling, for `Slice.get_dtype()` (as `safetensors` returns it).
SAFETENSORS_NAMES = {
    "bool": "BOOL", "f4": "F4", "f6_e2m3": "F6_E2M3", "f6_e3m2": "F6_E3M2", "u8": "U8",
    "i8": "I8", "f8_e5m2": "F8_E5M2", "f8_e4m3": "F8_E4M3", "f8_e8m0": "F8_E8M0",
    "f8_e4m3fnuz": "F8_E4M3FNUZ", "f8_e5m2fnuz": "F8_E5M2FNUZ", "i16": "I16", "u16": "U16",
    "f16": "F16", "bf16": "BF16", "i32": "I32", "u32": "U32", "f32": "F32", "c64": "C64",
    "f64": "F64", "i64": "I64", "u64": "U64",
}

# NumPy's own dtypes (little-endian, as safetensors stores them).
_NUMPY_NATIVE = {
    "bool": "?", "u8": "u1", "i8": "i1", "i16": "<i2", "u16": "<u2", "f16": "<f2",
    "i32": "<i4", "u32": "<u4", "f32": "<f4", "c64": "<c8", "f64": "<f8", "i64": "<i8",
    "u64": "<u8",
}

# Dtypes NumPy has only through `ml_dtypes`.
_ML_DTYPES = {
    "bf16": "bfloat16", "f8_e5m2": "float8_e5m2", "f8_e4m3": "float8_e4m3fn",
    "f8_e8m0": "float8_e8m0fnu", "f8_e4m3fnuz": "float8_e4m3fnuz",
    "f8_e5m2fnuz": "float8_e5m2fnuz",
}

_TORCH = {
    "bool": "bool", "u8": "uint8", "i8": "int8", "f8_e5m2": "float8_e5m2",
    "f8_e4m3": "float8_e4m3fn", "f8_e8m0": "float8_e8m0fnu",
    "f8_e4m3fnuz": "float8_e4m3fnuz", "f8_e5m2fnuz": "float8_e5m2fnuz", "i16": "int16",
    "u16": "uint16", "f16": "float16", "bf16": "bfloat16", "i32": "int32", "u32": "uint32",
    "f32": "float32", "c64": "complex64", "f64": "float64", "i64": "int64", "u64": "uint64",
}


def numpy_dtype(dtype: str, tensor: str) -> Any:
    """The NumPy dtype of safeshift dtype ``dtype``; ``tensor`` names the tensor in errors."""
    import numpy

    if dtype in _NUMPY_NATIVE:
        return numpy.dtype(_NUMPY_NATIVE[dtype])
    if dtype in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise DTypeError(
                f"tensor `{tensor}` is {dtype}, which NumPy has only through the `ml_dtypes` "
                "package: `pip install ml_dtypes`, or open with framework=\"pt\""
            ) from None
        found = getattr(ml_dtypes, _ML_DTYPES[dtype], None)
        if found is not None:
            return numpy.dtype(found)
        raise DTypeError(
            f"tensor `{tensor}` is {dtype}, which this version of `ml_dtypes` does not have "
            f"(`{_ML_DTYPES[dtype]}`): upgrade it"
        )
    raise DTypeError(f"tensor `{tensor}` is {dtype}, which has no NumPy dtype")


def torch_dtype(dtype: str, tensor: str) -> Any:
    """The torch dtype of safeshift dtype ``dtype``; ``tensor`` names the tensor in errors."""
    import torch

    name = _TORCH.get(dtype)
    found = getattr(torch, name, None) if name else None
    if found is None:
        raise DTypeError(
            f"tensor `{tensor}` is {dtype}, which this version of torch ({torch.__version__}) "
            "has no dtype for"
        )
    return found
