"""The command line's options as keyword arguments: params=, allow_lossy=."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy
import pytest

import safeshift
from conftest import PICKLES, raw_bytes, read_safetensors


def test_params_name_encoders_as_the_cli_does(cli, tmp_path) -> None:
    path = PICKLES / "0.11.2" / "training.ckpt"
    out = tmp_path / "named.safetensors"
    subprocess.run(
        [str(cli), "upgrade", str(path), "--param", "encoder_names=global", "-o", str(out)], check=True, capture_output=True
    )
    written = read_safetensors(out)
    assert any(".encoder.global." in name for name in written)
    for params in ({"encoder_names": "global"}, {"encoder_names": {"data": "global"}}):
        with safeshift.safe_open(path, "np", params=params) as opened:
            names = set(opened.keys())
            assert names <= set(written) and any(".encoder.global." in name for name in names)
            for name in names:
                assert raw_bytes(opened.get_tensor(name)) == written[name][2], name
    with safeshift.safe_open(path, "np") as default:
        assert not any(".encoder.global." in name for name in default.keys())


def test_bad_params_are_param_errors() -> None:
    path = PICKLES / "0.11.2" / "training.ckpt"
    with pytest.raises(safeshift.ParamError, match="no migration takes a parameter `encoder_name`.*`encoder_names`"):
        safeshift.safe_open(path, params={"encoder_name": "global"})
    with pytest.raises(safeshift.ParamError, match="encoder_names"):
        safeshift.safe_open(path, params={"encoder_names": 3})
    with pytest.raises(safeshift.ParamError, match="`era5` is not `KEY:VALUE`"):
        safeshift.safe_open(path, params={"encoder_names": "cerra:regional,era5"})
    with pytest.raises(safeshift.ParamError, match="empty key or value"):
        safeshift.safe_open(path, params={"encoder_names": {"data": ""}})
    assert issubclass(safeshift.ParamError, safeshift.CompileError) and issubclass(safeshift.ParamError, ValueError)


def _lossy_registry(tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    (registry / "schemas").mkdir(parents=True)
    (registry / "migrations").mkdir()
    (registry / "schemas" / "t.ss").write_text('schema t @ 1.0.0 {\n    dim n\n    tensor "a" : f32[n]\n}\n')
    (registry / "migrations" / "t.ss").write_text('migration t 1.0.0 -> 2.0.0 {\n    cast "a" to bf16 lossy\n}\n')
    return registry


def test_lossy_paths_are_refused_unless_allowed(tmp_path, cli) -> None:
    from safetensors.numpy import save_file

    registry = _lossy_registry(tmp_path)
    path = tmp_path / "a.safetensors"
    save_file({"a": numpy.array([1.0, 1.00390625, -2.5], dtype=numpy.float32)}, str(path))
    with pytest.raises(safeshift.LossyError) as raised:
        safeshift.safe_open(path, registry=registry)
    message = str(raised.value)
    assert str(path) in message and "t@1.0.0 -> t@2.0.0" in message and "discards information" in message
    refused = subprocess.run(
        [str(cli), "upgrade", str(path), "--registry", str(registry), "-o", str(tmp_path / "out.safetensors")],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "discards information" in refused.stderr
    with safeshift.safe_open(path, "pt", registry=registry, allow_lossy=True) as opened:
        import torch

        assert opened.target_version == "t@2.0.0"
        values = opened.get_tensor("a")
        assert values.dtype == torch.bfloat16
        assert values.float().tolist() == [1.0, 1.0, -2.5]
