"""NumPy loading, as ``safetensors.numpy``: ``load_file`` over :class:`safeshift.safe_open`."""

from __future__ import annotations

from typing import Any, Dict

from ._open import PathLike, safe_open

__all__ = ["load_file"]


def load_file(filename: PathLike, **options: Any) -> Dict[str, Any]:
    """Every tensor of ``filename`` in the target layout, as NumPy arrays by name.

    ``options`` are :class:`safeshift.safe_open`'s keyword arguments (``target``, ``dims``,
    ``aux``, ``registry``, ``allow_lossy``, ``params``, ``key``,
    ``allow_gadgets``). Borrowed tensors are read-only arrays over the
    memory map; the map is unmapped when the last of them is gone.
    """
    with safe_open(filename, framework="np", **options) as checkpoint:
        return {name: checkpoint.get_tensor(name) for name in checkpoint.keys()}
