migration llama.hf 1.0.0 -> 1.1.0 {
    drop "model.rotary_emb.inv_freq" derivd
    rename "a" -> "b"
}
