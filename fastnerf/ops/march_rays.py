"""fastnerf.ops.march_rays: placeholder until its issue lands (see ARCHITECTURE.md section 3)."""


def march_rays(*args, backend=None, **kwargs):
    raise NotImplementedError("fastnerf.ops.march_rays is not implemented yet")
