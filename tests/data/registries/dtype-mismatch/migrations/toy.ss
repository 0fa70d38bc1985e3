// Casts the bias instead of the weight.
migration toy 1.0.0 -> 2.0.0 "store weights in bf16" {
    cast "b" to bf16 lossy
}
