schema toy @ 1.0.0 {
    dim hidden
    tensor "w" : f32[hidden, hidden]
}

schema toy @ 2.0.0 {
    dim hidden
    tensor "weight" : f32[hidden, hidden]
}
