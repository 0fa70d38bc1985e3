"""Tensor bytes from the Rust side as NumPy arrays and torch tensors, without copying.

``_native.Bytes`` exposes NumPy's array interface over the bytes (borrowed from the memory
map, or the one buffer a computed tensor was written to). ``numpy.asarray`` makes a flat
``uint8`` array whose ``base`` is that object, so the map stays open as long as any array
or tensor made from it lives; ``view`` and ``reshape`` then reinterpret it in place.
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _dtypes, _native


def to_numpy(raw: _native.Bytes, dtype: str, shape: Sequence[int], tensor: str) -> Any:
    """A NumPy array over ``raw`` (read-only when borrowed from the map)."""
    import numpy

    flat = numpy.asarray(raw)
    return flat.view(_dtypes.numpy_dtype(dtype, tensor)).reshape(tuple(shape))


def to_torch(raw: _native.Bytes, dtype: str, shape: Sequence[int], tensor: str, device: Any) -> Any:
    """A torch tensor over ``raw``; moved to ``device`` unless that is the CPU.

    Torch has no read-only tensors: ``raw`` must be writable (the map is copy-on-write, so
    an in-place write changes only this process's copy, never the file).
    """
    import numpy
    import torch

    target = _dtypes.torch_dtype(dtype, tensor)
    flat = torch.from_numpy(numpy.asarray(raw))
    result = flat.view(target).reshape(tuple(shape))
    if not _is_cpu(device):
        result = result.to(device)
    return result


def _is_cpu(device: Any) -> bool:
    return str(device) == "cpu"
