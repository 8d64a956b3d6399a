"""What prediction checks of a trained run before it scores the test set with it, beyond the
fingerprint (src/predict.load_checked_model): that the run finished, and that the weights
of its checkpoint are those its result line was evaluated with (src/training/state_hash.py)."""
import logging

from ..errors import UserError
from ..params import RunPaths
from .checkpoint import read_checkpoint
from .results import results_path

logger = logging.getLogger(__name__)


def require_finished(config_dir: str, expid: str, line: dict, params: dict) -> None:
    """Refuse an experiment whose run did not finish: no result line, or a training state of
    another run than the result line's left beside it (a later run was killed or is still
    training). A run a scheduler stopped early keeps the state of the run of its line: it is
    finished as far as its result goes."""
    state = RunPaths(params).state
    why = None
    if line is None:
        why = f"it has no result line in {results_path(config_dir)}"
        if state.exists():
            why += f" and its training state {state} is left (the run was killed or is running)"
    elif state.exists():
        try:
            state_run = read_checkpoint(state, what="training state").get("run_info", {}).get(
                "run_id")
        except UserError:
            state_run = None
        if state_run != line.get("run"):
            why = (f"its training state {state} is of run {state_run}, a later run than its "
                   f"result line's ({line.get('run')}): that run was killed or is running")
    if why:
        raise UserError(f"experiment {expid} of {config_dir} is unfinished: {why}. Fix: rerun the "
                        f"tuner (python run_param_tuner.py --config {config_dir}.yaml --gpu -1, or "
                        f"--gpu 0), which finishes it from its training state, or pass "
                        f"--allow-unfinished to score its best checkpoint so far")


def check_line_weights(config_dir: str, expid: str, line: dict, checkpoint: str,
                       weights: str) -> None:
    """The checkpoint's weights must be those its result line was evaluated with. A line or
    checkpoint written before weights were hashed cannot be checked: said, not refused."""
    recorded = (line or {}).get("weights")
    if line is not None and recorded and weights and recorded != weights:
        raise UserError(
            f"checkpoint {checkpoint} holds other weights (sha256 {weights[:16]}...) than the "
            f"run of its result line evaluated (line {line.get('line')} of "
            f"{results_path(config_dir)}: {recorded[:16]}...): it was modified after that "
            f"result. Fix: retrain {expid} (rerun the tuner: it retrains such experiments)")
    if line is not None and not (recorded and weights):
        logger.warning("%s: %s has no weights hash (written before weights were hashed): its "
                       "weights cannot be verified; retrain it (tuner --force) to make it "
                       "verifiable", expid, "the result line" if weights else
                       f"checkpoint {checkpoint}")
