migration toy.legacy @ 0.1.0 -> toy @ 1.0.0 "research layout to the released one" {
    rename "tok.weight" -> "embed.weight"
    rename "blocks.{i}.attn.{w}" -> "layers.{i}.qkv.{w}"
    rename "ln.weight" -> "norm.weight"
    drop "ln.momentum" lossy
}
