"""fastnerf.ops.hash_encode: placeholder until its issue lands (see ARCHITECTURE.md section 3)."""


def hash_encode(*args, backend=None, **kwargs):
    raise NotImplementedError("fastnerf.ops.hash_encode is not implemented yet")
