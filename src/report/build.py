"""Build a report folder: collect, draw, write index.html; the folder appears whole or not at
all (written under a temporary name, then renamed over the previous report)."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import temp_path
from ..errors import UserError
from . import collect, figures, page, parallel

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from .collect import GridReport

logger = logging.getLogger(__name__)

REPORTS = Path("reports")
ITEM_EMBEDDING_RESULTS = "item_embedding_results.csv"


def default_out(config: Path | str | None = None) -> Path:
    """reports/<grid name> (reports/item_embedding without a grid), in the current folder."""
    if config is None:
        return REPORTS / "item_embedding"
    return REPORTS / collect.resolve_config_dir(config)[0].name


def detect_item_embedding(config_dir: Path | str) -> Path | None:
    """The item-embedding table that belongs to a grid: evaluate writes its per-file tuner
    configs and item_embedding_results.csv into one folder, so a table beside the grid folder
    is the one that grid was part of."""
    path = Path(config_dir).parent / ITEM_EMBEDDING_RESULTS
    return path if path.is_file() else None


def build_report(
        config: Path | str | None = None, item_embedding: Path | str | None = None,
) -> tuple[str, dict[str, Figure], list[str], GridReport | None, list[dict[str, Any]] | None]:
    """(title, {image name: Figure}, sections, grid report or None, item rows or None)."""
    if config is None and item_embedding is None:
        raise UserError("nothing to report: give --config (a tuner grid) and/or "
                        "--item-embedding (a results table of src.item_embedding evaluate)")
    images, sections, grid, rows = {}, [], None, None
    if config is not None:
        grid = collect.collect_grid(config)
        item_embedding = item_embedding or detect_item_embedding(grid.config_dir)
        for name, make in (("curves", figures.learning_curves), ("knobs", figures.knob_panels),
                           ("parallel", parallel.parallel_coordinates)):
            fig = make(grid)
            if fig is not None:
                images[name] = fig
        sections.append(page.grid_section(grid, {n: f"{n}.png" for n in images}))
    if item_embedding is not None:
        rows = collect.read_item_embedding(item_embedding)
        images["item_embedding"] = figures.item_embedding_chart(rows)
        sections.append(page.item_embedding_section(rows, item_embedding, "item_embedding.png"))
    title = f"Report: {grid.name}" if grid else "Report: item embeddings"
    return title, images, sections, grid, rows


def write_report(config: Path | str | None = None, item_embedding: Path | str | None = None,
                 out: Path | str | None = None, command: str = "python -m src.report") -> Path:
    """Write the report folder; returns the path of its index.html."""
    title, images, sections, _, _ = build_report(config, item_embedding)
    out = Path(out) if out else default_out(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)  # atomic_write's naming: leftovers(out) lists it
    shutil.rmtree(tmp, ignore_errors=True)  # a killed run's, if this pid was its pid too
    tmp.mkdir()
    try:
        for name, fig in images.items():
            figures.save(fig, tmp / f"{name}.png")
        (tmp / "index.html").write_text(page.render(title, sections, command))
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Report written: %s", out / "index.html")
    return out / "index.html"


def _replace_folder(new, target):
    """new takes target's name; an old report is moved aside first and removed after."""
    old = temp_path(target)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
