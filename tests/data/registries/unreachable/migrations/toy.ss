migration toy 1.0.0 -> 2.0.0 "rename w" {
    rename "w" -> "weight"
}
