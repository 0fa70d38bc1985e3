//! Upgrades and downgrades with the real registry, and the bytes every step moves.
//!
//! * Anemoi: each fixture upgrades to exactly the tensor names, shapes and dtypes of the 0.19.0
//!   fixture, and every step moves the right bytes: split blocks are the right rows, fan-out
//!   copies equal their source, the swapped layer norms land where the README says, the
//!   trainable edge rows follow the graph's destination order, new buffers hold the stated values.
//! * LLaMA: a synthetic Meta checkpoint converts to transformers' layout exactly as transformers'
//!   `convert_llama_weights_to_hf.py` does (its `permute`, reimplemented here on f32 rows), and
//!   converts back to the original bytes.
//!
//! Every expected value is computed here from the SOURCE file's bytes, never by safeshift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::{data_dir, detected, fixture, ok, safeshift, HEAD, VERSIONS};

// ------------------------------------------------------------------------------------------------
// Helpers: tensors.

fn graph_file() -> PathBuf {
    data_dir().join("anemoi/graph.safetensors")
}

fn aux_graph_arg() -> String {
    format!("graph={}", graph_file().display())
}

/// One tensor read back from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Tensor {
    /// Bytes of rows `start..end` along axis 0.
    fn rows(&self, start: usize, end: usize) -> Vec<u8> {
        let row = self.bytes.len() / self.shape[0];
        self.bytes[start * row..end * row].to_vec()
    }

    fn i64s(&self) -> Vec<i64> {
        assert_eq!(self.dtype, Dtype::I64);
        self.bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

type Tensors = BTreeMap<String, Tensor>;

fn read(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let file = SafeTensors::deserialize(&bytes).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()));
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            (name, Tensor { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() })
        })
        .collect()
}

/// Names, dtypes and shapes, without bytes.
fn layout(tensors: &Tensors) -> BTreeMap<String, (Dtype, Vec<usize>)> {
    tensors.iter().map(|(name, t)| (name.clone(), (t.dtype, t.shape.clone()))).collect()
}

