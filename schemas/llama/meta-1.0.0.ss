// Meta's original consolidated layout (the llama reference code's `Transformer` state dict:
// LLaMA, Llama 2, Llama 3), one unsharded file. Head counts do not show in any shape (wq is
// [n_heads * head_dim, dim] = [dim, dim]); a migration that needs them declares them.
schema llama.meta @ 1.0.0 "Meta's consolidated layout (tok_embeddings, layers.N.attention.wq, feed_forward.w1)" {
    dim hidden // dim
    dim kv_dim // n_kv_heads * head_dim (= hidden without grouped-query attention)
    dim ffn // feed-forward width
    dim vocab // vocabulary size
    dim layers // n_layers

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
}
