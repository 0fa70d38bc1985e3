"""The exceptions safeshift raises.

Every error is a :class:`SafeshiftError`; the subclasses say what failed and carry the
message the command-line tool prints for the same problem (the file, the tensor, the
rule). Where a built-in exception means the same thing, the class derives from it too,
so ``except KeyError`` or ``except OSError`` keeps working for code written against
``safetensors``.
"""

from __future__ import annotations

__all__ = [
    "SafeshiftError",
    "RegistryError",
    "ReadError",
    "GadgetError",
    "DetectError",
    "TargetError",
    "PlanError",
    "LossyError",
    "CompileError",
    "ParamError",
    "UnknownTensorError",
    "ComputeError",
    "DTypeError",
    "SliceError",
    "FrameworkError",
    "LayoutMismatchError",
]


class SafeshiftError(Exception):
    """Base class of every error raised by safeshift."""


class RegistryError(SafeshiftError):
    """The registry (embedded or the ``registry=`` folder) cannot be loaded or has errors;
    the message lists the diagnostics (``safeshift check`` shows them with context)."""


class ReadError(SafeshiftError, OSError):
    """The checkpoint or an ``aux`` input cannot be read: missing, unreadable, truncated,
    or not a valid safetensors file (the message names the file and what is wrong)."""


class GadgetError(ReadError):
    """A PyTorch file holds code-execution gadgets (``os.system``, ``builtins.eval``, a
    call of a computed callable…). Nothing in it was run: safeshift never executes a
    pickle. The message names the first gadget and its byte offset; if you trust the file,
    ``allow_gadgets=True`` reads its tensors anyway (still without running anything)."""


class DetectError(SafeshiftError):
    """No version of any schema in the registry matches the checkpoint's layout."""


class TargetError(SafeshiftError, ValueError):
    """``target=`` is not a version (``VERSION`` or ``FAMILY@VERSION``)."""


class PlanError(SafeshiftError):
    """The version graph has no path from the checkpoint's version to the target."""


class LossyError(SafeshiftError):
    """The path to the target discards information; pass ``allow_lossy=True`` to run it."""


class CompileError(SafeshiftError):
    """The plan does not fit this checkpoint: a dim cannot be bound (give it with
    ``dims=``), an ``aux`` input is missing, a migration parameter has no usable value
    (give it with ``params=``; the CLI's ``--param NAME=VALUE`` in the message is
    ``params={"NAME": "VALUE"}``), or a tensor has another type than the plan expects."""


class ParamError(CompileError, ValueError):
    """``params=`` names a parameter no migration of the registry declares (the message
    lists those that exist), or gives a value that is neither text (``"0"``,
    ``"era5:global,cerra:regional"``) nor a dict of non-empty keys and values. A parameter
    the plan needs but lacks is a :class:`CompileError` whose message says what to give."""


class UnknownTensorError(SafeshiftError, KeyError):
    """The migrated checkpoint has no tensor of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ComputeError(SafeshiftError):
    """Computing a tensor failed (the message names the tensor and the kernel's reason)."""


class DTypeError(SafeshiftError, TypeError):
    """The tensor's dtype has no equivalent in the chosen framework (for example ``bf16``
    in NumPy without ``ml_dtypes`` installed); the message names the tensor."""


class SliceError(SafeshiftError, IndexError):
    """An index given to ``get_slice(name)[...]`` is not supported or out of range."""


class FrameworkError(SafeshiftError, ValueError):
    """``framework=`` or ``device=`` is not one safeshift supports."""


class LayoutMismatchError(SafeshiftError, RuntimeError):
    """``load_model(strict=True)``: the migrated checkpoint's tensors and the model's
    parameters and buffers differ (the message lists missing and unexpected keys)."""
