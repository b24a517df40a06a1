"""Reference volume compositing over packed samples (the spec of fastnerf.ops.composite)."""

import torch

from .packing import exclusive_segment_cumsum, unpack


def composite(
    sigmas: torch.Tensor,  # [S] density per sample
    values: torch.Tensor,  # [S, C] colour or features per sample
    t_starts: torch.Tensor,  # [S]
    t_ends: torch.Tensor,  # [S]
    packed_info: torch.Tensor,  # [N, 2] (start, count) per ray
):
    """Returns (out [N, C], opacity [N], depth [N], weights [S]).

    alpha_i = 1 - exp(-sigma_i dt_i), T_i = prod_{j<i}(1 - alpha_j) = exp(-sum_{j<i} sigma_j dt_j),
    w_i = T_i alpha_i. Samples that no ray covers get weight 0.
    """
    n_rays, channels = packed_info.shape[0], values.shape[1]
    sample_ids, ray_ids, first = unpack(packed_info)
    sigma_dt = sigmas[sample_ids] * (t_ends[sample_ids] - t_starts[sample_ids])
    optical_depth = exclusive_segment_cumsum(sigma_dt, ray_ids, first)
    alpha = -torch.expm1(-sigma_dt)
    w = torch.exp(-optical_depth) * alpha
    mids = 0.5 * (t_starts[sample_ids] + t_ends[sample_ids])

    out = values.new_zeros(n_rays, channels).index_add(0, ray_ids, w[:, None] * values[sample_ids])
    opacity = sigmas.new_zeros(n_rays).index_add(0, ray_ids, w)
    depth = sigmas.new_zeros(n_rays).index_add(0, ray_ids, w * mids)
    weights = sigmas.new_zeros(sigmas.shape[0]).index_put((sample_ids,), w)
    return out, opacity, depth, weights
