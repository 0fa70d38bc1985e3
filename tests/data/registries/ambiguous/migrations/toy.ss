// Two equally short ways to 2.0.0 that disagree on which tensor becomes `x`.
migration toy 1.0.0 -> 1.1.0 "a is x" {
    rename "a" -> "x"
}

migration toy 1.1.0 -> 2.0.0 "b is y" {
    rename "b" -> "y"
}

migration toy 1.0.0 -> 1.2.0 "a is y" {
    rename "a" -> "y"
}

migration toy 1.2.0 -> 2.0.0 "b is x" {
    rename "b" -> "x"
}
