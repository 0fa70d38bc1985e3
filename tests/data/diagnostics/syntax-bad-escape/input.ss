schema llama.hf @ 1.0.0 "the \q layout" {
    dim hidden
}
