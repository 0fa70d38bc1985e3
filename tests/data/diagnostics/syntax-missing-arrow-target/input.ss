migration llama.hf 1.0.0 -> 1.1.0 {
    rename "a" ->
}
