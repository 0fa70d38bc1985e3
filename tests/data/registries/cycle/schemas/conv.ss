// Three layouts of one model, each converted into the next: a loop.
schema conv.a @ 1.0.0 {
    dim hidden
    tensor "a.weight" : f32[hidden, hidden]
}

schema conv.b @ 1.0.0 {
    dim hidden
    tensor "b.weight" : f32[hidden, hidden]
}

schema conv.c @ 1.0.0 {
    dim hidden
    tensor "c.weight" : f32[hidden, hidden]
}
