"""Training of our models: the loop, its options, schedules, evaluation and checkpoints.

A model (src/models) computes scores and its loss; a Trainer (trainer.py) trains it:
- options.py: TrainingOptions (what a config says about training) and RunContext (where a
  run's files go, what its checkpoints record, who watches its evaluations);
- schedules.py: the learning-rate schedule and early stopping;
- evaluation.py: scoring a loader, metrics;
- checkpoints.py: atomic checkpoint files, the weights and the training state (torch only:
  the tuner reads checkpoints without importing any model).
Nothing is imported here, so `src.training.checkpoints` stays as light as that module.
"""
