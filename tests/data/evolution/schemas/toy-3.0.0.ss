schema toy @ 3.0.0 "transposed embedding, norm bias" {
    dim hidden
    dim layers
    dim vocab

    tensor "embed.weight" : f32[hidden, vocab]
    tensor "layers.{i < layers}.q.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.k.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.v.weight" : f32[hidden, hidden]
    tensor "layers.{i < layers}.q.bias" : f32[hidden]
    tensor "layers.{i < layers}.k.bias" : f32[hidden]
    tensor "layers.{i < layers}.v.bias" : f32[hidden]
    tensor "final_norm.weight" : f32[hidden]
    tensor "final_norm.bias" : f32[hidden]
}
