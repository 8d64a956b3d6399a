"""Our data path feeds the DIN the same values as the seed's design, and scores the same."""
import pytest
import torch
from fuxictr.pytorch.torch_utils import seed_everything

from src.data.loader import MMCTRDataLoader
from src.experiment import build_model
from src.data.features import build_feature_map
from src.models.seed_design import SeedDIN, seed_loader

from .test_din import params  # noqa: F401  (module fixture: a one-point grid on tiny data)


@pytest.mark.parametrize("din_use_softmax", [False, True])
def test_same_item_values_and_same_predictions_as_the_seed_path(params,  # noqa: F811
                                                                 din_use_softmax):
    params = dict(params, din_use_softmax=din_use_softmax)
    feature_map = build_feature_map(params)
    ours = MMCTRDataLoader(feature_map, params["valid_data"], split="valid", batch_size=300)
    seeds = seed_loader(feature_map, params["valid_data"], params["item_info"], batch_size=300)
    seed_everything(5)
    model = build_model(params, feature_map)
    seed_model = SeedDIN(feature_map, item_table=model.item_table, **params)
    seed_model.load_state_dict(model.state_dict())
    model.eval()
    seed_model.eval()

    for step, (batch, seed_batch) in enumerate(zip(ours, seeds)):
        _, seed_items, seed_mask = seed_batch
        ids = torch.cat([batch["item_seq"].long(), batch["item_id"].long()[:, None]], 1)
        looked_up = model.item_table.lookup(ids.reshape(-1))
        for name, values in seed_items.items():
            # the model casts embeddings to float32 on both paths
            expected = values.float() if values.is_floating_point() else values
            assert torch.equal(looked_up[name], expected), name
        assert torch.equal((batch["item_seq"] > 0).float(), seed_mask)
        with torch.no_grad():
            assert torch.allclose(model(batch)["y_pred"], seed_model(seed_batch)["y_pred"],
                                  atol=1e-6)
        if step == 2:
            break
    assert step == 2
