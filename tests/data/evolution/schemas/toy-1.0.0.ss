// A small transformer with a fused attention projection.
schema toy @ 1.0.0 "fused qkv" {
    dim hidden
    dim layers
    dim vocab

    tensor "embed.weight" : f32[vocab, hidden]
    tensor "layers.{i < layers}.qkv.weight" : f32[3 * hidden, hidden]
    tensor "layers.{i < layers}.qkv.bias" : f32[3 * hidden]
    tensor "norm.weight" : f32[hidden]
}
