schema llama.hf @ 1.0.0 {
    dim hidden
    dim heads
    dim hidden = heads * 64
}
