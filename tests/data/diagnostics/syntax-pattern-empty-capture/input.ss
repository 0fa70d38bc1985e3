migration llama.hf 1.0.0 -> 1.1.0 {
    rename "model.{}.weight" -> "model.{x}.w"
}
