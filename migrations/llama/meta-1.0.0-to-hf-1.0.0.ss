// Meta's LLaMA layout to Hugging Face transformers', as transformers'
// src/transformers/models/llama/convert_llama_weights_to_hf.py (`write_model`, unsharded case;
// huggingface/transformers 01cc9cd9d8) does it. Every operation is invertible, so the way
// back (llama.hf -> llama.meta) is derived automatically.
migration llama.meta @ 1.0.0 -> llama.hf @ 1.0.0 "Meta's consolidated layout to transformers' LlamaForCausalLM" {
    // params.json's n_heads and n_kv_heads (n_kv_heads = n_heads without grouped-query
    // attention). They show in no tensor shape: pass them as `--dim heads=32 --dim kv_heads=8`.
    dim heads
    dim kv_heads

    rename "tok_embeddings.weight" -> "model.embed_tokens.weight"
    rename "layers.{i}.attention.wq.weight" -> "model.layers.{i}.self_attn.q_proj.weight"
    rename "layers.{i}.attention.wk.weight" -> "model.layers.{i}.self_attn.k_proj.weight"
    rename "layers.{i}.attention.wv.weight" -> "model.layers.{i}.self_attn.v_proj.weight"
    rename "layers.{i}.attention.wo.weight" -> "model.layers.{i}.self_attn.o_proj.weight"
    rename "layers.{i}.feed_forward.w1.weight" -> "model.layers.{i}.mlp.gate_proj.weight"
    rename "layers.{i}.feed_forward.w2.weight" -> "model.layers.{i}.mlp.down_proj.weight"
    rename "layers.{i}.feed_forward.w3.weight" -> "model.layers.{i}.mlp.up_proj.weight"
    rename "layers.{i}.attention_norm.weight" -> "model.layers.{i}.input_layernorm.weight"
    rename "layers.{i}.ffn_norm.weight" -> "model.layers.{i}.post_attention_layernorm.weight"
    rename "norm.weight" -> "model.norm.weight"
    rename "output.weight" -> "lm_head.weight"

    // Meta's rotary embedding rotates adjacent pairs (x[2i], x[2i+1]) of each head (complex
    // multiplication); transformers' rotate_half pairs x[i] with x[i + head_dim/2]. The
    // conversion reorders the rows of q and k within each head ("permute for sliced rotary"):
    //     def permute(w, n_heads, dim1=dim, dim2=dim):
    //         return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
    // applied to wq with n_heads, and to wk with num_key_value_heads and dim1 = key_value_dim
    // (grouped-query attention). v and o are not rotated and pass as they are.
    permute-heads "model.layers.{i}.self_attn.q_proj.weight" heads heads from interleaved to rotate_half
    permute-heads "model.layers.{i}.self_attn.k_proj.weight" heads kv_heads from interleaved to rotate_half
}