/// Runs `safeshift upgrade SOURCE -o OUT EXTRA…` and reads the result.
fn upgrade(source: &Path, extra: &[&str]) -> Tensors {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let mut args = vec!["upgrade", source.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(&args);
    read(&out)
}

/// Upgrades the fixture of `from` by one step, to `to`, and checks the result has exactly the
/// layout of the `to` fixture. Returns (source, upgraded).
fn step(from: &str, to: &str) -> (Tensors, Tensors) {
    let aux = aux_graph_arg();
    let mut extra = vec!["--to", to];
    if to == "0.17.0" {
        extra.extend(["--aux", aux.as_str()]);
    }
    let source = read(&fixture(from));
    let upgraded = upgrade(&fixture(from), &extra);
    assert_eq!(layout(&upgraded), layout(&read(&fixture(to))), "{from} -> {to}: layout differs from the {to} fixture");
    (source, upgraded)
}

/// The stable argsort of the destination row of an edge set's `edge_index` [2, E], computed
/// here from the graph file (and checked against the permutation the file stores).
fn perm_sort_by_dst(edges: &str) -> Vec<usize> {
    let graph = read(&graph_file());
    let index = &graph[&format!("{edges}.edge_index")];
    let n_edges = index.shape[1];
    let dst = &index.i64s()[n_edges..];
    let mut perm: Vec<usize> = (0..n_edges).collect();
    perm.sort_by_key(|&edge| dst[edge]); // `sort_by_key` is stable
    let stored: Vec<usize> = graph[&format!("{edges}.perm_sort_by_dst")].i64s().iter().map(|&i| i as usize).collect();
    assert_eq!(perm, stored, "{edges}: the graph's stored permutation is not the stable dst sort");
    assert_ne!(perm, (0..n_edges).collect::<Vec<_>>(), "{edges}: the fixture graph must not be sorted already");
    perm
}

fn gathered_rows(tensor: &Tensor, perm: &[usize]) -> Vec<u8> {
    perm.iter().flat_map(|&row| tensor.rows(row, row + 1)).collect()
}

fn same(upgraded: &Tensors, new: &str, source: &Tensors, old: &str) {
    let got = upgraded.get(new).unwrap_or_else(|| panic!("`{new}` missing from the output"));
    let want = source.get(old).unwrap_or_else(|| panic!("`{old}` missing from the source"));
    assert_eq!(got, want, "`{new}` must equal the source's `{old}`");
}

const MAPPERS: [&str; 2] = ["encoder", "decoder"];
const WB: [&str; 2] = ["weight", "bias"];

// ------------------------------------------------------------------------------------------------
// Anemoi: whole upgrades.

#[test]
fn every_anemoi_fixture_upgrades_to_the_layout_of_0_19_0() {
    let head = layout(&read(&fixture(HEAD)));
    let aux = aux_graph_arg();
    for version in &VERSIONS[..VERSIONS.len() - 1] {
        let upgraded = upgrade(&fixture(version), &["--aux", &aux]);
        assert_eq!(layout(&upgraded), head, "upgrading the {version} fixture");
    }
}

#[test]
fn upgrade_from_0_4_0_to_0_19_0_moves_the_right_bytes() {
    let source = read(&fixture("0.4.0"));
    let upgraded = upgrade(&fixture("0.4.0"), &["--aux", &aux_graph_arg()]);
    for mapper in MAPPERS {
        let old = format!("model.model.{mapper}.proc");
        // 0.19 keys the encoder and decoder by their own name, `0` by default.
        let new = format!("model.model.{mapper}.0.proc");
        for wb in WB {
            // 0.4.0 normalises the source nodes with layer_norm1, the destination nodes with layer_norm2.
            same(
                &upgraded,
                &format!("{new}.layer_norm_attention_src.{wb}"),
                &source,
                &format!("{old}.layer_norm1.{wb}"),
            );
            same(
                &upgraded,
                &format!("{new}.layer_norm_attention_dest.{wb}"),
                &source,
                &format!("{old}.layer_norm2.{wb}"),
            );
            same(&upgraded, &format!("{new}.layer_norm_attention.{wb}"), &source, &format!("{old}.layer_norm2.{wb}"));
            same(&upgraded, &format!("{new}.layer_norm_mlp_dst.{wb}"), &source, &format!("{old}.node_dst_mlp.0.{wb}"));
            same(&upgraded, &format!("{new}.node_dst_mlp.mlp.0.{wb}"), &source, &format!("{old}.node_dst_mlp.1.{wb}"));
            same(&upgraded, &format!("{new}.node_dst_mlp.mlp.2.{wb}"), &source, &format!("{old}.node_dst_mlp.3.{wb}"));
        }
    }
    for (chunk, block) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let layer = chunk * 2 + block;
        let old = format!("model.model.processor.proc.{chunk}.blocks.{block}");
        let new = format!("model.model.processor.proc.{layer}");
        let qkv = &source[&format!("{old}.attention.lin_qkv.weight")];
        let hidden = qkv.shape[1];
        for (part, name) in ["lin_q", "lin_k", "lin_v"].iter().enumerate() {
            let got = &upgraded[&format!("{new}.attention.{name}.weight")];
            assert_eq!(got.bytes, qkv.rows(part * hidden, (part + 1) * hidden), "{new}.attention.{name}");
        }
        same(&upgraded, &format!("{new}.layer_norm_attention.weight"), &source, &format!("{old}.layer_norm1.weight"));
        same(&upgraded, &format!("{new}.layer_norm_mlp.bias"), &source, &format!("{old}.layer_norm2.bias"));
        same(&upgraded, &format!("{new}.mlp.mlp.0.weight"), &source, &format!("{old}.mlp.0.weight"));
        same(&upgraded, &format!("{new}.mlp.mlp.2.bias"), &source, &format!("{old}.mlp.2.bias"));
    }
    for (mapper, edges) in [("encoder", "data_to_hidden"), ("decoder", "hidden_to_data")] {
        let old = &source[&format!("model.model.{mapper}.trainable.trainable")];
        let new = &upgraded[&format!("model.model.{mapper}_graph_provider.data.trainable.trainable")];
        assert_eq!(new.bytes, gathered_rows(old, &perm_sort_by_dst(edges)), "{mapper} trainable edges");
        let version = &upgraded[&format!("model.model.{mapper}_graph_provider.data.trainable_layout_version")];
        assert_eq!(version.i64s(), [1]);
    }
}

