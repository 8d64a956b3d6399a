"""What runs in a Ray worker for one trial of a grid on Ray (src/tuning/ray_runner.py): train
in-process, report each evaluation to Tune under a scheduler, hand the result back. Ray is
imported only inside the functions, which run on the nodes."""
import logging
import os
import socket

from ..cli import exit_status, setup_logging
from ..errors import UserError

logger = logging.getLogger(__name__)

EVALUATION = "evaluation"  # Tune's time attribute for ASHA: the run's evaluation number


def _here():
    import ray
    node = ray.get_runtime_context().get_node_id()
    return f"node {node[:8]} ({ray.util.get_node_ip_address()}, host {socket.gethostname()})"


def run_trial(config: dict, params: dict, job: dict) -> dict:
    """One run in a Ray worker (a Tune trial): train in-process with job["train"]
    (src.experiment.train, passed in by run_param_tuner.py) and hand the result back; a
    failure of the run's own is an exit status, as run_expid.py would have exited."""
    expid = config["expid"]
    if os.path.isdir(job["cwd"]):
        os.chdir(job["cwd"])  # this worker process runs this one trial
    setup_logging()
    where = _here()
    logger.info("%s runs on Ray %s", expid, where)
    try:
        result = job["train"](params[expid], job["config_dir"], fresh=False,
                              caller_writes_result=True,
                              on_evaluation=(_reporter(where, params[expid]["dataset_id"])
                                             if job["report"] else None))
    except UserError as err:
        logger.error("error: %s", err)
        return {"returncode": exit_status(err), "AUC": None, "where": where}
    except Exception as err:
        logger.exception("crashed")
        return {"returncode": exit_status(err), "AUC": None, "where": where}
    result["val"] = {k: float(v) for k, v in result["val"].items()}
    return {"returncode": 0, "AUC": result["val"].get("AUC"), "result": result, "where": where}


def _reporter(where, dataset_id):
    """on_evaluation(trainer, val_logs) for a trial under a scheduler: report each evaluation
    to Tune, from the trainer's public fields. Tune stops a trial inside this report (SystemExit
    in the training thread), after this evaluation's checkpoint and training state were saved."""
    from ray import tune

    def report(trainer, val_logs):
        val = {k: float(v) for k, v in val_logs.items()}
        evaluation = trainer.evaluation_number
        try:
            tune.report({"AUC": val.get("AUC"), EVALUATION: evaluation,
                         "step": trainer.total_steps, "val": val, "where": where,
                         # the checkpoint holds this evaluation's weights now
                         "checkpoint": trainer.checkpoint_is_current,
                         "fingerprint": trainer.run.run_info["fingerprint"],
                         "run": trainer.run.run_id,
                         "weights": trainer.weights_sha256,  # of the checkpoint last saved
                         "dataset_id": dataset_id})
        except SystemExit:
            logger.warning("Stopped early by the scheduler (ASHA) after evaluation %d (step %d); "
                           "the best checkpoint and the training state are kept", evaluation,
                           trainer.total_steps)
            raise
    return report
