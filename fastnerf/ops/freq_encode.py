"""fastnerf.ops.freq_encode: placeholder until its issue lands (see ARCHITECTURE.md section 3)."""


def freq_encode(*args, backend=None, **kwargs):
    raise NotImplementedError("fastnerf.ops.freq_encode is not implemented yet")
