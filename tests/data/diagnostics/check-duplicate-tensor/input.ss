schema llama.hf @ 1.0.0 {
    dim hidden
    dim layers

    tensor "model.layers.{i < layers}.input_layernorm.weight" : bf16[hidden]
    tensor "model.layers.{j < layers}.input_layernorm.weight" : bf16[hidden]
}
