"""PyTorch pickles (Anemoi's real `.ckpt` files) through `safe_open` and the loaders, compared
with what `safeshift upgrade` writes from the same file; hostile pickles refused."""

from __future__ import annotations

import json

import pytest

import safeshift
import safeshift.numpy
import safeshift.torch
from conftest import KINDS, MALICIOUS, PICKLE_VERSIONS, PICKLES, raw_bytes, read_metadata, read_safetensors


def test_every_version_has_pickles() -> None:
    assert len(PICKLE_VERSIONS) >= 10 and "0.4.0" in PICKLE_VERSIONS and "0.19.0" in PICKLE_VERSIONS


@pytest.mark.parametrize("framework", ["np", "pt"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", PICKLE_VERSIONS)
def test_pickles_read_like_the_upgraded_file(upgraded_pickles, version: str, kind: str, framework: str) -> None:
    written_path = upgraded_pickles[f"{version}/{kind}"]
    written = read_safetensors(written_path)
    extras = json.loads(read_metadata(written_path).get("safeshift.extras", "[]"))
    with safeshift.safe_open(PICKLES / version / f"{kind}.ckpt", framework) as opened:
        assert opened.source_version == f"anemoi.encprocdec@{version}"
        assert sorted(opened.keys()) == sorted(written)
        arrays = [name for name in written if name.startswith("anemoi.supporting_arrays.")]
        assert arrays and sorted(opened.extras()) == sorted(set(extras) | set(arrays))
        for name, (_, shape, data) in written.items():
            tensor = opened.get_tensor(name)
            assert list(tensor.shape) == shape, name
            assert raw_bytes(tensor) == data, name
    # The upgraded file has the extras (graph, supporting arrays) the pickle held.
    assert any(name.startswith("graph.") for name in extras)


def test_loaders_read_pickles(upgraded_pickles) -> None:
    path = PICKLES / "0.11.2" / "training.ckpt"
    written = read_safetensors(upgraded_pickles["0.11.2/training"])
    tensors = safeshift.torch.load_file(path)
    arrays = safeshift.numpy.load_file(path)
    assert sorted(tensors) == sorted(arrays) == sorted(written)
    for name, tensor in tensors.items():
        assert raw_bytes(tensor) == written[name][2] == raw_bytes(arrays[name]), name


def test_key_names_the_state_dict_entry() -> None:
    path = PICKLES / "0.4.0" / "training.ckpt"
    with safeshift.safe_open(path, "np") as default, safeshift.safe_open(path, "np", key="state_dict") as chosen:
        assert default.keys() == chosen.keys()
    with pytest.raises(safeshift.ReadError, match="no entry `nope`.*`state_dict`"):
        safeshift.safe_open(path, key="nope")


def test_gadget_pickles_are_refused_naming_the_gadget() -> None:
    hostile = MALICIOUS / "mal_a_os_system.pt"
    with pytest.raises(safeshift.GadgetError) as raised:
        safeshift.safe_open(hostile)
    message = str(raised.value)
    assert isinstance(raised.value, safeshift.ReadError) and isinstance(raised.value, OSError)
    assert str(hostile) in message and "`os.system`" in message and "byte 299" in message
    assert "nothing was run" in message and "allow_gadgets=True" in message
    # Allowed, the pickle is read (still not run): it holds no checkpoint of any schema.
    with pytest.raises(safeshift.DetectError, match="fits no schema"):
        safeshift.safe_open(hostile, allow_gadgets=True)
    for name in ("mal_b_builtins_eval.pt", "mal_c_subprocess_popen.pt"):
        with pytest.raises(safeshift.GadgetError):
            safeshift.safe_open(MALICIOUS / name)
    with pytest.raises(safeshift.GadgetError):
        safeshift.torch.load_file(hostile)


def test_load_model_from_a_pickle_leaves_out_the_graph_and_supporting_arrays(upgraded_pickles) -> None:
    from test_load_model import TORCH_TYPES, Layout

    written = read_safetensors(upgraded_pickles["0.6.0/inference"])
    with safeshift.safe_open(PICKLES / "0.6.0" / "inference.ckpt", "np") as opened:
        extras = set(opened.extras())
    state = {name: value for name, value in written.items() if name not in extras}
    model = Layout({name: (TORCH_TYPES[dtype], shape) for name, (dtype, shape, _) in state.items()})
    report = safeshift.torch.load_model(model, PICKLES / "0.6.0" / "inference.ckpt")
    assert report.missing == [] and report.unexpected == []
    loaded = model.state_dict()
    for name, (_, _, data) in state.items():
        assert raw_bytes(loaded[name]) == data, name
    assert any(name.startswith("graph.") for name in extras) and not any(name.startswith("graph.") for name in loaded)
