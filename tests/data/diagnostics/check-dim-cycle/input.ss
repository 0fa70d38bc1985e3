schema llama.hf @ 1.0.0 {
    dim hidden = heads * head_dim
    dim heads = hidden / head_dim
    dim head_dim
}
