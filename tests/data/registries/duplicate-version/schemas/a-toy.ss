schema toy @ 1.0.0 {
    dim hidden
    tensor "w" : f32[hidden, hidden]
}
