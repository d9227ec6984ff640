"""The report's figures, drawn with NumPy and Pillow, as PNG data URIs or inline SVG.

Why not matplotlib or :mod:`nilearn.plotting`: on this project's 2-core benchmark machine a
matplotlib axes costs 50-70 ms to make and as much to draw (ticks dominate), and importing
``nilearn.plotting`` takes 4 s, more than a whole page. A brain panel is an RGB array
(gray background, a blue-white-red overlay where the map is not 0, a one-voxel outline)
enlarged by whole pixels and written as a PNG; a matrix is such a PNG inside a small SVG
that adds its row and column names; the motion trace is an SVG polyline. A map is shown at
most :data:`MAX_DISPLAY_VOXELS` voxels along a panel's longest side (downsampled by
striding), which is what a 200-pixel panel can show.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape

import numpy as np
from PIL import Image

#: Longest side, in voxels, of a brain panel as drawn.
MAX_DISPLAY_VOXELS = 96
#: Pixels of a panel's longest side (whole-pixel enlargement up to this).
PANEL_PIXELS = 220
_RED, _BLUE, _WHITE = np.array([178, 24, 43]), np.array([33, 102, 172]), np.array([247] * 3)
_OUTLINE = np.array([220, 30, 30], dtype=np.uint8)  # a mask on the mean image
_SILHOUETTE = np.array([90, 90, 90], dtype=np.uint8)  # a glass brain's edge


def png_uri(rgb: np.ndarray) -> str:
    """An (h, w, 3) uint8 array as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    # zlib level 1: the same pixels in half the time of Pillow's default 6, ~1.5x the bytes
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    image.save(buffer, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Blue (-limit) - white (0) - red (+limit) colours of ``values``, (..., 3) uint8."""
    t = np.clip(np.nan_to_num(values / (limit if limit > 0 else 1.0)), -1, 1)[..., None]
    colour = np.where(t >= 0, _WHITE + t * (_RED - _WHITE), _WHITE - t * (_BLUE - _WHITE))
    return colour.astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    """Gray levels of ``values`` between their 2nd and 98th percentiles, (..., 3) uint8."""
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
    scaled = np.clip((values - low) / (high - low if high > low else 1.0), 0, 1)
    return np.repeat((255 * np.nan_to_num(scaled))[..., None], 3, axis=-1).astype(np.uint8)


def _edge(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that touch a pixel outside it (a one-pixel outline)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    neighbours = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inner & ~neighbours


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    factor = max(1, PANEL_PIXELS // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def _row(panels: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels side by side on white, bottom-aligned."""
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for panel in panels:
        canvas[height - panel.shape[0] :, x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    return canvas


def _stride(shape: tuple[int, ...]) -> int:
    return max(1, int(np.ceil(max(shape) / MAX_DISPLAY_VOXELS)))


def _plane(volume: np.ndarray, axis: int, index: int | None, step: int) -> np.ndarray:
    """A slice (``index``) or, with None, the volume's signed maximum-magnitude projection,
    oriented for display: first remaining axis left to right, the second upwards."""
    if index is None:
        argmax = np.expand_dims(np.abs(volume).argmax(axis=axis), axis)
        plane = np.take_along_axis(volume, argmax, axis=axis).squeeze(axis)
    else:
        plane = np.take(volume, index, axis=axis)
    return np.rot90(plane[::step, ::step])


def _compose(background: np.ndarray, overlay: np.ndarray | None, limit: float,
             outline: np.ndarray | None, edge: np.ndarray = _OUTLINE) -> np.ndarray:  # fmt: skip
    rgb = gray(background) if background.dtype != np.uint8 else background
    if overlay is not None:
        shown = overlay != 0
        rgb = np.where(shown[..., None], diverging(overlay, limit), rgb)
    if outline is not None:
        rgb = np.where(_edge(outline)[..., None], edge, rgb)
    return _enlarge(rgb)


def _limit(stat: np.ndarray) -> float:
    peak = float(np.nanmax(np.abs(stat))) if stat.size else 0.0
    return peak if peak > 0 else 1.0


def _centre(shape, centre):
    return tuple(n // 2 for n in shape) if centre is None else centre


def mask_outline_figure(mean: np.ndarray, mask: np.ndarray) -> str:
    """The mask's outline (red) on three orthogonal slices of the mean image."""
    step = _stride(mean.shape)
    inside = np.argwhere(mask)
    centre = _centre(mean.shape, tuple(int(c) for c in inside.mean(axis=0)) if len(inside)
                     else None)  # fmt: skip
    panels = [
        _compose(_plane(mean, a, centre[a], step), None, 1.0, _plane(mask, a, centre[a], step))
        for a in range(3)
    ]
    return png_uri(_row(panels))


def slices_figure(stat: np.ndarray, background: np.ndarray, centre) -> str:
    """The thresholded map (0: not shown) over the background, three slices at ``centre``."""
    step, limit, centre = _stride(stat.shape), _limit(stat), _centre(stat.shape, centre)
    panels = [
        _compose(_plane(background, a, centre[a], step), _plane(stat, a, centre[a], step),
                 limit, None)
        for a in range(3)
    ]  # fmt: skip
    return png_uri(_row(panels))


def glass_brain_figure(stat: np.ndarray, brain: np.ndarray) -> str:
    """A glass brain: signed maximum-intensity projections inside the brain's outline."""
    step, limit = _stride(stat.shape), _limit(stat)
    white = np.full(stat.shape, 255, dtype=np.uint8)
    panels = []
    for axis in range(3):
        silhouette = np.rot90(brain.any(axis=axis)[::step, ::step])
        back = np.repeat(_plane(white, axis, 0, step)[..., None], 3, axis=-1)
        panels.append(
            _compose(back, _plane(stat, axis, None, step), limit, silhouette, _SILHOUETTE)
        )
    return png_uri(_row(panels))


def _matrix_rgb(values: np.ndarray, *, symmetric: bool) -> np.ndarray:
    if symmetric:
        return diverging(values, _limit(values))
    scale = np.abs(values).max(axis=0)
    return gray(values / np.where(scale > 0, scale, 1))


def matrix_svg(
    values: np.ndarray, rows: Sequence[str], columns: Sequence[str], *,
    cell: tuple[int, int] = (16, 16), symmetric: bool = True, annotate: bool = False,
    label: str = "",
) -> str:  # fmt: skip
    """An inline SVG: the matrix as pixels (diverging, or gray per column) with its names.

    Cells are ``cell`` (width, height) pixels; with ``annotate`` each cell shows its value.
    """
    values = np.asarray(values, dtype=float).reshape(len(rows), len(columns))
    cw, ch = cell
    left = 8 + 6 * max((len(r) for r in rows), default=0)
    top = 8 + 6 * max((len(c) for c in columns), default=0)
    width, height = left + cw * len(columns) + 8, top + ch * len(rows) + 8
    rgb = _matrix_rgb(values, symmetric=symmetric) if values.size else np.zeros((1, 1, 3))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" font-family="sans-serif" font-size="10">',
        f'<image x="{left}" y="{top}" width="{cw * len(columns)}" height="{ch * len(rows)}" '
        f'preserveAspectRatio="none" style="image-rendering:pixelated" '
        f'href="{png_uri(rgb)}"/>',
    ]
    for i, name in enumerate(rows):
        parts.append(f'<text x="{left - 4}" y="{top + ch * i + ch * 0.7:.1f}" '
                     f'text-anchor="end">{escape(str(name))}</text>')  # fmt: skip
    for j, name in enumerate(columns):
        x = left + cw * j + cw * 0.7
        parts.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-90)">'
                     f"{escape(str(name))}</text>")  # fmt: skip
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            parts.append(f'<text x="{left + cw * (j + 0.5):.1f}" y="{top + ch * (i + 0.65):.1f}" '
                         f'text-anchor="middle" font-size="8">{value:.2g}</text>')  # fmt: skip
    return "".join(parts) + "</svg>"


