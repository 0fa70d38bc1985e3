// Edited in place instead of bumping the version.
schema toy @ 1.0.0 {
    dim hidden
    tensor "w" : f32[hidden, hidden]
    tensor "b" : f32[hidden]
}
