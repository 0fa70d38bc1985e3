//! Schemas and layouts the phases' tests share.

use std::collections::BTreeMap;

use crate::testutil::layout;
use crate::{DType, Layout, TensorInfo};

pub const ANEMOI: &str = r#"
    schema anemoi.encprocdec @ 0.4.0 {
        dim hidden
        dim chunks
        dim blocks_per_chunk
        dim heads = meta("config.model.processor.num_heads")
        dim head_dim = hidden / heads
        tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.lin_qkv.weight" : float[3 * hidden, hidden]
        tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.lin_qkv.bias" : float[3 * hidden] optional
        tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.q_norm.weight" : float[head_dim] optional
        tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.mlp.0.weight" : float[4 * hidden, hidden]
        tensor "model.model.encoder.emb_nodes.weight" : float[hidden, 7]
        allow "model.model.extras.{rest..}"
    }
"#;

pub const LLAMA: &str = r#"
    schema llama.hf @ 1.0.0 {
        dim hidden
        dim layers
        dim vocab
        dim heads
        dim kv_heads
        dim head_dim = hidden / heads
        tensor "model.embed_tokens.weight" : float[vocab, hidden]
        tensor "model.layers.{i < layers}.self_attn.q_proj.weight" : float[heads * head_dim, hidden]
        tensor "model.layers.{i < layers}.self_attn.k_proj.weight" : float[kv_heads * head_dim, hidden]
        tensor "model.layers.{i < layers}.self_attn.v_proj.weight" : float[kv_heads * head_dim, hidden]
        tensor "model.layers.{i < layers}.self_attn.q_norm.weight" : float[head_dim] optional
        tensor "model.norm.weight" : float[hidden]
    }
"#;

pub const PROC: &str = "model.model.processor.proc";

/// An Anemoi-like layout: `chunks` × `blocks` blocks of width `hidden`, f32.
pub fn anemoi_layout(chunks: u64, blocks: u64, hidden: u64, heads: Option<u64>) -> Layout {
    let mut tensors = Vec::new();
    let mut push = |name: String, shape: Vec<u64>| tensors.push(TensorInfo { name, dtype: DType::F32, shape });
    for c in 0..chunks {
        for j in 0..blocks {
            let block = format!("{PROC}.{c}.blocks.{j}");
            push(format!("{block}.attention.lin_qkv.weight"), vec![3 * hidden, hidden]);
            push(format!("{block}.attention.lin_qkv.bias"), vec![3 * hidden]);
            push(format!("{block}.mlp.0.weight"), vec![4 * hidden, hidden]);
        }
    }
    push("model.model.encoder.emb_nodes.weight".into(), vec![hidden, 7]);
    push("model.model.extras.step_count".into(), vec![]);
    let mut layout = Layout { tensors, metadata: BTreeMap::new() };
    if let Some(heads) = heads {
        let config = format!(r#"{{"model": {{"processor": {{"num_heads": {heads}}}}}}}"#);
        layout.metadata.insert("config".into(), config);
    }
    layout
}

/// A LLaMA-like layout: `layers` layers of width `hidden`, `kv_rows` rows of k and v, bf16.
pub fn llama_layout(layers: u64, hidden: u64, kv_rows: u64) -> Layout {
    let mut lines = format!("model.embed_tokens.weight bf16 [100, {hidden}]\nmodel.norm.weight bf16 [{hidden}]\n");
    for i in 0..layers {
        let p = format!("model.layers.{i}.self_attn");
        lines.push_str(&format!("{p}.q_proj.weight bf16 [{hidden}, {hidden}]\n"));
        lines.push_str(&format!("{p}.k_proj.weight bf16 [{kv_rows}, {hidden}]\n"));
        lines.push_str(&format!("{p}.v_proj.weight bf16 [{kv_rows}, {hidden}]\n"));
    }
    layout(&lines)
}
