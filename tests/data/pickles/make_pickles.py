"""Writes the PyTorch fixtures of tests/pickles.rs with torch itself (run with any torch >= 2.0;
these were written by torch 2.15). Tests read the committed files and never need torch.

* `anemoi-0.4.0.ckpt`: a Lightning-style checkpoint (`state_dict`, `epoch`, `global_step`) whose
  state dict is `../anemoi/0.4.0/state_dict.safetensors` (its tensors, byte for byte, under the
  same names), as `torch.save` writes it (zip format, storages stored uncompressed).
* `sharded-bin/`: a sharded Hugging Face pickle checkpoint as transformers' `save_pretrained`
  writes it (`pytorch_model-0000N-of-00002.bin` files of plain state dicts, and
  `pytorch_model.bin.index.json` with `metadata.total_size` and `weight_map`), with a
  transposed (non-contiguous) view, bf16, int64 and a 0-d tensor; `expected.json` records what
  `torch.load` gives for every tensor: dtype, shape and the SHA-256 of its C-order bytes.

Usage: python make_pickles.py  (from this folder)
"""

import hashlib
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SAFETENSORS_DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.copy()).reshape(entry["shape"])
    return tensors


def c_order_bytes(tensor):
    tensor = tensor.contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def anemoi_ckpt():
    state_dict = read_safetensors(os.path.join(HERE, "../anemoi/0.4.0/state_dict.safetensors"))
    torch.save({"state_dict": state_dict, "epoch": 3, "global_step": 120}, os.path.join(HERE, "anemoi-0.4.0.ckpt"))


def sharded_bin():
    out = os.path.join(HERE, "sharded-bin")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shards = [
        {
            "embed.weight": torch.randn(8, 4),
            "layers.0.weight": base.t(),  # a transposed view: not contiguous in its storage
            "layers.0.bias": torch.randn(6).to(torch.bfloat16),
        },
        {
            "layers.1.weight": torch.randn(3, 5),
            "position_ids": torch.arange(7, dtype=torch.int64).unsqueeze(0),
            "scale": torch.tensor(0.5),
        },
    ]
    weight_map = {}
    total = 0
    for index, shard in enumerate(shards):
        name = f"pytorch_model-{index + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, os.path.join(out, name))
        for key, tensor in shard.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    expected = {}
    for name in sorted(set(weight_map.values())):
        loaded = torch.load(os.path.join(out, name), weights_only=True)
        for key, tensor in loaded.items():
            expected[key] = {
                "dtype": str(tensor.dtype).removeprefix("torch."),
                "shape": list(tensor.shape),
                "contiguous": tensor.is_contiguous(),
                "sha256": hashlib.sha256(c_order_bytes(tensor)).hexdigest(),
            }
    with open(os.path.join(out, "expected.json"), "w") as f:
        f.write(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    anemoi_ckpt()
    sharded_bin()
