// Two branches of history that never meet again.
migration toy 1.0.0 -> 1.1.0 "rename to weight" {
    rename "w" -> "weight"
}

migration toy 1.0.0 -> 2.0.0 "rename to kernel" {
    rename "w" -> "kernel"
}