#[test]
fn upgrade_without_the_graph_names_the_missing_aux_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let output = safeshift(&["upgrade", fixture("0.15.1").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "a failed file of a batch exits with 1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("graph"), "stderr names the aux input: {stderr}");
    assert!(stderr.contains("edge_index"), "stderr quotes its description: {stderr}");
    assert!(!out.exists(), "no output file after an error");
}

// ------------------------------------------------------------------------------------------------
// Anemoi: one test per step, values from the source fixture.

#[test]
fn step_0_4_0_to_0_4_2_fans_out_the_mapper_norms() {
    let (source, upgraded) = step("0.4.0", "0.4.2");
    for mapper in MAPPERS {
        let p = format!("model.model.{mapper}.proc");
        for wb in WB {
            same(&upgraded, &format!("{p}.layer_norm_attention.{wb}"), &source, &format!("{p}.layer_norm1.{wb}"));
            same(&upgraded, &format!("{p}.layer_norm_attention_src.{wb}"), &source, &format!("{p}.layer_norm1.{wb}"));
            same(&upgraded, &format!("{p}.layer_norm_attention_dest.{wb}"), &source, &format!("{p}.layer_norm2.{wb}"));
            same(&upgraded, &format!("{p}.layer_norm_mlp.{wb}"), &source, &format!("{p}.node_dst_mlp.0.{wb}"));
            same(&upgraded, &format!("{p}.node_dst_mlp.0.{wb}"), &source, &format!("{p}.node_dst_mlp.0.{wb}"));
        }
    }
    for (chunk, block) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let p = format!("model.model.processor.proc.{chunk}.blocks.{block}");
        for wb in WB {
            same(&upgraded, &format!("{p}.layer_norm_attention.{wb}"), &source, &format!("{p}.layer_norm1.{wb}"));
            same(&upgraded, &format!("{p}.layer_norm_mlp.{wb}"), &source, &format!("{p}.layer_norm2.{wb}"));
        }
    }
}

#[test]
fn step_0_4_2_to_0_6_0_swaps_layer_norm_attention_to_the_destination_norm() {
    let (source, upgraded) = step("0.4.2", "0.6.0");
    for mapper in MAPPERS {
        let p = format!("model.model.{mapper}.proc");
        for wb in WB {
            // The trap: the key keeps its name but now means the destination norm.
            let old_key = &source[&format!("{p}.layer_norm_attention.{wb}")];
            assert_ne!(&upgraded[&format!("{p}.layer_norm_attention.{wb}")], old_key, "{p}: name-preserving copy");
            same(
                &upgraded,
                &format!("{p}.layer_norm_attention.{wb}"),
                &source,
                &format!("{p}.layer_norm_attention_dest.{wb}"),
            );
            same(
                &upgraded,
                &format!("{p}.layer_norm_attention_dest.{wb}"),
                &source,
                &format!("{p}.layer_norm_attention_dest.{wb}"),
            );
            same(
                &upgraded,
                &format!("{p}.layer_norm_attention_src.{wb}"),
                &source,
                &format!("{p}.layer_norm_attention_src.{wb}"),
            );
            same(&upgraded, &format!("{p}.layer_norm_mlp_dst.{wb}"), &source, &format!("{p}.layer_norm_mlp.{wb}"));
            same(&upgraded, &format!("{p}.node_dst_mlp.0.{wb}"), &source, &format!("{p}.node_dst_mlp.1.{wb}"));
            same(&upgraded, &format!("{p}.node_dst_mlp.2.{wb}"), &source, &format!("{p}.node_dst_mlp.3.{wb}"));
        }
    }
}

