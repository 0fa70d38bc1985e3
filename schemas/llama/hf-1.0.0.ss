// The Hugging Face transformers layout of `LlamaForCausalLM` (what convert_llama_weights_to_hf.py
// writes), with an untied lm_head.
schema llama.hf @ 1.0.0 "Hugging Face transformers' LlamaForCausalLM (model.embed_tokens, model.layers.N.self_attn.q_proj)" {
    dim hidden // hidden_size
    dim kv_dim // num_key_value_heads * head_dim
    dim ffn // intermediate_size
    dim vocab // vocab_size
    dim layers // num_hidden_layers

    tensor "model.embed_tokens.weight" : float[vocab, hidden]
    tensor "model.layers.{i < layers}.self_attn.q_proj.weight" : float[hidden, hidden]
    tensor "model.layers.{i < layers}.self_attn.k_proj.weight" : float[kv_dim, hidden]
    tensor "model.layers.{i < layers}.self_attn.v_proj.weight" : float[kv_dim, hidden]
    tensor "model.layers.{i < layers}.self_attn.o_proj.weight" : float[hidden, hidden]
    tensor "model.layers.{i < layers}.mlp.gate_proj.weight" : float[ffn, hidden]
    tensor "model.layers.{i < layers}.mlp.down_proj.weight" : float[hidden, ffn]
    tensor "model.layers.{i < layers}.mlp.up_proj.weight" : float[ffn, hidden]
    tensor "model.layers.{i < layers}.input_layernorm.weight" : float[hidden]
    tensor "model.layers.{i < layers}.post_attention_layernorm.weight" : float[hidden]
    tensor "model.norm.weight" : float[hidden]
    tensor "lm_head.weight" : float[vocab, hidden]
}
