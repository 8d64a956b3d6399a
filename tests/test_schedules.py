"""Learning-rate schedules and weight decay of the base model, step by step.

The defaults must keep FuxiCTR's behaviour (each evaluation without improvement divides the
rate by 10); the options give QIN's halving on plateaus, a warm-up, a cosine decay and the
optimizer's weight decay."""
import math

import pytest
import torch

from src.data.features import build_feature_map
from src.experiment import build_model

from .test_din import params  # noqa: F401  (module fixture: a one-point grid on tiny data)


def model_with(params, **options):  # noqa: F811
    model = build_model(dict(params, **options), build_feature_map(params))
    model.save_weights = lambda path: None  # no checkpoint files for these step-by-step checks
    model._best_metric, model._stopping_steps, model._plateau_steps = -math.inf, 0, 0
    model._schedule_steps = 1000
    return model


def plateau_rates(model, aucs):
    rates = []
    for auc in aucs:
        model.checkpoint_and_earlystop({"AUC": auc})
        rates.append(model.scheduled_lr(step=10**6))
    return rates


def test_default_plateau_divides_by_ten_at_each_evaluation_without_improvement(params):  # noqa: F811
    model = model_with(params, learning_rate=1e-2, early_stop_patience=10)
    assert plateau_rates(model, [0.7, 0.71, 0.70, 0.69, 0.72]) == pytest.approx(
        [1e-2, 1e-2, 1e-3, 1e-4, 1e-4], rel=1e-9)
    assert model._stopping_steps == 0 and not model._stop_training


def test_halving_after_two_flat_evaluations(params):  # noqa: F811
    model = model_with(params, learning_rate=2e-3, lr_decay_factor=0.5, lr_patience=2,
                       early_stop_patience=5)
    rates = plateau_rates(model, [0.7, 0.69, 0.69, 0.69, 0.69, 0.69])
    assert rates == pytest.approx([2e-3, 2e-3, 1e-3, 1e-3, 5e-4, 5e-4], rel=1e-9)
    assert model._stop_training  # 5 evaluations without improvement
    floor = model_with(params, learning_rate=2e-3, lr_decay_factor=0.5, min_lr=1.5e-3)
    assert plateau_rates(floor, [0.7, 0.6]) == pytest.approx([2e-3, 1.5e-3], rel=1e-9)


def test_warmup_then_cosine_to_min_lr(params):  # noqa: F811
    model = model_with(params, learning_rate=1e-3, lr_scheduler="cosine", warmup_steps=100,
                       min_lr=1e-5)
    model._schedule_steps = 1100
    assert model.scheduled_lr(50) == pytest.approx(5e-4, rel=1e-9)       # half-way up
    assert model.scheduled_lr(100) == pytest.approx(1e-3, rel=1e-9)      # the top
    assert model.scheduled_lr(600) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-9)  # half-way down
    assert model.scheduled_lr(1100) == pytest.approx(1e-5, rel=1e-9)     # the floor
    model.checkpoint_and_earlystop({"AUC": 0.7})
    model.checkpoint_and_earlystop({"AUC": 0.6})
    assert model.scheduled_lr(600) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-9)  # no plateau


def test_a_training_step_uses_the_scheduled_rate_and_the_weight_decay(params):  # noqa: F811
    model = model_with(params, learning_rate=1e-3, lr_scheduler="none", warmup_steps=4,
                       weight_decay=0.01, optimizer="AdamW")
    assert isinstance(model.optimizer, torch.optim.AdamW)
    assert model.optimizer.param_groups[0]["weight_decay"] == 0.01
    from src.data.loader import MMCTRDataLoader
    batch = next(iter(MMCTRDataLoader(model.feature_map, params["train_data"], split="train",
                                      batch_size=256)))
    model.train()
    for step in (1, 2):
        model._total_steps, model._batch_index = step, step - 1
        model.train_step(batch)
        assert model.current_lr() == pytest.approx(step * 1e-3 / 4, rel=1e-9)
