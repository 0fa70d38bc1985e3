schema llama.hf @ 1.0.0 {
    dim hidden

    tensor "model.norm.weight" : float32[hidden]
    tensor "model.norm.bias" : bf61[hidden]
}
