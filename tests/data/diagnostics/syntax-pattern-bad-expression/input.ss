migration anemoi.encprocdec 0.9.0 -> 0.10.0 {
    rename "proc.{c}.blocks.{j}.w" -> "proc.{c * + j}.w"
}
