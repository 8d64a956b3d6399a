"""A screenshot of the HTML report (python -m src.report) as headless Chromium renders it at a
900 px wide window: docs/report_example.png. Not a test (CI has no browser); it is how the
page was checked by eye (titles not clipped, no page-wide horizontal scroll, run numbers on the
knob points, the parallel-coordinates view).

Usage (from the repo root):
  python bench/report_screenshot.py                        # a small generated 2 x 2 x 2 grid
  python bench/report_screenshot.py config/X               # an existing grid (folder or yaml),
      --from DIR                                           #   run in DIR (default: .)
  options: --work DIR (default: a new temp folder), --out PNG (default docs/report_example.png),
           --width 900

Without a grid: tiny generated data (src.data.generator, seed 0; its first 40,960 training
rows), the demo DIN of config/DIN_demo_tuner_config.yaml tuned over learning_rate x
net_dropout x embedding_regularizer (8 runs, 2 epochs of 80 steps, an evaluation every 20)
with run_param_tuner.py --gpu -1 -1; a few minutes on 2 CPU cores. Then python -m src.report,
then Chromium (--screenshot of a tall window), the PNG cropped to the page and reduced to
128 colours with Pillow. Needs /usr/bin/chromium (Debian: apt-get install chromium).
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from src.atomic import atomic_write  # noqa: E402 (after the sys.path line)
from src.cli import run_main  # noqa: E402
from src.data.generator import generate  # noqa: E402
from src.errors import UserError  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
DEMO_TUNER = REPO / "config" / "DIN_demo_tuner_config.yaml"
GRID = {"learning_rate": [3.e-3, 1.e-2], "net_dropout": [0.0, 0.2],
        "embedding_regularizer": [1.e-6, 1.e-3], "epochs": 2, "eval_steps": 20,
        "early_stop_patience": 2}
ROWS = {"train": 40960, "valid": 5000, "test": 512}
WINDOW_HEIGHT = 6000  # taller than the page: one screenshot holds all of it, then cropped


def small_data(work):
    """Tiny generated data cut to ROWS rows per split (same item_info): its data folder."""
    full, small = work / "tiny", work / "data"
    generate(full, scale="tiny", seed=0, progress=False)
    (small / "MicroLens_1M_x1").mkdir(parents=True, exist_ok=True)
    for split, rows in ROWS.items():
        pd.read_parquet(full / "MicroLens_1M_x1" / f"{split}.parquet").head(rows).to_parquet(
            small / "MicroLens_1M_x1" / f"{split}.parquet")
    pd.read_parquet(full / "MicroLens_1M_x1" / "item_info.parquet").to_parquet(
        small / "MicroLens_1M_x1" / "item_info.parquet")
    return small


def tuner_config(work, data):
    """The demo tuner config with GRID and absolute paths to data: its path."""
    config = yaml.safe_load(DEMO_TUNER.read_text())
    dataset = config["dataset_config"].pop("MicroLens_demo_x1")
    split_dir = data / "MicroLens_1M_x1"
    dataset.update(data_root=str(data), item_info=str(split_dir / "item_info.parquet"),
                   **{f"{s}_data": str(split_dir / f"{s}.parquet") for s in ROWS})
    config["dataset_config"] = {"MicroLens_example_x1": dataset}
    config["dataset_id"] = "MicroLens_example_x1"
    config["base_config"] = str(REPO / "config" / "din_config")
    config["tuner_space"].update(GRID)
    path = work / "report_example.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(cmd, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print("+", " ".join(map(str, cmd)), flush=True)
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"failed (exit {done.returncode}): {' '.join(map(str, cmd))}\n"
                        f"{done.stderr[-3000:]}")
    return done


def screenshot(index, png, width, work):
    """Chromium's screenshot of index.html into png (a fresh profile, nothing fetched)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium_profile_", dir=work))
    raw = work / "screenshot_raw.png"
    run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},{WINDOW_HEIGHT}",
         f"--screenshot={raw}", index.resolve().as_uri()], cwd=work)
    shrink(raw, png)


def shrink(raw, png):
    """Crop the white space below the page, reduce to 128 colours; written via a rename."""
    from PIL import Image, ImageChops
    image = Image.open(raw).convert("RGB")
    content = ImageChops.difference(image, Image.new("RGB", image.size, "white")).getbbox()
    if content is not None:
        image = image.crop((0, 0, image.width, min(image.height, content[3] + 16)))
    with atomic_write(png) as tmp:
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(tmp, format="PNG",
                                                                          optimize=True)
    print(f"{png}: {image.width} x {image.height} px, {png.stat().st_size // 1024} KiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", nargs="?", help="an existing grid folder config/X or its yaml")
    parser.add_argument("--from", dest="cwd", default=".",
                        help="the folder the grid's tuner ran in (with a grid)")
    parser.add_argument("--work", help="scratch folder (default: a new temp folder)")
    parser.add_argument("--out", default=str(REPO / "docs" / "report_example.png"))
    parser.add_argument("--width", type=int, default=900)
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        raise UserError(f"{CHROMIUM} not found. Fix: apt-get install chromium")
    work = Path(args.work or tempfile.mkdtemp(prefix="report_screenshot_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.grid:
        cwd, grid = Path(args.cwd).resolve(), Path(args.grid)
    else:
        cwd = work
        grid = tuner_config(work, small_data(work))
        run([sys.executable, REPO / "run_param_tuner.py", "--config", grid, "--gpu", "-1", "-1"],
            cwd=work)
    report = work / "report"
    run([sys.executable, "-m", "src.report", "--config", grid, "--out", report], cwd=cwd)
    screenshot(report / "index.html", Path(args.out).resolve(), args.width, work)


if __name__ == "__main__":
    run_main(main)
