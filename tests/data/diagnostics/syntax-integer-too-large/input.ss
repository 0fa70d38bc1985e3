schema llama.hf @ 1.0.0 {
    dim hidden = 99999999999999999999999
}
