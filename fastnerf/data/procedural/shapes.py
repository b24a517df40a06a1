"""Analytic surfaces for the procedural ray tracer.

Every shape answers ``intersect(origins [R,3], directions [R,3] (unit), t_min) ->
(t [R], normals [R,3])``: the nearest hit with ``t > t_min`` (``inf`` where the ray misses) and
the geometric normal there (either side; the shader turns it to face the viewer). Surfaces are
two-sided patches, so open shapes (a bowl, a cup, a tube) show their inside.
"""

from __future__ import annotations

import math

import torch

INF = float("inf")


def _vec(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of ``[R,3]`` (or ``[3]``) tensors -> ``[R]`` (faster than a sum over 3)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _max3(values: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.maximum(values[:, 0], values[:, 1]), values[:, 2])


def _min3(values: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.minimum(values[:, 0], values[:, 1]), values[:, 2])


def _pick_first(t0, t1, valid0, valid1):
    """Nearer valid root of a quadric: ``t0 <= t1``, each with its own validity ``[R]``."""
    inf = torch.full_like(t0, INF)
    return torch.where(valid0, t0, torch.where(valid1, t1, inf))


class Shape:
    def intersect(self, origins, directions, t_min: float):
        raise NotImplementedError

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low [3], high [3])`` of a box holding the whole shape (for culling rays)."""
        raise NotImplementedError


def rays_near_box(origins, inverse_directions, low, high, t_max) -> torch.Tensor:
    """``[R]`` bool: rays ``origins [R,3]`` (``inverse_directions = 1 / directions``) that enter
    the box ``low..high`` before ``t_max [R]``. Conservative: the exact test comes after."""
    t_low = (low - origins) * inverse_directions
    t_high = (high - origins) * inverse_directions
    t_enter = _max3(torch.minimum(t_low, t_high))
    t_exit = _min3(torch.maximum(t_low, t_high))
    return (t_exit >= t_enter.clamp_min(0)) & (t_enter <= t_max)


class Sphere(Shape):
    """Sphere of ``radius`` about ``centre``; with ``cut_normal`` only the part where
    ``(p - centre) . cut_normal <= cut_height * radius`` remains (an open bowl)."""

    def __init__(self, centre, radius: float, cut_normal=None, cut_height: float = 0.0):
        self.centre, self.radius = _vec(centre), float(radius)
        self.cut_normal = None if cut_normal is None else _vec(cut_normal) / _vec(cut_normal).norm()
        self.cut_height = cut_height

    def intersect(self, origins, directions, t_min):
        offset = origins - self.centre  # [R,3]
        half_b = _dot(offset, directions)
        discriminant = half_b**2 - (_dot(offset, offset) - self.radius**2)
        root = torch.sqrt(discriminant.clamp_min(0))
        hit = discriminant >= 0
        t0, t1 = -half_b - root, -half_b + root
        valid0, valid1 = hit & (t0 > t_min), hit & (t1 > t_min)
        if self.cut_normal is not None:
            limit = self.cut_height * self.radius
            valid0 &= _dot(offset + t0[:, None] * directions, self.cut_normal) <= limit
            valid1 &= _dot(offset + t1[:, None] * directions, self.cut_normal) <= limit
        t = _pick_first(t0, t1, valid0, valid1)
        normals = (offset + torch.nan_to_num(t, posinf=0.0)[:, None] * directions) / self.radius
        return t, normals

    def bounds(self):
        low, high = self.centre - self.radius, self.centre + self.radius
        if self.cut_normal is not None and self.cut_normal.abs().max() == 1:  # axis-aligned cut: tighter box
            axis = int(self.cut_normal.abs().argmax())
            limit = self.centre[axis] + self.cut_normal[axis] * self.cut_height * self.radius
            if self.cut_normal[axis] > 0:
                high[axis] = torch.minimum(high[axis], limit)
            else:
                low[axis] = torch.maximum(low[axis], limit)
        return low, high


class Disk(Shape):
    """Flat disk (or annulus, with ``inner_radius``) through ``centre`` facing ``normal``."""

    def __init__(self, centre, normal, radius: float, inner_radius: float = 0.0):
        self.centre, self.normal = _vec(centre), _vec(normal) / _vec(normal).norm()
        self.radius, self.inner_radius = float(radius), float(inner_radius)

    def intersect(self, origins, directions, t_min):
        denominator = _dot(directions, self.normal)
        safe = torch.where(denominator.abs() < 1e-9, torch.full_like(denominator, 1e-9), denominator)
        t = _dot(self.centre - origins, self.normal) / safe
        distance = (origins + t[:, None] * directions - self.centre).norm(dim=-1)
        valid = (denominator.abs() >= 1e-9) & (t > t_min) & (distance <= self.radius) & (distance >= self.inner_radius)
        t = torch.where(valid, t, torch.full_like(t, INF))
        return t, self.normal.expand_as(origins)

    def bounds(self):
        extent = self.radius * torch.sqrt((1 - self.normal**2).clamp_min(0))
        return self.centre - extent - 1e-4, self.centre + extent + 1e-4


class Tube(Shape):
    """Open cylinder wall: ``radius`` about the axis from ``base`` along unit ``axis`` for ``length``."""

    def __init__(self, base, axis, radius: float, length: float):
        self.base, self.axis = _vec(base), _vec(axis) / _vec(axis).norm()
        self.radius, self.length = float(radius), float(length)

    def intersect(self, origins, directions, t_min):
        offset = origins - self.base
        along_o, along_d = _dot(offset, self.axis), _dot(directions, self.axis)
        offset_perp = offset - along_o[:, None] * self.axis
        dir_perp = directions - along_d[:, None] * self.axis
        a = _dot(dir_perp, dir_perp)
        half_b = _dot(offset_perp, dir_perp)
        discriminant = half_b**2 - a * (_dot(offset_perp, offset_perp) - self.radius**2)
        hit = (discriminant >= 0) & (a > 1e-12)
        safe_a = torch.where(a > 1e-12, a, torch.ones_like(a))
        root = torch.sqrt(discriminant.clamp_min(0))
        t0, t1 = (-half_b - root) / safe_a, (-half_b + root) / safe_a
        height0, height1 = along_o + t0 * along_d, along_o + t1 * along_d
        valid0 = hit & (t0 > t_min) & (height0 >= 0) & (height0 <= self.length)
        valid1 = hit & (t1 > t_min) & (height1 >= 0) & (height1 <= self.length)
        t = _pick_first(t0, t1, valid0, valid1)
        finite_t = torch.nan_to_num(t, posinf=0.0)[:, None]
        normals = (offset_perp + finite_t * dir_perp) / self.radius
        return t, normals

    def bounds(self):
        ends = torch.stack([self.base, self.base + self.length * self.axis])
        extent = self.radius * torch.sqrt((1 - self.axis**2).clamp_min(0))
        return ends.amin(0) - extent - 1e-4, ends.amax(0) + extent + 1e-4


class Box(Shape):
    """Solid box of ``half_size`` about ``centre``, turned by ``yaw_deg`` about +Z."""

    def __init__(self, centre, half_size, yaw_deg: float = 0.0):
        self.centre, self.half_size = _vec(centre), _vec(half_size)
        c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        self.rotation = _vec([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # local -> world

    def intersect(self, origins, directions, t_min):
        local_o = (origins - self.centre) @ self.rotation  # R^T (o - c), row-vector form
        local_d = directions @ self.rotation
        safe_d = torch.where(local_d.abs() < 1e-12, torch.full_like(local_d, 1e-12), local_d)
        t_low, t_high = (-self.half_size - local_o) / safe_d, (self.half_size - local_o) / safe_d
        t_enter_axes, t_exit_axes = torch.minimum(t_low, t_high), torch.maximum(t_low, t_high)
        t_enter, enter_axis = t_enter_axes.max(-1)
        t_exit, exit_axis = t_exit_axes.min(-1)
        hit = t_exit >= torch.clamp_min(t_enter, t_min)
        from_outside = t_enter > t_min
        t = torch.where(hit, torch.where(from_outside, t_enter, t_exit), torch.full_like(t_enter, INF))
        t = torch.where(t > t_min, t, torch.full_like(t, INF))
        axis = torch.where(from_outside, enter_axis, exit_axis)
        local_n = torch.nn.functional.one_hot(axis, 3).float() * -torch.sign(local_d)
        return t, local_n @ self.rotation.T

    def bounds(self):
        extent = self.rotation.abs() @ self.half_size
        return self.centre - extent - 1e-4, self.centre + extent + 1e-4


class Union(Shape):
    """Several surfaces as one shape (a cup is walls, floor and rim)."""

    def __init__(self, parts: list[Shape]):
        self.parts = parts

    def intersect(self, origins, directions, t_min):
        best_t, best_n = self.parts[0].intersect(origins, directions, t_min)
        for part in self.parts[1:]:
            t, normals = part.intersect(origins, directions, t_min)
            closer = t < best_t
            best_t = torch.where(closer, t, best_t)
            best_n = torch.where(closer[:, None], normals, best_n)
        return best_t, best_n

    def bounds(self):
        lows, highs = zip(*(part.bounds() for part in self.parts))
        return torch.stack(lows).amin(0), torch.stack(highs).amax(0)


def cylinder(base, axis, radius: float, length: float) -> Union:
    """Closed cylinder (a rod, a plinth): wall plus both end caps."""
    axis_vec = _vec(axis) / _vec(axis).norm()
    top = _vec(base) + length * axis_vec
    return Union([Tube(base, axis_vec, radius, length), Disk(base, axis_vec, radius), Disk(top, axis_vec, radius)])


def cup(base, radius: float, height: float, wall: float) -> Union:
    """Upright open cup (concave): outer and inner walls, outer base, inner floor, rim annulus."""
    base_vec, up = _vec(base), _vec([0.0, 0.0, 1.0])
    return Union([
        Tube(base_vec, up, radius, height),
        Tube(base_vec + wall * up, up, radius - wall, height - wall),
        Disk(base_vec, up, radius),
        Disk(base_vec + wall * up, up, radius - wall),
        Disk(base_vec + height * up, up, radius, inner_radius=radius - wall),
    ])


def bowl(centre, radius: float, rim_height: float = 0.0, wall: float = 0.04) -> Union:
    """Open spherical dish below ``centre`` (concave), cut at ``rim_height * radius``, with walls
    ``wall`` thick: outer and inner spheres joined by a flat rim annulus.

    Every built-in shape is closed (has thickness): a radiance field holds one colour per point
    and view, so a zero-thickness shell whose two faces are shaded differently cannot be learned.
    """
    centre_vec, up = _vec(centre), _vec([0.0, 0.0, 1.0])
    inner = radius - wall
    cut = rim_height * radius  # height of the rim plane above the centre
    return Union([
        Sphere(centre_vec, radius, cut_normal=up, cut_height=rim_height),
        Sphere(centre_vec, inner, cut_normal=up, cut_height=cut / inner),
        Disk(centre_vec + cut * up, up, math.sqrt(radius**2 - cut**2), inner_radius=math.sqrt(max(inner**2 - cut**2, 0.0))),
    ])


def pipe(base, axis, radius: float, length: float, wall: float) -> Union:
    """Hollow tube with walls ``wall`` thick: outer and inner walls and an annulus at each end."""
    axis_vec = _vec(axis) / _vec(axis).norm()
    top = _vec(base) + length * axis_vec
    inner = radius - wall
    return Union([Tube(base, axis_vec, radius, length), Tube(base, axis_vec, inner, length),
                  Disk(base, axis_vec, radius, inner_radius=inner), Disk(top, axis_vec, radius, inner_radius=inner)])
