"""Rendered frames to disk: a GIF, an MP4 or a folder of PNGs."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import UserError


def write_frames(frames: torch.Tensor, out: Path, fps: float) -> None:
    """``frames [N,H,W,3]`` in [0,1] to a GIF, an MP4 or a folder of PNGs."""
    import imageio.v2 as imageio
    import numpy as np

    pixels = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    suffix = out.suffix.lower()
    if suffix == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(out, list(pixels), duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserError("writing .mp4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                            "or write a .gif or a folder of PNGs") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        # H.264 in yuv420p needs even sizes: repeat the last row / column rather than let ffmpeg resample
        height, width = pixels.shape[1:3]
        pixels = np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        imageio.mimsave(out, list(pixels), fps=fps, macro_block_size=2)
    elif suffix:
        raise UserError(f"--out {out}: unknown format {suffix!r}; use .gif, .mp4 or a folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(pixels):
            imageio.imwrite(out / f"{index:04d}.png", image)
