"""Helpers for the packed-sample layout shared by the references (see docs/architecture.md, public contracts)."""

import torch


def unpack(packed_info: torch.Tensor):
    """Sample ids and their ray ids for every sample some ray covers, ray-major.

    packed_info: [N, 2] (start, count), int32 or int64.
    Returns (sample_ids [K] long, ray_ids [K] long, first [N] long) where K = sum(count) and
    first[r] is the position in the K list where ray r's samples begin.
    """
    starts = packed_info[:, 0].long()
    counts = packed_info[:, 1].long()
    n_rays = packed_info.shape[0]
    device = packed_info.device
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    position_in_ray = torch.arange(ray_ids.numel(), device=device) - first[ray_ids]
    sample_ids = starts[ray_ids] + position_in_ray
    return sample_ids, ray_ids, first


def exclusive_segment_cumsum(x: torch.Tensor, ray_ids: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Per-ray exclusive cumulative sum of x [K] (ray-major, as from unpack).

    Summed in float64 over the whole pack and differenced per ray: exact enough for float32
    inputs at any pack size, and differentiable.
    """
    inclusive = torch.cumsum(x.double(), 0)
    exclusive = inclusive - x.double()
    ray_offset = exclusive[first.clamp(max=max(x.numel() - 1, 0))] if x.numel() else exclusive
    return (exclusive - ray_offset[ray_ids]).to(x.dtype)