#[test]
fn step_0_6_0_to_0_10_0_splits_lin_qkv_into_contiguous_row_blocks() {
    let (source, upgraded) = step("0.6.0", "0.10.0");
    for (chunk, block) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let p = format!("model.model.processor.proc.{chunk}.blocks.{block}.attention");
        let qkv = &source[&format!("{p}.lin_qkv.weight")];
        let hidden = qkv.shape[1];
        assert_eq!(qkv.shape, [3 * hidden, hidden]);
        for (part, name) in ["lin_q", "lin_k", "lin_v"].iter().enumerate() {
            let got = &upgraded[&format!("{p}.{name}.weight")];
            assert_eq!(got.shape, [hidden, hidden]);
            assert_eq!(got.bytes, qkv.rows(part * hidden, (part + 1) * hidden), "{p}.{name}: rows of part {part}");
        }
    }
}

#[test]
fn step_0_10_0_to_0_11_2_flattens_chunks_with_index_arithmetic() {
    let (source, upgraded) = step("0.10.0", "0.11.2");
    let prefix = "model.model.processor.proc.";
    let mut moved = 0;
    for name in source.keys().filter(|name| name.starts_with(prefix)) {
        let rest: Vec<&str> = name[prefix.len()..].splitn(4, '.').collect();
        let [chunk, "blocks", block, tail] = rest[..] else { panic!("unexpected processor key `{name}`") };
        let layer = chunk.parse::<usize>().unwrap() * 2 + block.parse::<usize>().unwrap();
        same(&upgraded, &format!("{prefix}{layer}.{tail}"), &source, name);
        moved += 1;
    }
    assert_eq!(moved, 4 * 13);
}

#[test]
fn step_0_11_2_to_0_11_3_moves_trainable_edges_and_drops_edge_inc() {
    let (source, upgraded) = step("0.11.2", "0.11.3");
    for mapper in MAPPERS {
        same(
            &upgraded,
            &format!("model.model.{mapper}_graph_provider.trainable.trainable"),
            &source,
            &format!("model.model.{mapper}.trainable.trainable"),
        );
        assert!(!upgraded.contains_key(&format!("model.model.{mapper}.edge_inc")));
    }
}

#[test]
fn step_0_11_3_to_0_12_1_inserts_the_dataset_level() {
    let (source, upgraded) = step("0.11.3", "0.12.1");
    for (name, tensor) in &source {
        let new = if name.starts_with("model.model.processor.") {
            name.clone()
        } else if let Some(rest) = name.strip_prefix("model.pre_processors.") {
            format!("model.pre_processors.data.{rest}")
        } else if let Some(rest) = name.strip_prefix("model.post_processors.") {
            format!("model.post_processors.data.{rest}")
        } else {
            let rest = name.strip_prefix("model.model.").unwrap();
            let (module, tail) = rest.split_once('.').unwrap();
            format!("model.model.{module}.data.{tail}")
        };
        assert_eq!(upgraded.get(&new), Some(tensor), "`{name}` -> `{new}`");
    }
}

#[test]
fn step_0_12_1_to_0_15_1_copies_output_idx_into_model_output_idx() {
    let (source, upgraded) = step("0.12.1", "0.15.1");
    for side in ["pre", "post"] {
        let p = format!("model.{side}_processors.data.processors.normalizer");
        same(&upgraded, &format!("{p}._model_output_idx"), &source, &format!("{p}._output_idx"));
        same(&upgraded, &format!("{p}._output_idx"), &source, &format!("{p}._output_idx"));
    }
    for name in ["latlons_data", "latlons_hidden", "trainable_tensors.data.trainable"] {
        same(
            &upgraded,
            &format!("model.model.node_attributes.{name}"),
            &source,
            &format!("model.model.node_attributes.data.{name}"),
        );
    }
}

