// The Python benchmark's synthetic model today: separate q, k, v, blocks under `layers.N`.
schema benchpy.model @ 2.0.0 "separate q, k, v, layers.N" {
    dim hidden
    dim layers

    tensor "layers.{i < layers}.attention.q.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.attention.k.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.attention.v.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.attention.out.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.mlp.up.weight" : f32[4 * hidden, hidden]
    tensor "layers.{i < layers}.mlp.down.weight" : f32[hidden, 4 * hidden]
    tensor "layers.{i < layers}.norm.weight" : f32[hidden]
}
