schema toy @ 1.0.0 {
    dim hidden
    tensor "w" : f32[hidden, hidden]
    tensor "b" : f32[hidden]
}

schema toy @ 2.0.0 {
    dim hidden
    tensor "w" : bf16[hidden, hidden]
    tensor "b" : f32[hidden]
}
