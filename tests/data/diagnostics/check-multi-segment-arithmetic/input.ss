migration anemoi.encprocdec 0.9.0 -> 0.10.0 {
    rename "model.proc.{c..}.blocks.{j}.{rest..}" -> "model.proc.{c * 4 + j}.{rest}"
}
