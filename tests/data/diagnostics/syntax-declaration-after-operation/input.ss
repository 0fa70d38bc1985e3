migration anemoi.encprocdec 0.9.0 -> 0.10.0 {
    rename "a.{c}.{j}" -> "b.{c * blocks + j}"
    dim blocks = 4
}
