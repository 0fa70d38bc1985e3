migration llama.hf 1.0.0 -> 1.1.0 {
    rename "model.norm.weight" => "model.final_norm.weight"
}
