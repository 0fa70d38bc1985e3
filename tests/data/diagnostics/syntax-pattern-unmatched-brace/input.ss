schema llama.hf @ 1.0.0 {
    dim n
    tensor "model.layers.{i < n}}.weight" : f32[n]
}
