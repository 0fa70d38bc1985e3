// Forgets to insert the new norm, and leaves an extra tensor behind.
migration toy 1.0.0 -> 2.0.0 "rename and add a norm" {
    copy "w" -> "weight"
}