#[test]
fn step_0_15_1_to_0_17_0_wraps_mlps_and_sorts_trainable_edges_by_destination() {
    let (source, upgraded) = step("0.15.1", "0.17.0");
    for (mapper, edges) in [("encoder", "data_to_hidden"), ("decoder", "hidden_to_data")] {
        let name = format!("model.model.{mapper}_graph_provider.data.trainable.trainable");
        assert_eq!(upgraded[&name].bytes, gathered_rows(&source[&name], &perm_sort_by_dst(edges)), "{name}");
        let version = &upgraded[&format!("model.model.{mapper}_graph_provider.data.trainable_layout_version")];
        assert_eq!((version.dtype, version.shape.as_slice()), (Dtype::I64, &[][..]));
        assert_eq!(version.i64s(), [1]);
        for n in ["0", "2"] {
            let p = format!("model.model.{mapper}.data.proc.node_dst_mlp");
            same(&upgraded, &format!("{p}.mlp.{n}.weight"), &source, &format!("{p}.{n}.weight"));
        }
    }
    for layer in 0..4 {
        let p = format!("model.model.processor.proc.{layer}.mlp");
        for n in ["0", "2"] {
            for wb in WB {
                same(&upgraded, &format!("{p}.mlp.{n}.{wb}"), &source, &format!("{p}.{n}.{wb}"));
            }
        }
    }
}

#[test]
fn step_0_17_0_to_0_18_0_changes_nothing() {
    let source = read(&fixture("0.17.0"));
    let upgraded = upgrade(&fixture("0.17.0"), &["--to", "0.18.0"]);
    assert_eq!(upgraded, source);
}

#[test]
fn step_0_17_0_to_0_19_0_gives_the_0_19_0_fixture_byte_for_byte() {
    // The two fixtures come from the same seed and parameter order (tests/data/anemoi/README.md).
    let upgraded = upgrade(&fixture("0.17.0"), &["--to", "0.19.0"]);
    assert_eq!(upgraded, read(&fixture("0.19.0")));
}

#[test]
fn step_0_18_0_to_0_19_0_renames_encoders_and_decoders_only() {
    let source = read(&fixture("0.17.0"));
    let upgraded = upgrade(
        &fixture("0.17.0"),
        &["--to", "0.19.0", "--param", "encoder_names=global", "--param", "decoder_names=out"],
    );
    assert_eq!(upgraded.len(), source.len());
    for (name, tensor) in &source {
        let new = if let Some(rest) = name.strip_prefix("model.model.encoder.data.") {
            format!("model.model.encoder.global.{rest}")
        } else if let Some(rest) = name.strip_prefix("model.model.decoder.data.") {
            format!("model.model.decoder.out.{rest}")
        } else {
            // Graph providers, node attributes, pre/post-processors and the processor keep their names.
            name.clone()
        };
        assert_eq!(upgraded.get(&new), Some(tensor), "`{name}` -> `{new}`");
    }
}

#[test]
fn downgrades_through_the_argsort_step_are_automatic_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up.safetensors");
    let back = dir.path().join("back.safetensors");
    let aux = aux_graph_arg();
    let source = fixture("0.15.1");
    ok(&["upgrade", source.to_str().unwrap(), "-o", up.to_str().unwrap(), "--aux", &aux]);
    // With one dataset, the way back from 0.19 knows whose encoder `0` is.
    ok(&["downgrade", up.to_str().unwrap(), "-o", back.to_str().unwrap(), "--to", "0.15.1", "--aux", &aux]);
    assert_eq!(read(&back), read(&source), "the way back gives the original tensors");
}

// ------------------------------------------------------------------------------------------------
// LLaMA: Meta's layout to transformers' and back.

const LLAMA_HIDDEN: usize = 16;
const LLAMA_HEADS: usize = 4;
const LLAMA_LAYERS: usize = 2;
const LLAMA_VOCAB: usize = 10;
const LLAMA_FFN: usize = 24;

