"""Executed notebooks small enough to keep in git, readable with their results.

The runner writes every executed notebook to ``results/<profile>/notebooks/``
and slims it there (:func:`slim_file`); the default profile's copies are kept
in git. Slimming keeps what a reader needs (tables, printed numbers, figures)
and drops what only a live kernel needs:

- progress bars (stderr streams with carriage returns or tqdm bars) and the
  ipywidgets views and state behind JupyterLab's progress bars;
- figures are re-encoded as 256-colour PNGs when that is smaller (plots have
  few colours, so they look the same at a fraction of the size);
- an HTML table larger than :data:`MAX_HTML` bytes keeps only its plain-text
  form.

    python -m lib.notebook_export default     # slim the executed notebooks of a profile in place
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
from pathlib import Path

from PIL import Image

from lib.errors import DataError
from lib.paths import atomic_write, results_dir

WIDGET = "application/vnd.jupyter.widget-view+json"
MAX_HTML = 60_000
_PROGRESS = re.compile(r"\r|\d+%\|")


def _small_png(data: str) -> str:
    """The PNG re-encoded with a 256-colour palette when that is smaller, else unchanged."""
    raw = base64.b64decode(data)
    image = Image.open(io.BytesIO(raw))
    if image.mode == "P":  # a palette already (slimmed before): leave it, so slimming twice changes nothing
        return data
    out = io.BytesIO()
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii") if out.tell() < len(raw) else data


def _slim_output(output: dict) -> dict | None:
    if output.get("output_type") == "stream":
        text = "".join(output.get("text", ""))
        return None if output.get("name") == "stderr" and _PROGRESS.search(text) else output
    data = output.get("data")
    if not data:
        return output
    data.pop(WIDGET, None)
    if "image/png" in data:
        png = data["image/png"]
        data["image/png"] = _small_png("".join(png) if isinstance(png, list) else png)
    html = data.get("text/html")
    if html is not None and len("".join(html)) > MAX_HTML and "text/plain" in data:
        del data["text/html"]
    return output if data else None


def slim(nb: dict) -> dict:
    """The notebook without progress bars and widget state, with smaller figures (see the module doc)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in (_slim_output(o) for o in cell.get("outputs", [])) if o is not None]
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def slim_file(path: str | Path) -> tuple[int, int]:
    """Slim one executed notebook in place (atomically); return its size before and after, in bytes."""
    path = Path(path)
    before = path.stat().st_size
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable notebook ({exc})") from exc
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(slim(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return before, path.stat().st_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Slim the executed notebooks of a profile in place.")
    ap.add_argument("profile")
    args = ap.parse_args(argv)
    folder = results_dir(args.profile) / "notebooks"
    files = sorted(folder.glob("*.ipynb"))
    if not files:
        print(f"no executed notebooks in {folder}", file=sys.stderr)
        return 1
    total = [0, 0]
    for path in files:
        before, after = slim_file(path)
        total[0] += before
        total[1] += after
        print(f"{path.name}: {before / 1e3:.0f} kB -> {after / 1e3:.0f} kB")
    print(f"{len(files)} notebooks: {total[0] / 1e6:.1f} MB -> {total[1] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
