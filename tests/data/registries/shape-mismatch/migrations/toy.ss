// Split along the wrong axis: gives [3 * hidden, hidden / 3] parts.
migration toy 1.0.0 -> 2.0.0 "split the fused projection" {
    split "layers.{i}.qkv.weight" axis 1
        into "layers.{i}.q.weight", "layers.{i}.k.weight", "layers.{i}.v.weight"
}
