"""Box coders of Oriented R-CNN: midpoint offsets (RPN, anchors -> rotated boxes) and rotated deltas (RoI head).

Both follow OBBDetection (`mmdet/core/bbox/coder/obb/midpoint_offset_coder.py` and
`obb2obb_delta_xywht_coder.py`) in the angle convention of `s5cli.geometry.boxes`, so deltas
predicted by official weights decode to the same boxes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from s5cli.geometry.boxes import (
    rboxes_to_corners,
    rboxes_to_hboxes,
    rectangles_to_rboxes,
    regularize_rboxes,
    wrap_angle,
)

WH_RATIO_CLIP = 16 / 1000  # mmdet: log-size deltas are clamped to |log(16/1000)|


def _hbox_parts(hboxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x1, y1, x2, y2 = hboxes.unbind(-1)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


class MidpointOffsetCoder:
    """(dx, dy, dw, dh, da, db) of a rotated box against a horizontal reference box (anchor).

    The rotated box is described by its enclosing horizontal box (dx..dh, as Faster R-CNN) plus
    the offsets of its top vertex along the top side (da) and of its right vertex along the
    right side (db), relative to the centre; decoding mirrors these two vertices through the
    centre and stretches the diagonals to equal length, which makes the quadrilateral a rectangle.
    """

    def __init__(
        self,
        means: tuple[float, ...] = (0.0,) * 6,
        stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.5, 0.5),  # Oriented R-CNN RPN config
    ) -> None:
        self.means, self.stds = means, stds

    def encode(self, hboxes: Tensor, rboxes: Tensor) -> Tensor:
        """Normalised deltas (N, 6) taking reference boxes (N, 4) to target rotated boxes (N, 5)."""
        px, py, pw, ph = _hbox_parts(hboxes)
        gx, gy, gw, gh = _hbox_parts(rboxes_to_hboxes(rboxes))
        corners = rboxes_to_corners(rboxes)  # (N, 4, 2), clockwise on screen
        xs, ys = corners[..., 0], corners[..., 1]
        # Top vertex: least y, ties going to the rightmost corner; right vertex: the next corner
        # clockwise. OBBDetection treats y within 0.1 px as a tie and takes the greatest x for the
        # right vertex; on thin, nearly level boxes that can pick the corner opposite the top one
        # (the target then decodes to a degenerate box) or snap a tilted box to its enclosing box.
        # Taking the neighbour makes either choice of a tied top vertex decode exactly.
        near_top = (ys - ys.amin(1, keepdim=True)).abs() <= 1e-3
        k = torch.where(near_top, xs, torch.full_like(xs, float("-inf"))).argmax(1, keepdim=True)
        top_x = xs.gather(1, k)[:, 0]
        right_y = ys.gather(1, (k + 1) % 4)[:, 0]
        deltas = torch.stack(
            [
                (gx - px) / pw,
                (gy - py) / ph,
                torch.log(gw / pw),
                torch.log(gh / ph),
                (top_x - gx) / gw,
                (right_y - gy) / gh,
            ],
            dim=-1,
        )
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, hboxes: Tensor, deltas: Tensor) -> Tensor:
        """Rotated boxes (N, 5) from reference boxes (N, 4) and normalised deltas (N, 6)."""
        d = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        max_ratio = abs(math.log(WH_RATIO_CLIP))
        px, py, pw, ph = _hbox_parts(hboxes)
        gw = pw * d[:, 2].clamp(-max_ratio, max_ratio).exp()
        gh = ph * d[:, 3].clamp(-max_ratio, max_ratio).exp()
        gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
        da, db = d[:, 4].clamp(-0.5, 0.5) * gw, d[:, 5].clamp(-0.5, 0.5) * gh
        # Top, right, bottom, left vertices relative to the centre (the last two mirror the first two).
        rel = torch.stack(
            [
                torch.stack([da, -gh / 2], -1),
                torch.stack([gw / 2, db], -1),
                torch.stack([-da, gh / 2], -1),
                torch.stack([-gw / 2, -db], -1),
            ],
            dim=1,
        )  # (N, 4, 2)
        radius = rel.norm(dim=-1)
        rel = rel * (radius.amax(1, keepdim=True) / radius.clamp_min(1e-12))[..., None]
        centre = torch.stack([gx, gy], -1)[:, None, :]
        return rectangles_to_rboxes(rel + centre)


class DeltaXYWHTCoder:
    """(dx, dy, dw, dh, dtheta) of a rotated box against a rotated proposal, in the proposal's frame.

    Of the two descriptions of the target (w, h, a) and (h, w, a + pi/2) the encoder picks the one
    whose angle is closer to the proposal's, so the angle delta stays within [-pi/4, pi/4].
    """

    def __init__(
        self,
        means: tuple[float, ...] = (0.0,) * 5,
        stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2, 0.1),  # Oriented R-CNN RoI head config
    ) -> None:
        self.means, self.stds = means, stds

    def encode(self, proposals: Tensor, rboxes: Tensor) -> Tensor:
        """Normalised deltas (N, 5) taking proposals (N, 5) to target rotated boxes (N, 5)."""
        px, py, pw, ph, pa = proposals.unbind(-1)
        gx, gy, gw, gh, ga = rboxes.unbind(-1)
        d1 = wrap_angle(ga - pa)
        d2 = wrap_angle(ga - pa + math.pi / 2)
        first = d1.abs() < d2.abs()
        tw, th, dt = torch.where(first, gw, gh), torch.where(first, gh, gw), torch.where(first, d1, d2)
        cos, sin = torch.cos(pa), torch.sin(pa)
        ex, ey = gx - px, gy - py
        dx = (cos * ex - sin * ey) / pw  # along the proposal's w side (cos a, -sin a)
        dy = (sin * ex + cos * ey) / ph  # along its h side (sin a, cos a)
        deltas = torch.stack([dx, dy, torch.log(tw / pw), torch.log(th / ph), dt], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, proposals: Tensor, deltas: Tensor) -> Tensor:
        """Rotated boxes (N, 5), regularised, from proposals (N, 5) and normalised deltas (N, 5)."""
        d = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        max_ratio = abs(math.log(WH_RATIO_CLIP))
        px, py, pw, ph, pa = proposals.unbind(-1)
        cos, sin = torch.cos(pa), torch.sin(pa)
        ux, uy = d[:, 0] * pw, d[:, 1] * ph
        gx = px + ux * cos + uy * sin
        gy = py - ux * sin + uy * cos
        gw = pw * d[:, 2].clamp(-max_ratio, max_ratio).exp()
        gh = ph * d[:, 3].clamp(-max_ratio, max_ratio).exp()
        return regularize_rboxes(torch.stack([gx, gy, gw, gh, pa + d[:, 4]], dim=-1))
