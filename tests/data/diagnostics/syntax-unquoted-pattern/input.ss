schema llama.hf @ 1.0.0 {
    dim hidden
    tensor model.norm.weight : f32[hidden]
}
