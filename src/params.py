"""An experiment's settings and where its files go.

load_params merges a config folder's Base block, the expid's block and its dataset block, as
FuxiCTR does; the run's log and checkpoint live at <model_root>/<dataset_id>/<expid>.*.
"""
from pathlib import Path

from fuxictr.utils import load_config

from .errors import ConfigError
from .models import model_class


def require_config_dir(config_dir):
    if not Path(config_dir).is_dir():
        hint = (f" (run_param_tuner.py writes {str(config_dir)[:-5]}/ from {config_dir})"
                if str(config_dir).endswith(".yaml") else "")
        raise ConfigError(f"--config {config_dir}: not a folder holding model_config.yaml and "
                          f"dataset_config.yaml{hint}")


def load_params(config_dir, expid, gpu=-1):
    """Base + expid block of model_config.yaml, merged with its dataset block; gpu set."""
    require_config_dir(config_dir)
    try:
        params = load_config(str(config_dir), expid)
    except AssertionError as err:
        raise ConfigError(f"--expid {expid}: not found in {config_dir}/model_config.yaml "
                          f"({err})") from None
    except RuntimeError as err:
        raise ConfigError(f"--config {config_dir}: {err}") from None
    model_class(params.get("model"))
    params["gpu"] = gpu
    return params


def log_file(params):
    """Where a run's log goes: next to its checkpoint, as in FuxiCTR."""
    return Path(params["model_root"]) / params["dataset_id"] / f"{params['model_id']}.log"
