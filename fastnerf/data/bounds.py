"""Where a scene ends: whether a dataset looks unbounded, and how far its rays should reach.

A bounded teacher models the scene inside one box. A capture made by walking around an object in
a room, or outdoors, sees far past any such box; three signs of it are read from the data alone:

- most cameras sit inside the box (they look outward: a room, a street);
- the dataset's far plane lies well past the box (``FAR_PAST_BOX`` times the distance from the
  cameras to the box's farthest corner): the data says there is content out there;
- Instant-NGP's ``aabb_scale`` above 1: its author said the scene reaches past the unit cube.
"""

from __future__ import annotations

import torch

FAR_PAST_BOX = 2.0  # far plane / the farthest box corner's distance that counts as "far past the box"
INSIDE_FRACTION = 0.5  # cameras inside the box that count as "looking outward from inside"
FAR_BOX_DIAGONALS = 100.0  # unbounded rays end this many box diagonals away when the data gives no far


def _centres(dataset) -> torch.Tensor:  # [N,3] camera centres, float64 on the CPU
    return dataset.cameras.c2w[:, :3, 3].detach().cpu().double()


def corner_distance(dataset, aabb) -> torch.Tensor:
    """``[N]`` distance from each camera centre to the farthest corner of ``aabb [6]``."""
    box = torch.as_tensor(aabb, dtype=torch.float64).cpu()
    lows, highs = box[:3], box[3:]
    corners = torch.stack([torch.where(torch.tensor([(k >> a) & 1 for a in range(3)], dtype=torch.bool), highs, lows)
                           for k in range(8)])  # [8,3]
    return torch.cdist(_centres(dataset), corners).amax(1)


def box_reach(dataset, aabb) -> float:
    """How far (world units) the farthest corner of ``aabb [6]`` lies from any camera: an
    unbounded teacher's rays step evenly in disparity only past it, so inside the box they keep
    their cone steps."""
    return float(corner_distance(dataset, aabb).max())


def unbounded_reason(dataset, aabb) -> str | None:
    """Why ``dataset`` looks unbounded for a model in box ``aabb [6]`` (see the module docstring),
    or ``None``. Forward-facing captures never do: NDC already maps their infinite frustum."""
    if dataset.forward_facing:
        return None
    if dataset.aabb_scale is not None and dataset.aabb_scale > 1:
        return (f"its Instant-NGP aabb_scale is {dataset.aabb_scale:g}: the scene reaches "
                f"{dataset.aabb_scale:g} times past its unit cube")
    box = torch.as_tensor(aabb, dtype=torch.float64).cpu()
    centres = _centres(dataset)
    inside = ((centres >= box[:3]) & (centres <= box[3:])).all(1).double().mean().item()
    if inside >= INSIDE_FRACTION:
        return f"{inside:.0%} of its cameras sit inside the scene box and look outward"
    if dataset.far is not None:
        reach = box_reach(dataset, box)
        if dataset.far > FAR_PAST_BOX * reach:
            return (f"its far plane ({dataset.far:g}) lies far past the scene box (whose farthest corner is "
                    f"{reach:.3g} from the cameras)")
    return None


def far_plane(dataset, aabb) -> float:
    """How far (world units) a ray of an unbounded model of ``dataset`` reaches, whose inner box is
    ``aabb [6]``: the dataset's far plane; else the corners of Instant-NGP's ``aabb_scale`` cube
    (``dataset.aabb``); else ``FAR_BOX_DIAGONALS`` diagonals of ``aabb`` past the farthest camera."""
    if dataset.far is not None:
        return float(dataset.far)
    if dataset.aabb_scale is not None and dataset.aabb is not None:
        return box_reach(dataset, dataset.aabb)
    box = torch.as_tensor(aabb, dtype=torch.float64).cpu()
    diagonal = float((box[3:] - box[:3]).norm())
    return box_reach(dataset, box) + FAR_BOX_DIAGONALS * diagonal


def inner_box(dataset) -> torch.Tensor | None:
    """The box an unbounded model keeps uncontracted: the dataset's ``aabb``, or for Instant-NGP's
    ``aabb_scale`` the unit cube in the middle of the cube it describes (``None`` without a box)."""
    if dataset.aabb is None:
        return None
    aabb = dataset.aabb.detach().cpu().double()
    if dataset.aabb_scale is None or dataset.aabb_scale <= 1:
        return aabb.float()
    centre, half = (aabb[:3] + aabb[3:]) / 2, (aabb[3:] - aabb[:3]) / 2 / dataset.aabb_scale
    return torch.cat([centre - half, centre + half]).float()
