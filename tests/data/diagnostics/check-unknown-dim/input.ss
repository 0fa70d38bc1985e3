schema llama.hf @ 1.0.0 {
    dim hidden
    dim vocab

    tensor "model.embed_tokens.weight" : bf16[vocab, hiden]
}
