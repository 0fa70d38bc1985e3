// Renames and a split along the first axis, as Anemoi's migration scripts do them.
migration benchpy.model 1.0.0 -> 2.0.0 "split qkv, rename blocks to layers" {
    split "blocks.{i}.attn.qkv.weight" axis 0
        into "layers.{i}.attention.q.weight", "layers.{i}.attention.k.weight", "layers.{i}.attention.v.weight"
    rename "blocks.{i}.attn.proj.weight" -> "layers.{i}.attention.out.weight"
    rename "blocks.{i}.mlp.fc1.weight" -> "layers.{i}.mlp.up.weight"
    rename "blocks.{i}.mlp.fc2.weight" -> "layers.{i}.mlp.down.weight"
    rename "blocks.{i}.norm.weight" -> "layers.{i}.norm.weight"
}
