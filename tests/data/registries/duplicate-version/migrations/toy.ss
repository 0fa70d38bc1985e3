migration toy 1.0.0 -> 1.1.0 "rename w" {
    rename "w" -> "weight"
}

migration toy 1.0.0 -> 1.1.0 "rename w, again" {
    rename "w" -> "weight"
}
