"""safeshift: load historical ML checkpoints in the layout today's model code expects.

``safeshift.safe_open`` is a drop-in for ``safetensors.safe_open`` that detects an old
checkpoint's version, plans the migration to today's layout (from the registry embedded
in the package, or your own) and shows the checkpoint in that layout, borrowing tensors
from the memory map wherever the migration allows and computing the rest on demand.
``safeshift.torch`` and ``safeshift.numpy`` have ``load_file`` (and ``load_model``) as in
``safetensors.torch`` and ``safetensors.numpy``. Errors are :mod:`safeshift.errors`.

The same Rust library runs the ``safeshift`` command-line tool: what ``safe_open`` shows
is what ``safeshift upgrade`` writes.
"""

from __future__ import annotations

from . import errors
from ._native import __version__
from ._open import Slice, safe_open
from .errors import *  # noqa: F401,F403 (the exception classes, listed in errors.__all__)

__all__ = ["__version__", "safe_open", "Slice", "errors", *errors.__all__]