def trace_svg(values: np.ndarray, marked: np.ndarray, *, step_s: float, line: float,
              label: str = "") -> str:  # fmt: skip
    """An inline SVG trace (framewise displacement): ``marked`` samples shaded red, a
    dashed line at ``line``, the time axis in seconds."""
    width, height, left, bottom = 760, 170, 46, 28
    plot_w, plot_h = width - left - 10, height - bottom - 12
    n = len(values)
    top_value = max(float(np.nanmax(values)) if n else 0.0, line) * 1.1 or 1.0
    x = left + plot_w * (np.arange(n) + 0.5) / max(n, 1)
    y = 12 + plot_h * (1 - np.nan_to_num(values) / top_value)
    box = plot_w / max(n, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" font-family="sans-serif" font-size="10">'
    ]
    parts += [
        f'<rect x="{x[i] - box / 2:.1f}" y="12" width="{box:.1f}" height="{plot_h}" '
        'fill="#d62728" fill-opacity="0.35"/>'
        for i in np.flatnonzero(marked)
    ]
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
    dashed = 12 + plot_h * (1 - line / top_value)
    parts += [
        f'<polyline fill="none" stroke="black" stroke-width="1" points="{points}"/>',
        f'<line x1="{left}" x2="{left + plot_w}" y1="{dashed:.1f}" y2="{dashed:.1f}" '
        'stroke="gray" stroke-dasharray="4 3"/>',
        f'<rect x="{left}" y="12" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>',
        f'<text x="{left - 4}" y="16" text-anchor="end">{top_value:.2g}</text>',
        f'<text x="{left - 4}" y="{12 + plot_h}" text-anchor="end">0</text>',
        f'<text x="{left - 4}" y="{dashed + 3:.1f}" text-anchor="end">{line:g}</text>',
        f'<text x="{left}" y="{height - 8}">0 s</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">{n * step_s:g} s</text>',
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{escape(label)}'
        "</text>",
    ]
    return "".join(parts) + "</svg>"


