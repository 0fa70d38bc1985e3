"""legacy_module.pt: torch.save(model, path, _use_new_zipfile_serialization=False), a whole
module in the legacy (pre-1.6) format. Besides the storages, this format names each module
class by a persistent id ('module', <class>, <source file>, <source text>), which
torch.load's persistent_load turns back into the class (comparing the source with the
class's current one, to warn). A converter must take those ids as data: the class is an
opaque global, the source is text never compiled.

The ground truth is the state dict of what torch.load(weights_only=False) returns.

Run: python make_legacy_module.py
"""

import os
import warnings

import torch
import torch.nn as nn

from fixture_util import HERE, write_expected

torch.manual_seed(19)


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("steps", torch.tensor(7, dtype=torch.int64))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.blocks = nn.ModuleList([Block(4), Block(4)])
        self.head = nn.Linear(4, 2, bias=False)
        self.head_half = nn.Linear(4, 3).to(torch.float16)


def main():
    model = Net()
    path = os.path.join(HERE, "legacy_module.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model, path, _use_new_zipfile_serialization=False)
        back = torch.load(path, weights_only=False)  # works only because Net exists here
    with open(path, "rb") as f:
        assert b"module" in f.read(), "the legacy format names module classes by persistent ids"
    sd = back.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(sd[name], tensor), name
    write_expected("legacy_module", sd, write_safetensors=False, extra={
        "source": "legacy_module.pt",
        "generator": "make_legacy_module.py",
        "top_level": "__main__.Net instance in the legacy format; classes as ('module', cls, file, source) persistent ids",
    })
    print("wrote", path)


if __name__ == "__main__":
    main()
