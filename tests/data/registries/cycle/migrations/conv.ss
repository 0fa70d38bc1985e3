migration conv.a @ 1.0.0 -> conv.b @ 1.0.0 "a to b" {
    rename "a.weight" -> "b.weight"
}

migration conv.b @ 1.0.0 -> conv.c @ 1.0.0 "b to c" {
    rename "b.weight" -> "c.weight"
}

migration conv.c @ 1.0.0 -> conv.a @ 1.0.0 "c back to a" {
    rename "c.weight" -> "a.weight"
}
