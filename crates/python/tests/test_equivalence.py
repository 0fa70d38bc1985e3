"""safe_open on every shipped Anemoi version gives the tensors `safeshift upgrade` writes."""

from __future__ import annotations

import pytest

import safeshift
from conftest import AUX, VERSIONS, checkpoint, raw_bytes, read_safetensors


@pytest.mark.parametrize("framework", ["np", "pt"])
@pytest.mark.parametrize("version", VERSIONS)
def test_get_tensor_equals_the_upgraded_file(upgraded, version: str, framework: str) -> None:
    written, cli_output = upgraded[version]
    if written is None:
        # The CLI refused this file: the package refuses it too, with the same message.
        with pytest.raises(safeshift.SafeshiftError) as refused:
            safeshift.safe_open(checkpoint(version), framework, aux=AUX)
        first_line = str(refused.value).splitlines()[0]
        assert _words(first_line) in _words(cli_output), (first_line, cli_output)
        return
    expected = read_safetensors(written)
    with safeshift.safe_open(checkpoint(version), framework, aux=AUX) as opened:
        assert sorted(opened.keys()) == sorted(expected)
        for name in opened.keys():
            dtype, shape, data = expected[name]
            tensor = opened.get_tensor(name)
            assert list(tensor.shape) == shape, name
            assert raw_bytes(tensor) == data, name
            assert opened.get_slice(name).get_dtype() == dtype, name


def test_every_shipped_version_is_compared(upgraded) -> None:
    """The comparison above is not vacuous: `upgrade` writes a file for every fixture
    version (none is refused), from the oldest to the newest."""
    assert len(VERSIONS) >= 10 and VERSIONS[0] == "0.4.0" and VERSIONS[-1] == "0.19.0"
    refused = {version: output for version, (written, output) in upgraded.items() if written is None}
    assert not refused, refused


def test_versions_and_plan_are_reported() -> None:
    with safeshift.safe_open(checkpoint("0.4.0"), "np", aux=AUX) as opened:
        assert opened.source_version == "anemoi.encprocdec@0.4.0"
        assert opened.plan[0] == "anemoi.encprocdec@0.4.0 -> anemoi.encprocdec@0.4.2"
        assert opened.plan[-1].endswith(opened.target_version)
    with safeshift.safe_open(checkpoint("0.4.0"), "np", target="0.4.2") as opened:
        assert opened.target_version == "anemoi.encprocdec@0.4.2"
        assert opened.plan == ["anemoi.encprocdec@0.4.0 -> anemoi.encprocdec@0.4.2"]


def test_loaders_give_every_tensor(upgraded) -> None:
    import safeshift.numpy
    import safeshift.torch

    written, _ = upgraded["0.4.0"]
    expected = read_safetensors(written)
    for loaded in (safeshift.numpy.load_file(checkpoint("0.4.0"), aux=AUX), safeshift.torch.load_file(checkpoint("0.4.0"), aux=AUX)):
        assert sorted(loaded) == sorted(expected)
        assert all(raw_bytes(loaded[name]) == expected[name][2] for name in expected)


def _words(text: str) -> str:
    return " ".join(text.replace("│", " ").split())
