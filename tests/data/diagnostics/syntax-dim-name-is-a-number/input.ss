schema llama.hf @ 1.0.0 {
    dim 3
}
