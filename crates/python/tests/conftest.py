"""Shared fixtures: the repository's Anemoi fixtures, the `safeshift` binary, and the files
`safeshift upgrade` writes from them (the reference every Python read is compared with)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

REPO = Path(os.environ.get("SAFESHIFT_REPO", Path(__file__).resolve().parents[3]))
ANEMOI = REPO / "tests" / "data" / "anemoi"
GRAPH = ANEMOI / "graph.safetensors"
AUX = {"graph": str(GRAPH)}
VERSIONS = sorted(
    (path.parent.name for path in ANEMOI.glob("*/state_dict.safetensors")),
    key=lambda version: tuple(int(part) for part in version.split(".")),
)


PICKLES = REPO / "tests" / "data" / "anemoi-checkpoints"
PICKLE_VERSIONS = sorted(
    (path.parent.name for path in PICKLES.glob("*/inference.ckpt")),
    key=lambda version: tuple(int(part) for part in version.split(".")),
)
KINDS = ("inference", "training")
MALICIOUS = REPO / "crates" / "torch" / "tests" / "data" / "malicious"


def checkpoint(version: str) -> Path:
    return ANEMOI / version / "state_dict.safetensors"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `safeshift` binary of this checkout (built with cargo if needed)."""
    built = subprocess.run(
        ["cargo", "build", "--quiet", "--locked", "--bin", "safeshift", "--message-format=json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    for line in built.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "safeshift":
            if message.get("executable"):
                return Path(message["executable"])
    raise RuntimeError("cargo built no `safeshift` executable")


@pytest.fixture(scope="session")
def upgraded(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Tuple[Optional[Path], str]]:
    """For every fixture version: the file `safeshift upgrade` writes (None when it refused
    it) and what it printed."""
    out_dir = tmp_path_factory.mktemp("upgraded")
    results: Dict[str, Tuple[Optional[Path], str]] = {}
    for version in VERSIONS:
        out = out_dir / f"{version}.safetensors"
        run = subprocess.run(
            [str(cli), "upgrade", str(checkpoint(version)), "--aux", f"graph={GRAPH}", "-o", str(out)],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            results[version] = (None, run.stderr + run.stdout)
        else:
            # Nothing written means nothing to do (already at the target): the file itself.
            results[version] = (out if out.exists() else checkpoint(version), run.stderr + run.stdout)
    return results


@pytest.fixture(scope="session")
def upgraded_pickles(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """`version/kind` -> the file `safeshift upgrade` writes from that `.ckpt`."""
    out_dir = tmp_path_factory.mktemp("upgraded-pickles")
    written = {}
    for version in PICKLE_VERSIONS:
        for kind in KINDS:
            out = out_dir / f"{version}-{kind}.safetensors"
            subprocess.run(
                [str(cli), "upgrade", str(PICKLES / version / f"{kind}.ckpt"), "-o", str(out)],
                check=True,
                capture_output=True,
            )
            written[f"{version}/{kind}"] = out
    return written


def read_metadata(path: Path) -> Dict[str, str]:
    """The `__metadata__` of a safetensors file, parsed here."""
    with open(path, "rb") as file:
        (header_len,) = struct.unpack("<Q", file.read(8))
        return json.loads(file.read(header_len)).get("__metadata__", {})


def read_safetensors(path: Path) -> Dict[str, Tuple[str, list, bytes]]:
    """`name -> (dtype, shape, bytes)` of a safetensors file, parsed here independently of
    both safeshift and the safetensors package."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    start = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors[name] = (entry["dtype"], entry["shape"], data[start + begin : start + end])
    return tensors


def raw_bytes(value) -> bytes:
    """The row-major bytes of a NumPy array or torch tensor (any dtype)."""
    if type(value).__module__.startswith("torch"):
        import torch

        flat = torch.empty(value.numel(), dtype=value.dtype)
        flat.copy_(value.detach().cpu().reshape(-1))
        return flat.view(torch.uint8).numpy().tobytes()
    import numpy

    return numpy.ascontiguousarray(value).tobytes()


def mapped_ranges(path: Path):
    """The address ranges where this process maps `path` (from /proc/self/maps)."""
    target = str(path.resolve())
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == target:
                low, high = (int(part, 16) for part in fields[0].split("-"))
                ranges.append((low, high))
    return ranges
