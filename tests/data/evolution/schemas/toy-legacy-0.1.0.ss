// The research code's layout, with optimizer state saved beside the weights.
schema toy.legacy @ 0.1.0 "research layout" {
    dim hidden
    dim layers
    dim vocab

    tensor "tok.weight" : f32[vocab, hidden]
    tensor "blocks.{i < layers}.attn.weight" : f32[3 * hidden, hidden]
    tensor "blocks.{i < layers}.attn.bias" : f32[3 * hidden]
    tensor "ln.weight" : f32[hidden]
    tensor "ln.momentum" : f32[hidden]
}
