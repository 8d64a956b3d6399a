"""DCNv2 in its parallel form, as TargetDCN, TransformerDCN and TransformerConcatDCN use it:
FuxiCTR's CrossNetV2 beside an MLP over the same input, their outputs concatenated."""
from __future__ import annotations

import torch
from fuxictr.pytorch.layers import CrossNetV2, MLP_Block


class ParallelDCN:
    """For a model with a parallel DCNv2. Its two parts are the model's own attributes
    (cross_net, parallel_dnn), so checkpoint keys name them directly."""

    def build_dcn(self, input_dim: int, cross_layers: int, hidden_units: list[int],
                  activations: str | list, dropout: float | list[float],
                  batch_norm: bool) -> int:
        """Build cross_net and parallel_dnn over inputs input_dim wide (in that order: the
        order their weights are drawn in); return the width of dcn()'s output."""
        self.cross_net = CrossNetV2(input_dim, int(cross_layers))
        self.parallel_dnn = MLP_Block(input_dim=input_dim, hidden_units=list(hidden_units),
                                      hidden_activations=activations, output_dim=None,
                                      dropout_rates=dropout, batch_norm=batch_norm)
        return input_dim + (hidden_units[-1] if hidden_units else input_dim)

    def dcn(self, x: torch.Tensor) -> torch.Tensor:
        """[cross network output, MLP output] of x."""
        return torch.cat([self.cross_net(x), self.parallel_dnn(x)], dim=-1)