/// A synthetic Meta checkpoint with distinct f32 values everywhere.
fn meta_checkpoint(kv_heads: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let head_dim = LLAMA_HIDDEN / LLAMA_HEADS;
    let kv_dim = kv_heads * head_dim;
    let (h, f, v) = (LLAMA_HIDDEN, LLAMA_FFN, LLAMA_VOCAB);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![("tok_embeddings.weight".into(), vec![v, h])];
    for i in 0..LLAMA_LAYERS {
        shapes.extend([
            (format!("layers.{i}.attention.wq.weight"), vec![h, h]),
            (format!("layers.{i}.attention.wk.weight"), vec![kv_dim, h]),
            (format!("layers.{i}.attention.wv.weight"), vec![kv_dim, h]),
            (format!("layers.{i}.attention.wo.weight"), vec![h, h]),
            (format!("layers.{i}.feed_forward.w1.weight"), vec![f, h]),
            (format!("layers.{i}.feed_forward.w2.weight"), vec![h, f]),
            (format!("layers.{i}.feed_forward.w3.weight"), vec![f, h]),
            (format!("layers.{i}.attention_norm.weight"), vec![h]),
            (format!("layers.{i}.ffn_norm.weight"), vec![h]),
        ]);
    }
    shapes.extend([("norm.weight".into(), vec![h]), ("output.weight".into(), vec![v, h])]);
    shapes
        .into_iter()
        .enumerate()
        .map(|(index, (name, shape))| {
            let count: usize = shape.iter().product();
            let values = (0..count).map(|k| index as f32 * 1000.0 + k as f32).collect();
            (name, shape, values)
        })
        .collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|value| value.to_le_bytes()).collect()
}

fn write_checkpoint(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(name, shape, values)| (name.clone(), shape.clone(), f32_bytes(values))).collect();
    let views = bytes.iter().map(|(name, shape, data)| {
        (name.clone(), safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data).unwrap())
    });
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// transformers' `permute(w, n_heads, dim1, dim2)`:
/// `w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)`,
/// i.e. output row (h, c, i) is input row (h, i, c).
fn hf_permute(w: &[f32], n_heads: usize, dim1: usize, dim2: usize) -> Vec<f32> {
    let half = dim1 / n_heads / 2;
    let mut out = Vec::with_capacity(w.len());
    for head in 0..n_heads {
        for c in 0..2 {
            for i in 0..half {
                let row = head * half * 2 + i * 2 + c;
                out.extend_from_slice(&w[row * dim2..(row + 1) * dim2]);
            }
        }
    }
    out
}

/// What convert_llama_weights_to_hf.py writes for `meta` (unsharded `write_model`).
fn transformers_conversion(meta: &[(String, Vec<usize>, Vec<f32>)], kv_heads: usize) -> BTreeMap<String, Tensor> {
    let by_name: BTreeMap<&str, (&Vec<usize>, &Vec<f32>)> =
        meta.iter().map(|(name, shape, values)| (name.as_str(), (shape, values))).collect();
    let tensor = |shape: &Vec<usize>, values: &[f32]| Tensor {
        dtype: Dtype::F32,
        shape: shape.clone(),
        bytes: f32_bytes(values),
    };
    let copy = |name: &str| {
        let (shape, values) = by_name[name];
        tensor(shape, values)
    };
    let mut out = BTreeMap::new();
    out.insert("model.embed_tokens.weight".to_owned(), copy("tok_embeddings.weight"));
    out.insert("model.norm.weight".to_owned(), copy("norm.weight"));
    out.insert("lm_head.weight".to_owned(), copy("output.weight"));
    let key_value_dim = kv_heads * (LLAMA_HIDDEN / LLAMA_HEADS);
    for i in 0..LLAMA_LAYERS {
        let (q_shape, wq) = by_name[format!("layers.{i}.attention.wq.weight").as_str()];
        let (k_shape, wk) = by_name[format!("layers.{i}.attention.wk.weight").as_str()];
        out.insert(
            format!("model.layers.{i}.self_attn.q_proj.weight"),
            tensor(q_shape, &hf_permute(wq, LLAMA_HEADS, LLAMA_HIDDEN, LLAMA_HIDDEN)),
        );
        out.insert(
            format!("model.layers.{i}.self_attn.k_proj.weight"),
            tensor(k_shape, &hf_permute(wk, kv_heads, key_value_dim, LLAMA_HIDDEN)),
        );
        for (hf, meta) in [
            ("self_attn.v_proj", "attention.wv"),
            ("self_attn.o_proj", "attention.wo"),
            ("mlp.gate_proj", "feed_forward.w1"),
            ("mlp.down_proj", "feed_forward.w2"),
            ("mlp.up_proj", "feed_forward.w3"),
            ("input_layernorm", "attention_norm"),
            ("post_attention_layernorm", "ffn_norm"),
        ] {
            out.insert(format!("model.layers.{i}.{hf}.weight"), copy(&format!("layers.{i}.{meta}.weight")));
        }
    }
    out
}

