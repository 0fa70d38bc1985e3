migration llama.hf 1.0.0 -> 1.1.0 {
    split "model.qkv.weight" axis
        into "model.q.weight", "model.k.weight", "model.v.weight"
}