def design_svg(values: np.ndarray, columns: Sequence[str], label: str = "") -> str:
    """A design matrix (rows: volumes, each column scaled to its largest magnitude)."""
    n = len(values)
    return matrix_svg(values, [""] * n, columns, cell=(14, max(1, 300 // max(n, 1))),
                      symmetric=False, label=label)  # fmt: skip


def _surface_view(coords: np.ndarray, values: np.ndarray, limit: float, toward: float,
                  height: int, relief: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """One view of a hemisphere seen along x from ``toward`` (-1: from the left, +1: from
    the right): each vertex splatted over 3 x 3 pixels, the nearest vertex per pixel kept
    (a z-buffer), gray where the map is 0 (lighter nearer the viewer, and with ``relief``,
    a sulcal depth positive on gyri, lighter on gyri and darker in sulci)."""
    y, z, depth = coords[:, 1], coords[:, 2], -toward * coords[:, 0]
    scale = (height - 3) / max(np.ptp(z), 1e-6)
    cols = ((y - y.min()) * scale).astype(int)
    if toward > 0:  # seen from the right, anterior is on the right
        cols = cols.max() - cols
    rows = ((z.max() - z) * scale).astype(int)
    width = int(cols.max()) + 3
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    near = (depth.max() - depth) / max(np.ptp(depth), 1e-6)  # 1: nearest, for shading
    light = 130 + 100 * near + (0 if relief is None else 45 * np.clip(relief, -1, 1))
    shade = np.repeat(np.clip(light, 0, 255)[:, None], 3, axis=1).astype(np.uint8)
    colour = np.where((values != 0)[:, None], diverging(values, limit), shade)
    offsets = [(dr, dc) for dr in (0, 1, 2) for dc in (0, 1, 2)]
    pixel = np.concatenate([(rows + dr) * width + cols + dc for dr, dc in offsets])
    vertex = np.tile(np.arange(len(coords)), len(offsets))
    order = np.lexsort((depth[vertex], pixel))  # within each pixel, the nearest first
    first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]]
    canvas.reshape(-1, 3)[pixel[first]] = colour[vertex[first]]
    return canvas


def surface_figure(hemispheres: Sequence[tuple]) -> str:
    """Lateral and medial views of each hemisphere ``(hemi, coordinates, values[, relief])``,
    values 0 where the thresholded map shows nothing (``relief``: see :func:`_surface_view`)."""
    shown = [h[2] for h in hemispheres]
    limit = _limit(np.concatenate(shown)) if shown else 1.0
    panels = []
    for hemi, coords, values, *relief in hemispheres:
        outward = -1.0 if hemi == "L" else 1.0
        views = (outward, -outward) if hemi == "L" else (-outward, outward)
        panels += [_surface_view(coords, values, limit, toward, PANEL_PIXELS // 2 + 20,
                                 relief[0] if relief else None) for toward in views]  # fmt: skip
    return png_uri(_row(panels))
