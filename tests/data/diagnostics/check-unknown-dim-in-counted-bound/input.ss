schema llama.hf @ 1.0.0 {
    dim hidden

    tensor "model.layers.{i < layers}.mlp.up_proj.weight" : bf16[hidden, hidden]
}
