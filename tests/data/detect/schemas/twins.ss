// Two families whose layouts cannot be told apart by tensors alone.
schema twin.a @ 1.0.0 "a tied linear map" {
    dim n
    tensor "w" : f32[n, n]
}

schema twin.b @ 1.0.0 "the same map under another name" {
    dim n
    tensor "w" : float[n, n]
}
