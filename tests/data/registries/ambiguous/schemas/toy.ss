schema toy @ 1.0.0 {
    dim hidden
    tensor "a" : f32[hidden]
    tensor "b" : f32[hidden]
}

schema toy @ 2.0.0 {
    dim hidden
    tensor "x" : f32[hidden]
    tensor "y" : f32[hidden]
}
