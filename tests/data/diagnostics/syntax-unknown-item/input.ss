schemas llama.hf @ 1.0.0 {
    dim hidden
}
