"""What every entry script shares: logging set-up and turning user errors into one line."""
import logging
import sys
from pathlib import Path

from .errors import UserError

LOG_FORMAT = "%(asctime)s P%(process)d %(levelname)s %(message)s"


def setup_logging(log_file=None):
    """Log INFO to stderr and, when given, to log_file (truncated, as FuxiCTR does)."""
    handlers = [logging.StreamHandler()]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)


def run_main(main):
    """Run main(); a UserError prints `error: ...` and exits 2, Ctrl-C exits 130."""
    try:
        return main()
    except UserError as err:
        logging.getLogger(__name__).debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
