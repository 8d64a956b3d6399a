"""The task-2 suite's definition: its blocks, their feature sets, the baseline, the rule that
picks a recommendation; and which blocks can run with the code as it is today.

A helper of bench/task2_suite.py, which puts the repository root and bench/ on sys.path.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MODEL_CONFIG = REPO / "config" / "task2_config" / "model_config.yaml"
APPENDIX = REPO / "docs" / "task2_single_world.md"
APPENDIX_HEADING = "Appendix: the single-world comparison (cosine law only, earlier sessions)"

BASELINE = "baseline_DIN"  # every gap is measured from this block
ENSEMBLE = "ensemble"  # the rank-average ensemble's label
# label -> (model block of config/task2_config/model_config.yaml, feature set)
BLOCKS = {
    "baseline_DIN": ("DIN_default_cpu", "baseline"),
    "DIN_regularized": ("DIN_regularized_cpu", "task2"),
    "DINInterest": ("DINInterest_cpu", "task2"),
    "CosineInterest": ("CosineInterest_cpu", "task2"),
    "QIN": ("QIN_cpu", "task2"),
    "DINCrossAttention": ("DINCrossAttention_cpu", "task2"),
    "TransformerDCN": ("TransformerDCN_cpu", "task2"),
    "FlatQIN_user": ("FlatQIN_cpu", "task2_user"),  # the 2nd place's recipe embeds user_id
    "TransformerConcatDCN": ("TransformerConcatDCN_cpu", "task2"),
    "TargetDCN": ("TargetDCN_cpu", "task2"),
    "DIN_regularized_sid": ("DIN_regularized_cpu", "task2_sid"),
}
FEATURE_SETS = {
    "baseline": "the baseline's features",
    "task2": "task-2 features, no user_id",
    "task2_user": "task-2 features + user_id (L2 2e-4 on its embedding)",
    "task2_sid": "task-2 features + semantic ids (3 levels x 64 codes of item_emb_d128_v1)",
}
USER_ID_L2 = 2e-4
SID_LEVELS, SID_CODES = 3, 64

RULE = (
    "Recommended: among the candidates other than the baseline DIN (every block and the ensemble) "
    "that have runs in every world, those that lose to the baseline DIN in no world, where a "
    "candidate loses in a world when its mean test AUC is below the baseline DIN's mean by more "
    "than the larger of the two test spreads (max - min over seeds); of these, the one with "
    "the best mean share of the gap closed on test (compared to 0.1 point; ties: the better "
    "mean rank). Blocks and the ensemble compete alike, so the ensemble is the choice when no "
    "single block qualifies and it does. If nothing qualifies, there is no recommendation: the "
    "baseline DIN stays.")


# --- feature sets ---------------------------------------------------------------------------
def feature_cols(feature_set, data_dir):
    """The dataset block's feature_cols of a feature set, for the data in data_dir: the baseline's
    as config/compare/baseline_features_tuner_config.yaml, task2 as interest_tuner_config.yaml."""
    cat = {"active": True, "dtype": "int", "type": "categorical", "vocab_size": "auto"}
    baseline = feature_set == "baseline"
    user = ({"name": "user_id", "active": True, "dtype": "int", "type": "meta"} if baseline else
            {"name": "user_id", **cat, "active": feature_set == "task2_user", "oov": True})
    if feature_set == "task2_user":
        user["embedding_regularizer"] = USER_ID_L2
    cols = [user,
            {"name": "item_seq", "active": True, "dtype": "int", "type": "meta"},
            {"name": "likes_level", **cat}, {"name": "views_level", **cat},
            {"name": "item_id", **cat, "source": "item"},
            {"name": "item_tags", **cat, "type": "sequence", "max_len": 5, "source": "item"},
            {"name": "item_emb_d128", "active": True, "dtype": "float", "type": "embedding",
             "source": "item", "embedding_dim": 128}]
    if baseline:
        return cols
    cols += [{"name": "item_likes_level", **cat, "source": "item", "from_splits": "likes_level"},
             {"name": "item_views_level", **cat, "source": "item", "from_splits": "views_level"},
             {"name": "item_emb_d128_v1", "active": True, "dtype": "float", "type": "embedding",
              "source": "item", "embedding_dim": 128,
              "item_file": str(data_dir / "item_emb.parquet")}]
    if feature_set == "task2_sid":
        cols += [{"name": f"item_sid_{level}", **cat, "source": "item",
                  "item_file": str(data_dir / "item_sid.parquet"), "column": f"sid_{level}"}
                 for level in range(1, SID_LEVELS + 1)]
    return cols


# --- what can run today ---------------------------------------------------------------------
def model_blocks():
    """{block: merged values} of config/task2_config/model_config.yaml (YAML merge keys)."""
    return {k: v for k, v in (yaml.safe_load(MODEL_CONFIG.read_text()) or {}).items()
            if k != "Base"}


def feature_set_problems(feature_sets):
    """{feature set: why it cannot run yet} among feature_sets, for those that need code
    other agents are adding."""
    problems = {}
    # the per-feature embedding_regularizer is applied by src/models/regularizer.py (see
    # src/data/features.py); without it the key would be silently ignored
    if "task2_user" in feature_sets and importlib.util.find_spec("src.models.regularizer") is None:
        problems["task2_user"] = ("per-feature embedding_regularizer (src/models/regularizer.py) "
                                  "is not in the code yet")
    if "task2_sid" in feature_sets and subprocess.run(
            [sys.executable, "-m", "src.item_embedding", "semantic-ids", "--help"],
            cwd=REPO, capture_output=True).returncode != 0:
        problems["task2_sid"] = "`python -m src.item_embedding semantic-ids` is not there yet"
    return problems


def unavailable(labels, blocks, models, problems):
    """{label: why it is skipped} for the labels whose block, model or features are missing."""
    why = {}
    for label in labels:
        block, feature_set = BLOCKS[label]
        if block not in blocks:
            why[label] = f"model block {block} is not in {MODEL_CONFIG.relative_to(REPO)} yet"
        elif blocks[block].get("model") not in models:
            why[label] = f"model {blocks[block].get('model')} (block {block}) is not in src/models"
        elif feature_set in problems:
            why[label] = f"feature set {feature_set}: {problems[feature_set]}"
    return why


def known_models():
    """The model classes src/models holds now (another agent may be mid-edit: then none)."""
    try:
        from src.models import available_models
        return set(available_models())
    except Exception as err:  # noqa: BLE001  a half-written model module must not stop the suite
        print(f"warning: src.models does not import ({err}); every block is skipped",
              file=sys.stderr)
        return set()
