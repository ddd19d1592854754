"""Disk size of a trained run in the current compact format, and how close its embeddings stay.

    python benchmarks/compact_size.py results/default/models/mono_s0

Loads the run's ``model/`` (any stored format), writes it again with
``lib.model_store.save_compact`` into a temporary folder, and prints the
sizes (``du -sh``) and the cosine between the embeddings of the loaded run
and of the re-saved copy on XQuAD-R questions and candidate sentences.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import model_store as MS  # noqa: E402
from lib.backbones import load_encoder  # noqa: E402
from lib.data import load_lareqa  # noqa: E402

REF_KEYS = ("weights", "weights_sha256", "n_trained_tensors", "n_trained_values", "stored_dtype")


def du(path: Path) -> str:
    return subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True).stdout.split()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--texts", type=int, default=200)
    args = ap.parse_args(argv)
    src = args.run / "model"
    if MS.kind(src) != "compact":
        print(f"{src} is not a compact folder (kind {MS.kind(src)!r})", file=sys.stderr)
        return 1
    encoder = load_encoder(str(src))
    base = {k: v for k, v in json.loads((src / MS.BASE_REF).read_text()).items() if k not in REF_KEYS}
    data = load_lareqa("xquad_r", max_items=60)
    with tempfile.TemporaryDirectory() as tmp:
        out = MS.save_compact(encoder, Path(tmp) / "model", base, name=encoder.name)
        again = load_encoder(str(out))
        print(f"run {args.run}: du -sh {du(args.run)} (model/ {du(src)}, last/ {du(args.run / 'last')})")
        print(f"model/ re-saved as {MS.STORE_DTYPE}: {du(out)}")
        for role, texts in (("query", data.queries["text"]), ("passage", data.docs["text"])):
            texts = texts.tolist()[:args.texts]
            cos = (encoder.encode(texts, role) * again.encode(texts, role)).sum(1)
            print(f"{role}: {len(texts)} XQuAD-R texts, cosine min {cos.min():.6f}, mean {cos.mean():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
