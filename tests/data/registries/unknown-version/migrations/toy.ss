// Typo: the schema is 1.0.0.
migration toy 1.0.1 -> 2.0.0 "rename w" {
    rename "w" -> "weight"
}

// No such family.
migration tyo 2.0.0 -> 3.0.0 "nothing" {
    rename "weight" -> "weights"
}
