"""fastnerf.ops.ray_aabb: placeholder until its issue lands (see ARCHITECTURE.md section 3)."""


def ray_aabb(*args, backend=None, **kwargs):
    raise NotImplementedError("fastnerf.ops.ray_aabb is not implemented yet")
