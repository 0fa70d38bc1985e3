// Meta's consolidated layout as released: the reference layout of 1.0.0 plus `rope.freqs`, the
// rotary frequencies [head_dim / 2] that Meta's training code stored as a buffer and every
// implementation (Meta's reference code, transformers) recomputes instead of loading.
schema llama.meta @ 0.9.0 "Meta's consolidated layout with the stored rotary frequencies rope.freqs" {
    dim hidden // dim
    dim kv_dim // n_kv_heads * head_dim (= hidden without grouped-query attention)
    dim ffn // feed-forward width
    dim vocab // vocabulary size
    dim layers // n_layers
    dim rotary // head_dim / 2

    tensor "tok_embeddings.weight" : float[vocab, hidden]
    tensor "layers.{i < layers}.attention.wq.weight" : float[hidden, hidden]
    tensor "layers.{i < layers}.attention.wk.weight" : float[kv_dim, hidden]
    tensor "layers.{i < layers}.attention.wv.weight" : float[kv_dim, hidden]
    tensor "layers.{i < layers}.attention.wo.weight" : float[hidden, hidden]
    tensor "layers.{i < layers}.feed_forward.w1.weight" : float[ffn, hidden]
    tensor "layers.{i < layers}.feed_forward.w2.weight" : float[hidden, ffn]
    tensor "layers.{i < layers}.feed_forward.w3.weight" : float[ffn, hidden]
    tensor "layers.{i < layers}.attention_norm.weight" : float[hidden]
    tensor "layers.{i < layers}.ffn_norm.weight" : float[hidden]
    tensor "norm.weight" : float[hidden]
    tensor "output.weight" : float[vocab, hidden]
    tensor "rope.freqs" : float[rotary]
}
