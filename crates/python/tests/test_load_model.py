"""load_model into torch modules shaped like the target layout (and unlike it)."""

from __future__ import annotations

import pytest
import torch

import safeshift
import safeshift.torch
from conftest import AUX, checkpoint, raw_bytes, read_safetensors


class Layout(torch.nn.Module):
    """A module whose state dict has exactly the given names and shapes (as buffers and
    parameters of nested submodules, as real models do)."""

    def __init__(self, shapes) -> None:
        super().__init__()
        for name, (dtype, shape) in shapes.items():
            *path, leaf = name.split(".")
            module: torch.nn.Module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            tensor = torch.zeros(shape, dtype=dtype)
            if tensor.is_floating_point():
                module.register_parameter(leaf, torch.nn.Parameter(tensor))
            else:
                module.register_buffer(leaf, tensor)


TORCH_TYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


@pytest.fixture(scope="module")
def target(upgraded):
    written, _ = upgraded["0.4.0"]
    return read_safetensors(written)


def _model(target, drop=(), add=()):
    shapes = {name: (TORCH_TYPES[dtype], shape) for name, (dtype, shape, _) in target.items() if name not in drop}
    shapes.update({name: (torch.float32, [2]) for name in add})
    return Layout(shapes)


def test_strict_load_into_the_target_layout(target) -> None:
    model = _model(target)
    report = safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    missing, unexpected = report
    assert missing == [] and unexpected == []
    state = model.state_dict()
    for name, (_, _, data) in target.items():
        assert raw_bytes(state[name]) == data, name
    assert report.source_version == "anemoi.encprocdec@0.4.0"
    assert report.steps and report.computed and len(report.borrowed) > 100
    text = str(report)
    assert "anemoi.encprocdec@0.4.0 loaded as" in text and "computed:" in text


def test_layout_differences_are_reported(target) -> None:
    dropped = sorted(target)[0]
    model = _model(target, drop=[dropped], add=["extra.weight"])
    with pytest.raises(safeshift.LayoutMismatchError) as raised:
        safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    assert f"missing: extra.weight" in str(raised.value) and f"unexpected: {dropped}" in str(raised.value)
    assert isinstance(raised.value, RuntimeError)
    missing, unexpected = safeshift.torch.load_model(model, checkpoint("0.4.0"), strict=False, aux=AUX)
    assert missing == ["extra.weight"] and unexpected == [dropped]


def test_a_shape_the_model_cannot_take_is_refused(target) -> None:
    name = "model.model.processor.proc.0.attention.lin_q.weight"
    shapes = {other: (TORCH_TYPES[dtype], shape) for other, (dtype, shape, _) in target.items()}
    shapes[name] = (torch.float32, [1, 1])
    model = Layout(shapes)
    with pytest.raises(safeshift.LayoutMismatchError, match="lin_q.weight"):
        safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
