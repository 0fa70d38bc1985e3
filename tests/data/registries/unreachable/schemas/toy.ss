// An old layout nobody wrote a migration for.
schema toy @ 0.5.0 {
    dim hidden
    tensor "old.w" : f32[hidden, hidden]
}

schema toy @ 1.0.0 {
    dim hidden
    tensor "w" : f32[hidden, hidden]
}

schema toy @ 2.0.0 {
    dim hidden
    tensor "weight" : f32[hidden, hidden]
}
