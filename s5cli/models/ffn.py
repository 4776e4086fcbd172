"""The two FFNs a ViT block can hold: dense, and MoE-MDF's partial-output expert FFN.

Both take `(x, expert)` so the block never branches on which one it holds (timm's injected-layer
habit). The expert index comes from the dataset name, resolved once by the network (hard routing,
no gate: docs/method.md, MoE-MDF; official `FFNMOE` in RS_Finetune/.../vit_moe.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn


class DenseFFN(Mlp):
    """fc1 (D -> 4D) -> GELU -> fc2 (4D -> D); the route is ignored."""

    def forward(self, x: torch.Tensor, expert: int | None = None) -> torch.Tensor:
        """Apply the FFN to tokens (B, N, D)."""
        return super().forward(x)


class PartialExpertFFN(nn.Module):
    """Shared fc1 and shared fc2 for the first D-P outputs; one expert fc2 per dataset for the last P.

    Args:
        dim: token width D.
        hidden: fc1 width (4D).
        expert_width: P, the outputs each expert produces (256 in S5 for every size).
        num_experts: one per dataset head.
    """

    def __init__(self, dim: int, hidden: int, expert_width: int, num_experts: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim - expert_width)  # shared rows [0, D-P)
        self.experts = nn.ModuleList(nn.Linear(hidden, expert_width) for _ in range(num_experts))
        self._merged: tuple[tuple, torch.Tensor, torch.Tensor] | None = None  # eval-mode cache of one expert's fc2

    def merged_fc2(self, expert: int) -> tuple[torch.Tensor, torch.Tensor]:
        """fc2 of one dataset as a single (D, 4D) weight and (D,) bias: shared rows, then the expert's.

        One matmul instead of two plus an output concatenation (benchmarks/moe_overhead.py). Without
        autograd (eval, inference) the merged copy is kept, for one expert at a time, until the weights
        change (version counters) or the module goes back to training; with autograd it is rebuilt each call.
        """
        parts = (self.fc2.weight, self.experts[expert].weight, self.fc2.bias, self.experts[expert].bias)
        if torch.is_grad_enabled():
            return torch.cat(parts[:2]), torch.cat(parts[2:])
        key = (expert, *(p._version for p in parts), *(p.data_ptr() for p in parts), parts[0].dtype)
        if self._merged is None or self._merged[0] != key:
            self._merged = (key, torch.cat(parts[:2]).detach(), torch.cat(parts[2:]).detach())
        return self._merged[1], self._merged[2]

    def train(self, mode: bool = True) -> PartialExpertFFN:
        """Set the mode; training drops the eval-mode merged fc2 (its memory and its staleness)."""
        if mode:
            self._merged = None
        return super().train(mode)

    def forward(self, x: torch.Tensor, expert: int | None = None) -> torch.Tensor:
        """Apply the shared part and the chosen expert to tokens (B, N, D)."""
        if expert is None:
            raise ValueError("a MoE FFN needs an expert index (the network resolves it from the dataset name)")
        h = self.act(self.fc1(x))  # (B, N, 4D)
        weight, bias = self.merged_fc2(expert)
        return F.linear(h, weight, bias)  # (B, N, D) = concat(shared fc2(h), expert fc2(h))

    @torch.no_grad()
    def load_dense(self, dense: nn.Module) -> None:
        """Upcycle from a dense FFN: shared fc2 = rows [0, D-P), every expert = rows [D-P, D)."""
        split = self.fc2.out_features
        self.fc1.weight.copy_(dense.fc1.weight)
        self.fc1.bias.copy_(dense.fc1.bias)
        self.fc2.weight.copy_(dense.fc2.weight[:split])
        self.fc2.bias.copy_(dense.fc2.bias[:split])
        for expert in self.experts:
            expert.weight.copy_(dense.fc2.weight[split:])
            expert.bias.copy_(dense.fc2.bias[split:])

    @torch.no_grad()
    def to_dense(self, expert: int) -> DenseFFN:
        """The dense FFN equal to this one on `expert`: fc2 = concat(shared, expert) rows."""
        fc1, fc2, part = self.fc1, self.fc2, self.experts[expert]
        dim = fc2.out_features + part.out_features
        dense = DenseFFN(fc1.in_features, fc1.out_features, dim, device=fc1.weight.device, dtype=fc1.weight.dtype)
        dense.fc1.load_state_dict(fc1.state_dict())
        dense.fc2.weight.copy_(torch.cat([fc2.weight, part.weight], dim=0))
        dense.fc2.bias.copy_(torch.cat([fc2.bias, part.bias], dim=0))
        return dense