fn llama_round_trip(kv_heads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let meta_path = dir.path().join("consolidated.safetensors");
    let hf_path = dir.path().join("hf.safetensors");
    let back_path = dir.path().join("back.safetensors");
    let meta = meta_checkpoint(kv_heads);
    write_checkpoint(&meta_path, &meta);

    let output = ok(&["detect", meta_path.to_str().unwrap(), "--json"]);
    assert_eq!(detected(&output.stdout), ("llama.meta".to_owned(), "1.0.0".to_owned()));

    let heads = format!("heads={LLAMA_HEADS}");
    let kv = format!("kv_heads={kv_heads}");
    let dims = ["--dim", heads.as_str(), "--dim", kv.as_str()];
    let mut args =
        vec!["upgrade", meta_path.to_str().unwrap(), "-o", hf_path.to_str().unwrap(), "--to", "llama.hf@1.0.0"];
    args.extend(dims);
    ok(&args);
    assert_eq!(read(&hf_path), transformers_conversion(&meta, kv_heads), "kv_heads {kv_heads}");

    let mut args =
        vec!["downgrade", hf_path.to_str().unwrap(), "-o", back_path.to_str().unwrap(), "--to", "llama.meta@1.0.0"];
    args.extend(dims);
    ok(&args);
    assert_eq!(read(&back_path), read(&meta_path), "the way back gives the original tensors, kv_heads {kv_heads}");
}

#[test]
fn llama_meta_to_hf_matches_transformers_and_converts_back() {
    llama_round_trip(LLAMA_HEADS);
}

#[test]
fn llama_meta_to_hf_with_grouped_query_attention() {
    llama_round_trip(2);
}

#[test]
fn llama_as_released_with_rope_freqs_converts_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let meta_path = dir.path().join("consolidated.safetensors");
    let hf_path = dir.path().join("hf.safetensors");
    let mut meta = meta_checkpoint(2);
    let rotary = LLAMA_HIDDEN / LLAMA_HEADS / 2;
    meta.push(("rope.freqs".to_owned(), vec![rotary], (0..rotary).map(|k| 1.0 / (k as f32 + 1.0)).collect()));
    write_checkpoint(&meta_path, &meta);
    let output = ok(&["detect", meta_path.to_str().unwrap(), "--json"]);
    assert_eq!(detected(&output.stdout), ("llama.meta".to_owned(), "0.9.0".to_owned()));
    let heads = format!("heads={LLAMA_HEADS}");
    let args = ["upgrade", meta_path.to_str().unwrap(), "-o", hf_path.to_str().unwrap(), "--to", "llama.hf@1.0.0"];
    let mut args = args.to_vec();
    args.extend(["--dim", heads.as_str(), "--dim", "kv_heads=2"]);
    ok(&args);
    assert_eq!(read(&hf_path), transformers_conversion(&meta, 2), "rope.freqs is dropped, the rest converted");
}

#[test]
fn llama_conversion_without_head_counts_names_the_missing_dim() {
    let dir = tempfile::tempdir().unwrap();
    let meta_path = dir.path().join("consolidated.safetensors");
    write_checkpoint(&meta_path, &meta_checkpoint(LLAMA_HEADS));
    let out = dir.path().join("hf.safetensors");
    let output =
        safeshift(&["upgrade", meta_path.to_str().unwrap(), "-o", out.to_str().unwrap(), "--to", "llama.hf@1.0.0"]);
    assert_eq!(output.status.code(), Some(1), "a failed file of a batch exits with 1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`heads`"), "stderr names the dim: {stderr}");
    assert!(!out.exists());
}

#[test]
fn hf_permute_matches_the_rotary_pairing() {
    // One head of width 4, one column: Meta's interleaved pairs (x0, x1), (x2, x3) become
    // rotate_half's halves [x0, x2 | x1, x3].
    assert_eq!(hf_permute(&[0.0, 1.0, 2.0, 3.0], 1, 4, 1), [0.0, 2.0, 1.0, 3.0]);
}
