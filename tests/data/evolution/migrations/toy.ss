// 1.1.0 has no schema of its own: it is 1.0.0 with this migration applied.
migration toy 1.0.0 -> 1.1.0 "rename the final norm" {
    rename "norm.weight" -> "final_norm.weight"
}

migration toy 1.1.0 -> 2.0.0 "split the fused attention projection" {
    split "layers.{i}.qkv.{w}" axis 0 into "layers.{i}.q.{w}", "layers.{i}.k.{w}", "layers.{i}.v.{w}"
}

// 2.1.0 has no schema of its own either.
migration toy 2.0.0 -> 2.1.0 "a no-op bias for the final norm" {
    insert "final_norm.bias" : f32[hidden] = zeros
}

migration toy 2.1.0 -> 3.0.0 "store the embedding transposed" {
    transpose "embed.weight"
}
