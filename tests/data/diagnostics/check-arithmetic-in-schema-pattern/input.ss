schema llama.hf @ 1.0.0 {
    dim n

    tensor "model.layers.{i + 1}.weight" : f32[n]
}
