"""unconvertible/*.pt: tensor-like values safetensors cannot hold, beside dense tensors.

torch.load reads every one of these files (`weights_only=True` all but the nested tensor,
which it needs `weights_only=False` for: expected.json says which); a converter that collects
only dense tensors must refuse them, naming the entry, instead of leaving it out. Each file
is a dict `{"dense": <a dense tensor>, <entry>: <the value>}`; `expected.json` maps the file
to the entry's name and to what torch says it is (layout, quantized, nested, meta, numpy).

Also `exported.pt2`, a `torch.export.save` program (to be refused as one), and
`dict_with_scalars.pt`: a state dict saved with non-tensor entries beside it
(`{"weight": tensor, "epoch": 3, "config": {...}}`); expected.json records those entries, as
`json.dumps` gives them, under `rest`.

Run: python make_unconvertible.py   (torch and numpy)
"""

import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "unconvertible")


def kind(value):
    if isinstance(value, np.ndarray):
        return "numpy"
    if value.is_quantized:
        return "quantized"
    if value.is_nested:
        return "nested"
    if value.is_meta:
        return "meta"
    if value.layout != torch.strided:
        return "sparse"
    raise AssertionError("dense")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(5)
    values = {
        "sparse_coo.pt": torch.randn(3, 3).relu().to_sparse(),
        "sparse_csr.pt": torch.randn(3, 3).relu().to_sparse_csr(),
        "meta.pt": torch.empty(2, 3, device="meta"),
        "nested.pt": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        "quantized.pt": torch.quantize_per_tensor(torch.randn(3, 3), 0.1, 0, torch.quint8),
        "numpy_array.pt": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    expected = {}
    for name, value in values.items():
        entry = "odd"
        path = os.path.join(OUT, name)
        torch.save({"dense": torch.ones(2), entry: value}, path)
        try:
            back, weights_only = torch.load(path, weights_only=True), True
        except Exception:
            back, weights_only = torch.load(path, weights_only=False), False
        assert kind(back[entry]) == kind(value)
        expected[name] = {"entry": entry, "kind": kind(value), "weights_only": weights_only}
    rest = {"epoch": 3, "config": {"lr": 0.5, "layers": [1, 2], "name": "x"}}
    path = os.path.join(OUT, "dict_with_scalars.pt")
    torch.save({"weight": torch.ones(2, 2), **rest}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3
    expected["dict_with_scalars.pt"] = {"tensors": ["weight"], "rest": rest}
    # A torch.export program: a zip, but no pickled object (weights in files + JSON).
    model = torch.nn.Linear(3, 2)
    torch.export.save(torch.export.export(model, (torch.randn(1, 3),)), os.path.join(OUT, "exported.pt2"))
    expected["exported.pt2"] = {"format": "pt2"}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT, torch.__version__)


if __name__ == "__main__":
    main()
