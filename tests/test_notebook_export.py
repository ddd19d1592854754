"""Executed notebooks slimmed for git (lib/notebook_export.py): what is dropped, what is kept."""
from __future__ import annotations

import base64
import io
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from lib import notebook_export as X


def png_of_a_plot() -> str:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.linspace(0, 10, 200)
    for k in range(3):
        ax.plot(x, np.sin(x + k), label=f"line {k}")
    ax.legend()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return base64.b64encode(out.getvalue()).decode("ascii")


def notebook() -> dict:
    png = png_of_a_plot()
    outputs = [
        {"output_type": "stream", "name": "stderr", "text": ["train:  40%|####      | 4/10 [00:01<00:02]\r"]},
        {"output_type": "stream", "name": "stderr", "text": ["UserWarning: something the reader should see\n"]},
        {"output_type": "stream", "name": "stdout", "text": ["claim 1: supported\n"]},
        {"output_type": "display_data", "metadata": {},
         "data": {X.WIDGET: {"model_id": "abc"}, "text/plain": ["HBox()"]}},
        {"output_type": "display_data", "metadata": {}, "data": {X.WIDGET: {"model_id": "def"}}},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": ["<Figure>"]}},
        {"output_type": "execute_result", "metadata": {}, "execution_count": 3,
         "data": {"text/html": ["<table>" + "<tr><td>1</td></tr>" * 5000 + "</table>"], "text/plain": ["a table"]}},
    ]
    return {"cells": [{"cell_type": "code", "source": [], "metadata": {}, "execution_count": 1, "outputs": outputs}],
            "metadata": {"widgets": {"state": {"x": 1}}}, "nbformat": 4, "nbformat_minor": 5}, png


def test_slim_keeps_the_results_and_drops_the_kernel_noise(tmp_path):
    nb, png = notebook()
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    before, after = X.slim_file(path)
    assert after < before
    out = json.loads(path.read_text())
    outputs = out["cells"][0]["outputs"]
    texts = ["".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream"]
    assert texts == ["UserWarning: something the reader should see\n", "claim 1: supported\n"]
    assert not any(X.WIDGET in o.get("data", {}) for o in outputs) and "widgets" not in out["metadata"]
    assert [o["data"].get("text/plain") for o in outputs if "data" in o][0] == ["HBox()"]  # its text stays
    image = next(o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {}))
    assert len(image) < len(png)
    a = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(base64.b64decode(image))).convert("RGB"), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0  # the same picture
    table = next(o for o in outputs if o["output_type"] == "execute_result")
    assert "text/html" not in table["data"] and table["data"]["text/plain"] == ["a table"]
    again_before, again_after = X.slim_file(path)
    assert again_before == again_after == after  # idempotent: a second pass changes nothing
