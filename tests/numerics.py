"""Comparing float32 model outputs computed two ways, with tolerances set from float32
arithmetic rather than from what one machine happened to print.

Two float32 paths to the same logits (another summation order, another kernel, another
thread count) differ by rounding: a few units in the last place (ulp, 2**-23 of the value) per
accumulated term, growing with the depth of the network. The comparisons below allow
ULPS ulps of the largest logit's magnitude: about 1e-4 relative, far above rounding in the
models here (their measured differences stay below 1e-5) and far below the effect of any real
change (a 1e-3 change of one weight, or of one history item, moves logits by more)."""
import torch

FLOAT32_ULP = torch.finfo(torch.float32).eps  # 1.19e-7: the spacing of float32 numbers near 1
ULPS = 1024


def logits_close(a, b, ulps=ULPS):
    """True when two float32 logit tensors agree to within rounding: |a - b| <= ulps ulp of
    the larger magnitude (at least 1, so logits near 0 are compared on the scale of 1)."""
    a, b = a.detach().float().reshape(-1), b.detach().float().reshape(-1)
    scale = max(a.abs().max().item(), b.abs().max().item(), 1.0)
    return bool((a - b).abs().max().item() <= ulps * FLOAT32_ULP * scale)


def spread_output(model, batch, target_std=2.0):
    """Rescale the model's logit on batch to mean 0 and standard deviation target_std:
    predictions then spread over (0, 1) (about 5%-95% for std 2) instead of piling up at 0
    or 1, where any two models agree after the sigmoid. The logit is the output layer's,
    plus, in models with an interest tower (src/models/interest.py), the tower's score:
    both are scaled."""
    model.eval()
    head = model.output_layer()
    tower = getattr(model, "interest", None)
    with torch.no_grad():
        logit = model.scores(batch)[0].reshape(-1)
        scale = target_std / logit.std().clamp_min(1e-12)
        head.weight.mul_(scale)
        head.bias.mul_(scale).sub_(logit.mean() * scale)
        if tower is not None:
            tower.scale.mul_(scale)
            tower.content_score.weight.mul_(scale)
            tower.content_score.bias.mul_(scale)
    return model
