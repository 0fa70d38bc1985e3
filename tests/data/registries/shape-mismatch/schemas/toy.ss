schema toy @ 1.0.0 {
    dim hidden
    dim layers
    tensor "layers.{i < layers}.qkv.weight" : f32[3 * hidden, hidden]
}

schema toy @ 2.0.0 {
    dim hidden
    dim layers
    tensor "layers.{i < layers}.q.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.k.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.v.weight" : f32[hidden, hidden]
}
