"""The networks behind one small protocol (``protocol.ImplicitModel``): loading and safe
checkpoints, our PIFuHD (``pifuhd/``), the embedded default model (``embedded/``), mirror
averaging and input preprocessing."""
