migration anemoi.encprocdec 0.6.0 -> 0.10.0 {
    split "{p..}.attention.lin_qkv.{w}" axis 0
        into "{p}.attention.lin_q.{w}", "{p}.attention.lin_k.{weight}", "{p}.attention.lin_v.{w}"
}
