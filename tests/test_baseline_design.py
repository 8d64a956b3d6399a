"""Our data path feeds the DIN the same values as the baseline's design, and scores the same."""
import pytest
import torch
from fuxictr.pytorch.torch_utils import seed_everything

from src.data.features import build_feature_map
from src.data.loader import MMCTRDataLoader
from src.experiment import build_model
from src.models.baseline_design import BaselineDIN, baseline_loader

from .numerics import logits_close, spread_output
from .test_din import params  # noqa: F401  (module fixture: a one-point grid on tiny data)


def paired_models(run_params, feature_map):
    """Our DIN and the baseline-design DIN with the same weights, logits spread over (0, 1)."""
    seed_everything(5)
    model = build_model(run_params, feature_map)
    loader = MMCTRDataLoader(feature_map, run_params["valid_data"], split="valid", batch_size=1000)
    spread_output(model, next(iter(loader)))
    baseline_model = BaselineDIN(feature_map, item_table=model.item_table, **run_params)
    baseline_model.load_state_dict(model.state_dict())
    return model.eval(), baseline_model.eval()


@pytest.mark.parametrize("din_use_softmax", [False, True])
def test_same_item_values_and_same_predictions_as_the_baseline_path(params,  # noqa: F811
                                                                 din_use_softmax):
    params = dict(params, din_use_softmax=din_use_softmax)
    feature_map = build_feature_map(params)
    ours = MMCTRDataLoader(feature_map, params["valid_data"], split="valid", batch_size=300)
    baselines = baseline_loader(feature_map, params["valid_data"], params["item_info"],
                                batch_size=300)
    model, baseline_model = paired_models(params, feature_map)

    for step, (batch, baseline_batch) in enumerate(zip(ours, baselines)):
        _, baseline_items, baseline_mask = baseline_batch
        ids = torch.cat([batch["item_seq"].long(), batch["item_id"].long()[:, None]], 1)
        looked_up = model.item_table.lookup(ids.reshape(-1))
        for name, values in baseline_items.items():
            # the model casts embeddings to float32 on both paths
            expected = values.float() if values.is_floating_point() else values
            assert torch.equal(looked_up[name], expected), name
        assert torch.equal((batch["item_seq"] > 0).float(), baseline_mask)
        with torch.no_grad():
            logit, prob = model.scores(batch)
            baseline_logit = baseline_model.scores(baseline_batch)[0]
        # the scores are spread out, so rows cannot agree merely by saturating at 0 or 1
        assert ((prob > 0.02) & (prob < 0.98)).float().mean() > 0.8
        assert logits_close(logit, baseline_logit)
        if step == 2:
            break
    assert step == 2


def test_the_comparison_fails_when_one_path_is_perturbed(params):  # noqa: F811
    """The tolerance above is tight enough to see a small real difference on either side."""
    feature_map = build_feature_map(params)
    ours = MMCTRDataLoader(feature_map, params["valid_data"], split="valid", batch_size=300)
    baselines = baseline_loader(feature_map, params["valid_data"], params["item_info"],
                                batch_size=300)
    batch, baseline_batch = next(iter(ours)), next(iter(baselines))
    model, baseline_model = paired_models(params, feature_map)
    with torch.no_grad():
        logit = model.scores(batch)[0]
        assert logits_close(logit, baseline_model.scores(baseline_batch)[0])
        # the baseline path's first attention layer 1% larger
        baseline_model.attention_layers.attention_layer.mlp[0].weight.mul_(1.01)
        assert not logits_close(logit, baseline_model.scores(baseline_batch)[0])
        # our path with the most recent history item of one row replaced
        row = int((batch["item_seq"][:, -1] > 0).nonzero()[0])
        changed = dict(batch, item_seq=batch["item_seq"].clone())
        num_items = model.item_table.num_items
        changed["item_seq"][row, -1] = batch["item_seq"][row, -1] % (num_items - 1) + 1
        assert not logits_close(logit, model.scores(changed)[0])
