"""Layers shared by the models of this package (FuxiCTR's and torch's cover the rest)."""
from __future__ import annotations

import torch
from fuxictr.pytorch.layers import Dice, MLP_Block
from torch import nn


class Float32Linear(nn.Linear):
    """A Linear layer that computes in float32 also inside bfloat16 autocast.

    Used as every model's output layer: under autocast a bfloat16 logit (8 bits of mantissa)
    turns many distinct scores into ties and, through the sigmoid, confident mistakes into
    p = 1.0 with a zero gradient. The layer is cheap, so it costs nothing to keep exact."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs.device.type, enabled=False):
            return super().forward(inputs.float())

    def init_weights(self) -> None:
        # FuxiCTR's reset_parameters initialises only exact nn.Linear types; do the same here
        nn.init.xavier_normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def with_float32_output(mlp_block: MLP_Block) -> MLP_Block:
    """An MLP_Block built with an output_dim and no output activation, its last Linear
    replaced by a Float32Linear of the same shape (parameter names unchanged)."""
    last = mlp_block.mlp[-1]
    if not isinstance(last, nn.Linear):
        raise ValueError("the block's last layer must be its output Linear (no activation)")
    mlp_block.mlp[-1] = Float32Linear(last.in_features, last.out_features,
                                      bias=last.bias is not None)
    return mlp_block


def logit_mlp(input_dim: int, hidden_units: list[int], activations: str | list,
              dropout: float | list[float], batch_norm: bool) -> MLP_Block:
    """FuxiCTR's MLP_Block ending in one logit through a Float32Linear (the models' DNN).
    activations "Dice" gives each hidden layer its own Dice (which needs the layer's width)."""
    if isinstance(activations, str) and activations.lower() == "dice":
        activations = [Dice(units) for units in hidden_units]
    return with_float32_output(MLP_Block(
        input_dim=input_dim, output_dim=1, hidden_units=list(hidden_units),
        hidden_activations=activations, output_activation=None, dropout_rates=dropout,
        batch_norm=batch_norm))
