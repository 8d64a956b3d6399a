"""Learning-rate schedules and weight decay of the trainer, step by step.

The defaults must keep FuxiCTR's behaviour (each evaluation without improvement divides the
rate by 10); the options give QIN's halving on plateaus, a warm-up, a cosine decay and the
optimizer's weight decay."""
import pytest
import torch

from src.data.features import build_feature_map
from src.experiment import build_model
from src.training.options import RunContext, TrainingOptions
from src.training.trainer import Trainer

from .test_din import params  # noqa: F401  (module fixture: a one-point grid on tiny data)


def trainer_with(params, **options):  # noqa: F811
    """A trainer of the model of params with options (its checkpoints in model_root)."""
    params = dict(params, **options)
    model = build_model(params, build_feature_map(params))
    trainer = Trainer(model, TrainingOptions.from_params(params), RunContext(model.checkpoint))
    trainer.schedule.total_steps = 1000
    return trainer


def plateau_rates(trainer, aucs):
    rates = []
    for auc in aucs:
        trainer.checkpoint_and_earlystop({"AUC": auc})
        rates.append(trainer.schedule.rate(step=10**6))
    return rates


def test_default_plateau_divides_by_ten_at_each_evaluation_without_improvement(params):  # noqa: F811
    trainer = trainer_with(params, learning_rate=1e-2, early_stop_patience=10)
    assert plateau_rates(trainer, [0.7, 0.71, 0.70, 0.69, 0.72]) == pytest.approx(
        [1e-2, 1e-2, 1e-3, 1e-4, 1e-4], rel=1e-9)
    assert trainer.stopping.stopping_steps == 0 and not trainer.stop_training


def test_halving_after_two_flat_evaluations(params):  # noqa: F811
    trainer = trainer_with(params, learning_rate=2e-3, lr_decay_factor=0.5, lr_patience=2,
                           early_stop_patience=5)
    rates = plateau_rates(trainer, [0.7, 0.69, 0.69, 0.69, 0.69, 0.69])
    assert rates == pytest.approx([2e-3, 2e-3, 1e-3, 1e-3, 5e-4, 5e-4], rel=1e-9)
    assert trainer.stop_training  # 5 evaluations without improvement
    floor = trainer_with(params, learning_rate=2e-3, lr_decay_factor=0.5, min_lr=1.5e-3)
    assert plateau_rates(floor, [0.7, 0.6]) == pytest.approx([2e-3, 1.5e-3], rel=1e-9)


def test_warmup_then_cosine_to_min_lr(params):  # noqa: F811
    trainer = trainer_with(params, learning_rate=1e-3, lr_scheduler="cosine", warmup_steps=100,
                           min_lr=1e-5)
    trainer.schedule.total_steps = 1100
    assert trainer.schedule.rate(50) == pytest.approx(5e-4, rel=1e-9)       # half-way up
    assert trainer.schedule.rate(100) == pytest.approx(1e-3, rel=1e-9)      # the top
    assert trainer.schedule.rate(600) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-9)  # half-way down
    assert trainer.schedule.rate(1100) == pytest.approx(1e-5, rel=1e-9)     # the floor
    trainer.checkpoint_and_earlystop({"AUC": 0.7})
    trainer.checkpoint_and_earlystop({"AUC": 0.6})
    assert trainer.schedule.rate(600) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-9)  # no plateau


def test_a_training_step_uses_the_scheduled_rate_and_the_weight_decay(params):  # noqa: F811
    trainer = trainer_with(params, learning_rate=1e-3, lr_scheduler="none", warmup_steps=4,
                           weight_decay=0.01, optimizer="AdamW")
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.01
    from src.data.loader import MMCTRDataLoader
    batch = next(iter(MMCTRDataLoader(trainer.model.feature_map, params["train_data"],
                                      split="train", batch_size=256)))
    trainer.model.train()
    for step in (1, 2):
        trainer.total_steps, trainer.batch_index = step, step - 1
        trainer.train_step(batch)
        assert trainer.current_lr() == pytest.approx(step * 1e-3 / 4, rel=1e-9)
