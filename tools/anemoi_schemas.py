#!/usr/bin/env python3
"""Generate the anemoi.encprocdec schemas from the fixtures' key lists, and check them.

Each `tests/data/anemoi/<version>/keys.json` (name -> dtype, shape) was written by running
that anemoi-models release (see tests/data/anemoi/README.md). This script turns the concrete
names into patterns (processor indices become counted captures), the concrete shapes into
dims (by a rule per tensor role, never by the number itself), writes
`schemas/anemoi/encprocdec-<version>.ss`, and then checks every schema against its fixture:
expanding the patterns with the fixture's dim values must give exactly the fixture's names,
shapes and dtype classes, so a wrong rule cannot slip through.

    python3 tools/anemoi_schemas.py          # regenerate and check
    python3 tools/anemoi_schemas.py --check  # only check that the files are up to date

Why this script is kept although `safeshift schema infer` writes a schema from a fixture: the
inferred schema of every fixture fits exactly the fixtures this script's schema fits, but it is
narrower for all ten versions (crates/evolve/src/shipped.rs pins both facts): no optional
tensors, sizes the tiny fixture shares tied into one dim, the dataset spelled `data` instead of
a `{dataset}` capture, exact dtypes instead of `float`, no metadata dims. Those are the rules per
tensor role below; inference cannot know them from one checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS = ["0.4.0", "0.4.2", "0.6.0", "0.10.0", "0.11.2", "0.11.3", "0.12.1", "0.15.1", "0.17.0", "0.18.0", "0.19.0"]

# A release whose state dict was built and found identical to another's has no folder of
# its own (see the README): its keys are those of the release named here.
KEYS_FROM = {"0.18.0": "0.17.0"}

# Versions whose schema the registry derives from their migration (0.17.0 -> 0.18.0 changes
# nothing): checked here like the others, but not written.
DERIVED = {"0.18.0"}

# Which schemas each fixture fits, when not only its own. 0.17 and 0.18 have one layout,
# and a 0.18 layout is also a 0.19 one whose encoder and decoder are named like the dataset
# (a name 0.19 allows): detection settles these from provenance, else takes the oldest.
EXPECTED_FITS = {"0.17.0": ["0.17.0", "0.18.0", "0.19.0"], "0.18.0": ["0.17.0", "0.18.0", "0.19.0"]}

# The value each capture takes in the fixtures (one dataset, `data`; 0.19's encoder and
# decoder named `0`), used only by the check below.
FIXTURE_CAPTURES = {"dataset": "data", "encoder": "0", "decoder": "0"}

DOCS = {
    "0.4.0": "anemoi-models 0.4.0 (2024-11): layer_norm1/2, fused lin_qkv, chunked processor, mapper edge_inc",
    "0.4.2": "anemoi-models 0.4.2 (2025-02, PR #47): named layer norms; mapper aliases layer_norm_attention = _src, node_dst_mlp.0 = layer_norm_mlp",
    "0.6.0": "anemoi-models 0.5.0-0.6.x (PR #182): mapper layer_norm_attention = _dest, layer_norm_mlp_dst, node_dst_mlp without its layer norm",
    "0.10.0": "anemoi-models 0.7.0-0.10.x (PR #179): lin_q, lin_k, lin_v instead of lin_qkv; still a chunked processor",
    "0.11.2": "anemoi-models 0.11.0-0.11.2 (PR #629): flat processor proc.<layer>",
    "0.11.3": "anemoi-models 0.11.3 (PR #574): trainable edges in <mapper>_graph_provider, edge_inc no longer stored",
    "0.12.1": "anemoi-models 0.12.x (PR #594): one ModuleDict level per dataset (`data`)",
    "0.15.1": "anemoi-models 0.13.0-0.15.x (PR #895): fused node attributes, normaliser _model_output_idx",
    "0.17.0": "anemoi-models 0.16.0-0.17.x (PR #943): MLP class (.mlp.mlp.N), trainable_layout_version, dst-sorted trainable edges",
    "0.18.0": "anemoi-models 0.18.x: the state dict of 0.17 (torch >= 2.7, custom ops); a version of its own so provenance can name it",
    "0.19.0": "anemoi-models 0.19.x (PR #1229): encoders and decoders keyed by a user-chosen name, graph providers still by dataset",
}

# The fixture's value of every dim, used only by the check below.
FIXTURE_DIMS = {
    "hidden": 24, "mlp_hidden": 96, "enc_mlp_hidden": 96, "dec_mlp_hidden": 96,
    "variables": 6, "model_inputs": 5, "norm_outputs": 5, "model_outputs": 5,
    "data_nodes": 40, "hidden_nodes": 12, "coord_features": 4,
    "data_trainable": 2, "hidden_trainable": 2,
    "enc_edges": 48, "enc_edge_trainable": 2, "enc_edge_in": 5,
    "dec_edges": 120, "dec_edge_trainable": 2, "dec_edge_in": 5,
    "data_in": 16, "hidden_in": 6,
    "chunks": 2, "blocks_per_chunk": 2, "layers": 4,
}

# Free dims, in the order a schema declares them, with the reason a reader needs.
DIM_DOCS = {
    "hidden": "num_channels",
    "mlp_hidden": "processor MLP width (num_channels * mlp_hidden_ratio)",
    "enc_mlp_hidden": "encoder node MLP width",
    "dec_mlp_hidden": "decoder node MLP width",
    "variables": "all dataset variables the normaliser knows",
    "model_inputs": "variables fed to the model",
    "norm_outputs": "variables the normaliser maps back",
    "model_outputs": "output channels of the decoder",
    "data_nodes": "grid points",
    "hidden_nodes": "latent mesh nodes",
    "coord_features": "sin/cos of lat/lon per node",
    "data_trainable": "trainable features per grid point",
    "hidden_trainable": "trainable features per mesh node",
    "enc_edges": "data->hidden edges",
    "enc_edge_trainable": "trainable features per encoder edge",
    "enc_edge_in": "encoder edge attributes + trainable edge features",
    "dec_edges": "hidden->data edges",
    "dec_edge_trainable": "trainable features per decoder edge",
    "dec_edge_in": "decoder edge attributes + trainable edge features",
    "data_in": "per grid point input: multistep * inputs + coordinates + trainable",
    "hidden_in": "per mesh node input: coordinates + trainable",
    "qk_head_dim": "width of the optional query/key norms (head_dim)",
}

ALLOWS = [
    # anemoi-training's Lightning module keeps more than the model in its state dict.
    "loss.{rest..}",
    "metrics.{rest..}",
    "val_metrics.{rest..}",
]


def vkey(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def generalise(name: str, version: str) -> str:
    name = re.sub(r"^model\.model\.processor\.proc\.\d+\.blocks\.\d+\.",
                  "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.", name)
    name = re.sub(r"^model\.model\.processor\.proc\.\d+\.", "model.model.processor.proc.{i < layers}.", name)
    if vkey(version) < (0, 12, 0):
        return name
    # From 0.12 a checkpoint holds any number of datasets, with names its user chose: the
    # fixture's single dataset `data` is a capture wherever it is a dataset's name.
    name = re.sub(r"^model\.(pre|post)_processors\.data\.", r"model.\1_processors.{dataset}.", name)
    name = re.sub(r"^model\.model\.(encoder|decoder)_graph_provider\.data\.", r"model.model.\1_graph_provider.{dataset}.", name)
    if vkey(version) >= (0, 19, 0):
        # 0.19 keys encoders and decoders by their own (user-chosen) names.
        name = re.sub(r"^model\.model\.encoder\.0\.", "model.model.encoder.{encoder}.", name)
        name = re.sub(r"^model\.model\.decoder\.0\.", "model.model.decoder.{decoder}.", name)
    else:
        name = re.sub(r"^model\.model\.(encoder|decoder)\.data\.", r"model.model.\1.{dataset}.", name)
    if vkey(version) < (0, 13, 0):
        # One graph per dataset, whose data nodes are called `data`.
        name = re.sub(r"^model\.model\.node_attributes\.data\.", "model.model.node_attributes.{dataset}.", name)
    else:
        # One fused graph: each dataset's nodes are named after it; `hidden` stays.
        name = re.sub(r"^model\.model\.node_attributes\.latlons_data$", "model.model.node_attributes.latlons_{dataset}", name)
        name = re.sub(r"^model\.model\.node_attributes\.trainable_tensors\.data\.",
                      "model.model.node_attributes.trainable_tensors.{dataset}.", name)
    return name


def mapper_of(name: str) -> str | None:
    match = re.match(r"model\.model\.(encoder|decoder)[._]", name)
    return match.group(1) if match else None


def rule(name: str, version: str) -> tuple[str, list[str], bool]:
    """(dtype class, shape, optional) of one generalised tensor name."""
    old_mapper_mlp = vkey(version) < (0, 5, 0)
    mapper = mapper_of(name)
    prefix = {"encoder": "enc", "decoder": "dec"}.get(mapper or "", "")
    last = name.rsplit(".", 1)[-1]
    table = [
        (r"normalizer\._norm_(mul|add)$", "float", ["variables"], False),
        (r"normalizer\._input_idx$", "int", ["model_inputs"], False),
        (r"normalizer\._(model_)?output_idx$", "int", ["norm_outputs"], False),
        (r"\.latlons_(data|\{dataset\})$", "float", ["data_nodes", "coord_features"], False),
        (r"\.latlons_hidden$", "float", ["hidden_nodes", "coord_features"], False),
        (r"trainable_tensors\.(data|\{dataset\})\.trainable$", "float", ["data_nodes", "data_trainable"], True),
        (r"trainable_tensors\.hidden\.trainable$", "float", ["hidden_nodes", "hidden_trainable"], True),
        (r"\.trainable\.trainable$", "float", [f"{prefix}_edges", f"{prefix}_edge_trainable"], True),
        (r"\.edge_inc$", "int", ["2", "1"], False),
        (r"\.trainable_layout_version$", "i64", [], False),
        # Mapper (GraphTransformerMapperBlock).
        (r"\.proc\.lin_edge\.weight$", "float", ["hidden", f"{prefix}_edge_in"], False),
        (r"\.proc\.(lin_\w+|projection)\.weight$", "float", ["hidden", "hidden"], False),
        (r"\.proc\.(lin_\w+|projection)\.bias$", "float", ["hidden"], False),
        (r"\.proc\.layer_norm\w*\.(weight|bias)$", "float", ["hidden"], False),
        (r"encoder(\.[^.]+)?\.emb_nodes_src\.weight$", "float", ["hidden", "data_in"], False),
        (r"encoder(\.[^.]+)?\.emb_nodes_dst\.weight$", "float", ["hidden", "hidden_in"], False),
        (r"decoder(\.[^.]+)?\.emb_nodes_dst\.weight$", "float", ["hidden", "data_in"], False),
        (r"\.emb_nodes_\w+\.bias$", "float", ["hidden"], False),
        (r"node_data_extractor\.0\.(weight|bias)$", "float", ["hidden"], False),
        (r"node_data_extractor\.1\.weight$", "float", ["model_outputs", "hidden"], False),
        (r"node_data_extractor\.1\.bias$", "float", ["model_outputs"], False),
        # Processor (TransformerProcessorBlock).
        (r"attention\.lin_qkv\.weight$", "float", ["3 * hidden", "hidden"], False),
        (r"attention\.lin_[qkv]\.weight$", "float", ["hidden", "hidden"], False),
        (r"attention\.projection\.weight$", "float", ["hidden", "hidden"], False),
        (r"attention\.projection\.bias$", "float", ["hidden"], False),
        (r"processor\.proc\..*\.mlp\.(mlp\.)?0\.weight$", "float", ["mlp_hidden", "hidden"], False),
        (r"processor\.proc\..*\.mlp\.(mlp\.)?0\.bias$", "float", ["mlp_hidden"], False),
        (r"processor\.proc\..*\.mlp\.(mlp\.)?2\.weight$", "float", ["hidden", "mlp_hidden"], False),
        (r"processor\.proc\..*\.mlp\.(mlp\.)?2\.bias$", "float", ["hidden"], False),
        (r"processor\.proc\..*\.layer_norm\w*\.(weight|bias)$", "float", ["hidden"], False),
    ]
    match = re.search(r"\.node_dst_mlp\.(mlp\.)?(\d+)\.(weight|bias)$", name)
    if match:
        index, kind = int(match.group(2)), match.group(3)
        width = f"{prefix}_mlp_hidden"
        if old_mapper_mlp:
            # Sequential(LayerNorm, Linear, act, Linear)
            shapes = {0: (["hidden"], ["hidden"]), 1: ([width, "hidden"], [width]), 3: (["hidden", width], ["hidden"])}
        else:
            # Sequential(Linear, act, Linear)
            shapes = {0: ([width, "hidden"], [width]), 2: (["hidden", width], ["hidden"])}
        weight, bias = shapes[index]
        return "float", weight if kind == "weight" else bias, False
    for pattern, dtype, shape, optional in table:
        if re.search(pattern, name):
            return dtype, shape, optional
    raise SystemExit(f"no shape rule for `{name}` ({version}, last segment {last})")


def extra_optional(name: str, version: str) -> list[tuple[str, str, list[str]]]:
    """Optional tensors a real checkpoint of this version may carry that the fixture lacks."""
    extras = []
    if name.endswith("attention.lin_qkv.weight"):
        extras.append((name[: -len("weight")] + "bias", "float", ["3 * hidden"]))  # qkv_bias=True
    if re.search(r"attention\.lin_[qkv]\.weight$", name):
        extras.append((name[: -len("weight")] + "bias", "float", ["hidden"]))  # qkv_bias=True
    if name.endswith("attention.projection.bias") and vkey(version) >= (0, 6, 0):
        base = name[: -len("projection.bias")]
        extras.append((base + "q_norm.weight", "float", ["qk_head_dim"]))  # qk_norm=True
        extras.append((base + "k_norm.weight", "float", ["qk_head_dim"]))
    return extras


def load_keys(version: str) -> dict:
    folder = KEYS_FROM.get(version, version)
    return json.load(open(os.path.join(ROOT, "tests/data/anemoi", folder, "keys.json")))


def build(version: str) -> tuple[list[tuple[str, str, list[str], bool]], list[str]]:
    keys = load_keys(version)
    tensors: list[tuple[str, str, list[str], bool]] = []
    seen = set()
    for name in keys:
        pattern = generalise(name, version)
        if pattern in seen:
            continue
        seen.add(pattern)
        dtype, shape, optional = rule(pattern, version)
        tensors.append((pattern, dtype, shape, optional))
        for extra, extra_dtype, extra_shape in extra_optional(pattern, version):
            if extra not in seen and generalise(extra, version) not in {generalise(k, version) for k in keys}:
                seen.add(extra)
                tensors.append((extra, extra_dtype, extra_shape, True))
    # A fixed name that a family of the same schema also matches (`latlons_hidden`, and
    # `latlons_{dataset}`) goes first: matching tries patterns in order, and the language
    # lets a literal name declared first take precedence.
    for literal in [t for t in tensors if "{" not in t[0]]:
        families = [t for t in tensors if "{" in t[0] and to_regex(t[0]).match(literal[0])]
        if families:
            tensors.remove(literal)
            tensors.insert(min(tensors.index(f) for f in families), literal)
    used = []
    for _, _, shape, _ in tensors:
        for expr in shape:
            for word in re.findall(r"[a-z_]+", expr):
                if word not in used:
                    used.append(word)
    if any("{c < chunks}" in t[0] for t in tensors):
        used += ["chunks", "blocks_per_chunk"]
    if any("{i < layers}" in t[0] for t in tensors):
        used += ["layers"]
    return tensors, used


def render(version: str) -> str:
    tensors, used = build(version)
    chunked = "chunks" in used
    out = [
        "// Generated by tools/anemoi_schemas.py from tests/data/anemoi/%s/keys.json; edit the script, not this file."
        % KEYS_FROM.get(version, version),
        "// Shapes are symbolic: the fixture's sizes (24 channels, 40 grid points, ...) appear nowhere.",
        "// The number of attention heads does not show in any shape; it is not needed by any migration.",
        f'schema anemoi.encprocdec @ {version} "{DOCS[version]}" {{',
    ]
    lines = [(f"dim {d}", DIM_DOCS[d]) for d in DIM_DOCS if d in used]
    # Anemoi records the processor's shape in the checkpoint's config (the `anemoi`
    # metadata, anemoi.json): when present it must agree with the counted blocks.
    config = 'meta("anemoi.config.model.processor.%s")'
    if chunked:
        lines.append(("dim chunks = " + config % "num_chunks", "processor num_chunks"))
        lines.append(("dim blocks_per_chunk", "processor blocks per chunk: num_layers / num_chunks"))
        lines.append(("dim layers = chunks * blocks_per_chunk", "processor num_layers"))
    elif "layers" in used:
        lines.append(("dim layers = " + config % "num_layers", "processor num_layers"))
    # Trailing comments of consecutive lines are aligned, as `safeshift fmt` does.
    width = max(len(decl) for decl, _ in lines)
    for decl, comment in lines:
        out.append(f"    {decl.ljust(width)} // {comment}")
    out.append("")
    for pattern, dtype, shape, optional in tensors:
        line = f'    tensor "{pattern}" : {dtype}[{", ".join(shape)}]'
        if optional:
            line += " optional"
        out.append(line)
    out.append("")
    out.append("    // Training extras of an anemoi-training (Lightning) checkpoint.")
    for allow in ALLOWS:
        out.append(f'    allow "{allow}"')
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ check


def expand(pattern: str, dims: dict[str, int]) -> list[str]:
    for capture, value in FIXTURE_CAPTURES.items():
        pattern = pattern.replace("{%s}" % capture, value)
    names = [pattern]
    for capture, bound in [("{c < chunks}", "chunks"), ("{j < blocks_per_chunk}", "blocks_per_chunk"),
                           ("{i < layers}", "layers")]:
        names = [n.replace(capture, str(k), 1) if capture in n else n for n in names
                 for k in (range(dims[bound]) if capture in n else [0])]
        names = list(dict.fromkeys(names))
    return names


def evaluate(expr: str, dims: dict[str, int]) -> int:
    return int(eval(expr, {}, dims))  # noqa: S307 - our own rule table


def check(version: str) -> None:
    keys = load_keys(version)
    tensors, _ = build(version)
    dims = dict(FIXTURE_DIMS)
    expected = {}
    for pattern, dtype, shape, optional in tensors:
        for name in expand(pattern, dims):
            if optional and name not in keys:
                continue
            expected[name] = (dtype, [evaluate(e, dims) for e in shape])
    actual = {}
    for name, info in keys.items():
        dtype = info["dtype"]
        cls = "float" if dtype.startswith("float") else ("i64" if dtype == "int64" else "int")
        actual[name] = (cls, info["shape"])
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        if want is None or got is None:
            raise SystemExit(f"{version}: `{name}` schema {want} fixture {got}")
        want_cls, want_shape = want
        got_cls, got_shape = got
        cls_ok = want_cls == got_cls or (want_cls == "int" and got_cls in ("int", "i64"))
        if not cls_ok or want_shape != got_shape:
            raise SystemExit(f"{version}: `{name}` schema {want} fixture {got}")


def to_regex(pattern: str) -> re.Pattern[str]:
    out, pos = "", 0
    for match in re.finditer(r"\{([a-z_]+)(?: < ([a-z_]+))?(\.\.)?\}", pattern):
        out += re.escape(pattern[pos:match.start()])
        name, bound, multi = match.groups()
        out += f"(?P<{name}>0|[1-9][0-9]*)" if bound else ("(?:[^.]+(?:\\.[^.]+)*)" if multi else f"(?P<{name}>[^.]+)")
        pos = match.end()
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def matches(version: str, fixture: str) -> bool:
    """Whether the fixture of `fixture` fits the schema of `version`, as detection would decide:
    each name belongs to the first pattern it matches, and a capture shared by several
    patterns must take the same values in each required one."""
    keys = load_keys(fixture)
    tensors, _ = build(version)
    dims: dict[str, int] = {}
    counted: dict[str, set[int]] = {}
    claimed = set()
    owner = {}
    for name in keys:
        for index, (pattern, _, _, _) in enumerate(tensors):
            if to_regex(pattern).match(name):
                owner[name] = index
                break
    values: dict[str, dict[int, set[str]]] = {}
    for index, (pattern, dtype, shape, optional) in enumerate(tensors):
        regex = to_regex(pattern)
        hits = [name for name in keys if owner.get(name) == index]
        if not hits and not optional:
            return False
        for name in hits:
            for capture, value in regex.match(name).groupdict().items():
                if capture in FIXTURE_CAPTURES:
                    values.setdefault(capture, {}).setdefault(index, set()).add(value)
        for name in hits:
            claimed.add(name)
            info = keys[name]
            if dtype == "float" and not info["dtype"].startswith("float"):
                return False
            if dtype in ("int", "i64") and not info["dtype"].startswith("int"):
                return False
            if len(shape) != len(info["shape"]):
                return False
            for expr, size in zip(shape, info["shape"]):
                if re.fullmatch(r"[a-z_]+", expr):
                    if dims.setdefault(expr, size) != size:
                        return False
                elif re.fullmatch(r"[0-9]+", expr):
                    if int(expr) != size:
                        return False
            for index_name, bound in re.findall(r"\{([a-z_]+) < ([a-z_]+)\}", pattern):
                counted.setdefault(bound, set()).add(int(regex.match(name).group(index_name)))
    for bound, seen in counted.items():
        if seen != set(range(len(seen))):
            return False
        if dims.setdefault(bound, len(seen)) != len(seen):
            return False
    if "chunks" in dims and "layers" in dims and dims["layers"] != dims["chunks"] * dims["blocks_per_chunk"]:
        return False
    for capture, per_pattern in values.items():
        seen = set().union(*per_pattern.values())
        for index, found in per_pattern.items():
            if not tensors[index][3] and found != seen:
                return False
    allowed = [to_regex(a) for a in ALLOWS]
    extras = [n for n in keys if n not in claimed and not any(a.match(n) for a in allowed)]
    return not extras


def main() -> None:
    only_check = "--check" in sys.argv
    for version in VERSIONS:
        check(version)
        fits = [schema for schema in VERSIONS if matches(schema, version)]
        expected = EXPECTED_FITS.get(version, [version])
        if fits != expected:
            raise SystemExit(f"fixture {version} fits the schemas {fits}, expected exactly {expected}")
        if version in DERIVED:
            continue
        path = os.path.join(ROOT, "schemas/anemoi", f"encprocdec-{version}.ss")
        text = render(version)
        if only_check:
            if open(path).read() != text:
                raise SystemExit(f"{path} is out of date: run tools/anemoi_schemas.py")
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    print(f"{len(VERSIONS)} schemas match their fixtures, each fixture fits the schemas it should")


if __name__ == "__main__":
    main()
