"""Fault sweep: run the study the way a user would, with one fault or bad input per case.

    .venv/bin/python benchmarks/fault_sweep.py                  # every case, table on stdout
    .venv/bin/python benchmarks/fault_sweep.py --write docs/faults.md
    .venv/bin/python benchmarks/fault_sweep.py --quick          # only the cases that stop before a notebook
    .venv/bin/python benchmarks/fault_sweep.py --only lock,ctrl # cases whose id contains a word

Each case runs ``./run_all.sh <profile> ...`` in a fresh process, from a
scratch directory (profile paths relative to it), against a copy of the data
folder (``HBT_DATA_DIR``) and, for the backbone cases, a copy of the
converted backbone in a scratch ``HBT_CACHE_DIR``; nothing shared is
modified. Profiles are small variants of ``configs/smoke.yaml`` named
``fsweep_<case>``; their ``results/fsweep_*`` folders are removed at the end.

A case *passes* when the outcome is the expected one: a bad input stops with
a non-zero exit code and a one-line message without a traceback; a fault the
study repairs (a damaged cached backbone) says so and the run succeeds; a
valid run succeeds. ``silent wrong run`` = exit 0 where an error was due;
``raw traceback`` = a Python traceback printed for an expected fault.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.data_files import data_dir  # noqa: E402
from lib.embedded_model import embedded_model_dir  # noqa: E402
from lib.paths import CACHE_DIR  # noqa: E402

RUN_ALL = str(ROOT / "run_all.sh")
EMBEDDED = "models/multilingual-e5-small-q4"

BASE = """\
description: fault sweep variant of the smoke profile
common:
  backbone: embedded
  num_layers: 2
  max_items: 30
notebooks:
  01_data_preparation: {}
  02_batch_sampling:
    steps: 50
    batch_size: 8
  03_training:
    sweep:
      - {strategy: [mono], seed: [0]}
    steps: 12
    batch_size: 8
    warmup_steps: 2
    eval_every: 6
    checkpoint_every: 4
    val_pairs: 32
"""


@dataclass
class Ctx:
    work: Path
    data: Path
    case_id: str
    env: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"fsweep_{self.case_id}"

    @property
    def results(self) -> Path:
        return ROOT / "results" / self.name

    def profile(self, text: str = BASE, name: str | None = None) -> str:
        path = self.work / f"{name or self.name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path.name  # relative: resolved from the caller's directory (the scratch folder)

    def variant(self, extra_03: str = "", common: str = "") -> str:
        text = BASE
        if common:
            text = text.replace("  max_items: 30\n", f"  max_items: 30\n{common}")
        if extra_03:
            text = text.replace("    val_pairs: 32\n", f"    val_pairs: 32\n{extra_03}")
        return self.profile(text)


@dataclass
class Case:
    id: str
    what: str
    expect: str  # "error" (stops, non-zero), "ok" (exit 0), "repaired" (exit 0 and a warning), "interrupt"
    setup: Callable[[Ctx], list[str]]  # returns runner arguments (profile first)
    heavy: bool = False  # runs a notebook
    custom: Callable[[Ctx, list[str]], tuple[int, str, float]] | None = None
    must_say: str = ""  # a regex the output must contain
    own_data: bool = False  # damages its own copy of the data folder


def run(ctx: Ctx, args: list[str], timeout: float = 900, env: dict | None = None,
        prefix: list[str] | None = None) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run((prefix or []) + [RUN_ALL] + args, cwd=ctx.work, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **ctx.env, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0


# --------------------------------------------------------------------------
# Data faults (on the scratch copy)


def _break(rel: str, how: str) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        path = ctx.data / rel
        if how == "delete":
            path.unlink()
        elif how == "byte":
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0x01
            path.write_bytes(bytes(raw))
        elif how == "truncate":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif how == "garbage":
            path.write_text(path.read_text() + "not-a-checksum-line\n")
        return [ctx.variant()]
    return setup


# --------------------------------------------------------------------------
# Cases that need running processes


def _await(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(1)
    return False


def _checkpoint(ctx: Ctx) -> bool:
    return any(ctx.results.glob("models/*/checkpoint/state.pt"))


def ctrl_c(ctx: Ctx, args: list[str]) -> tuple[int, str, float]:
    """SIGINT to the whole process group once training has a checkpoint (what Ctrl-C in a terminal does)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([RUN_ALL] + args, cwd=ctx.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, **ctx.env})
    if not _await(lambda: _checkpoint(ctx), 600):
        proc.kill()
        return -1, "no checkpoint appeared within 600 s", time.perf_counter() - t0
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out, time.perf_counter() - t0


def concurrent(ctx: Ctx, args: list[str]) -> tuple[int, str, float]:
    """Run A; a second run B while A trains; kill -9 A; run C (must take over and resume)."""
    t0 = time.perf_counter()
    a = subprocess.Popen([RUN_ALL] + args, cwd=ctx.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True, env={**os.environ, **ctx.env})
    log = []
    if not _await(lambda: _checkpoint(ctx), 600):
        a.kill()
        return -1, "no checkpoint appeared within 600 s", time.perf_counter() - t0
    rc_b, out_b, s_b = run(ctx, args)
    log.append(f"[second run while the first trains] exit {rc_b} after {s_b:.1f} s: {out_b.strip()}")
    os.killpg(a.pid, signal.SIGKILL)
    a.communicate()
    log.append(f"[kill -9 of the first run (pid {a.pid})]")
    rc_c, out_c, s_c = run(ctx, args + ["--quiet"])
    shown = [ln for ln in out_c.splitlines() if ln.startswith(("note:", "[", "Profile", "error"))]
    resumed = [ln for nb in ctx.results.glob("notebooks/03_*.ipynb")
               for ln in re.findall(r"resuming [^\\\"]+ from step \d+", nb.read_text())]
    log.append(f"[third run] exit {rc_c} after {s_c:.0f} s: " + " | ".join(shown + resumed))
    ok = rc_b == 3 and rc_c == 0 and bool(resumed) and str(a.pid) in out_b
    return (0 if ok else 1), "\n".join(log), time.perf_counter() - t0


def stale_leftovers(ctx: Ctx) -> list[str]:
    """A lock file of a dead run and a temp folder of a killed write, as SIGKILL leaves them."""
    ctx.results.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (ctx.results / ".run.lock").write_text(
        f'{{"pid": {dead.pid}, "host": "x", "started": "2026-01-01T00:00:00+00:00", "command": "killed"}}\n')
    tmp = ctx.results / ".run_times.csv.k1ll3d_x"
    tmp.mkdir()
    (tmp / "run_times.csv").write_text("finished_utc,notebook,ru")
    return [ctx.variant(), "--only", "02", "--quiet"]


def locked(ctx: Ctx, args: list[str]) -> tuple[int, str, float]:
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time; from lib.integrity import RunLock; "
                               "held = RunLock(sys.argv[1], command='./run_all.sh other-run').acquire(); "
                               "print('held', flush=True); time.sleep(120)", str(ctx.results)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    try:
        return run(ctx, args)
    finally:
        holder.kill()
        holder.wait()


def _mounted(ctx: Ctx, args: list[str], mount: str) -> tuple[int, str, float]:
    """Run with the profile's results folder replaced by ``mount`` (in a private mount namespace)."""
    ctx.results.mkdir(parents=True, exist_ok=True)
    script = f'{mount} && exec "$@"'
    return run(ctx, args, prefix=["unshare", "-m", "sh", "-c", script, str(ctx.results)])


def read_only(ctx: Ctx, args: list[str]) -> tuple[int, str, float]:
    """The results folder on a read-only mount (root ignores file permissions, not a read-only mount)."""
    return _mounted(ctx, args, 'mount --bind -o ro "$0" "$0"')


def full_disk(ctx: Ctx, args: list[str]) -> tuple[int, str, float]:
    """The results folder on a 64 KiB tmpfs: the notebook's outputs do not fit (a real ENOSPC)."""
    return _mounted(ctx, args, 'mount -t tmpfs -o size=64k tmpfs "$0"')


def backbone_fault(how: str) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        cache = ctx.work / "cache"
        src = CACHE_DIR / EMBEDDED
        if not (src / "SHA256SUMS").is_file():
            embedded_model_dir()
        shutil.copytree(src, cache / EMBEDDED)
        weights = cache / EMBEDDED / "model.safetensors"
        if how == "byte":
            with open(weights, "r+b") as fh:
                fh.seek(weights.stat().st_size // 2)
                b = fh.read(1)
                fh.seek(-1, 1)
                fh.write(bytes([b[0] ^ 0x01]))
        else:
            with open(weights, "r+b") as fh:
                fh.truncate(weights.stat().st_size // 3)
        ctx.env["HBT_CACHE_DIR"] = str(cache)
        return [ctx.variant(), "--only", "03", "--quiet"]
    return setup


def _sub(ctx: Ctx, old: str, new: str) -> str:
    return ctx.profile(BASE.replace(old, new))


CASES = [
    # profiles
    Case("empty", "empty profile file", "error", lambda c: [c.profile("")]),
    Case("descr", "profile with only a description", "error", lambda c: [c.profile("description: my run\n")]),
    Case("list", "profile that is a YAML list", "error", lambda c: [c.profile("- a\n- b\n")]),
    Case("yaml", "invalid YAML", "error", lambda c: [c.profile("notebooks: {03_training: [\n")]),
    Case("topkey", "unknown top-level key (notebook: instead of notebooks:)", "error",
         lambda c: [c.profile("notebook:\n  03_training: {}\n")]),
    Case("nbname", "unknown notebook name", "error", lambda c: [_sub(c, "03_training:", "03_trainig:")]),
    Case("typo", "misspelt parameter (stpes)", "error", lambda c: [_sub(c, "    steps: 12", "    stpes: 12")]),
    Case("type", "wrong type (steps: '12')", "error", lambda c: [_sub(c, "    steps: 12", "    steps: '12'")]),
    Case("alpha", "alpha: 1.5", "error", lambda c: [c.variant("    alpha: 1.5\n")], must_say="alpha"),
    Case("hybird", "strategy: hybird (in a sweep)", "error",
         lambda c: [_sub(c, "strategy: [mono]", "strategy: [mono, hybird]")], must_say="hybird"),
    Case("steps0", "steps: 0", "error", lambda c: [_sub(c, "    steps: 12", "    steps: 0")]),
    Case("batch1", "batch_size: 1", "error", lambda c: [_sub(c, "    batch_size: 8\n    warmup", "    batch_size: 1\n    warmup")]),
    Case("warmup", "warmup_steps: 50 > steps: 12", "error", lambda c: [_sub(c, "warmup_steps: 2", "warmup_steps: 50")]),
    Case("lr0", "lr: 0", "error", lambda c: [c.variant("    lr: 0\n")]),
    Case("layers", "num_layers: 13 (the backbone has 12)", "error",
         lambda c: [_sub(c, "num_layers: 2", "num_layers: 13")]),
    Case("sizes", "07 layer_sizes: '2,13'", "error",
         lambda c: [c.profile(BASE + "  07_model_size_scaling: {layer_sizes: '2,13'}\n")]),
    Case("datasets", "04 datasets: 'xquad_r,tydiqa'", "error",
         lambda c: [c.profile(BASE + "  04_evaluation: {datasets: 'xquad_r,tydiqa'}\n")]),
    Case("dureader", "06 dureader_source: web", "error",
         lambda c: [c.profile(BASE + "  06_inference_efficiency: {dureader_source: web}\n")]),
    Case("nboot", "04 n_bootstrap: 0", "error", lambda c: [c.profile(BASE + "  04_evaluation: {n_bootstrap: 0}\n")]),
    Case("bbfolder", "backbone: ./no/such/model", "error",
         lambda c: [_sub(c, "backbone: embedded", "backbone: ./no/such/model")]),
    Case("hubid", "backbone: 'not a hub id!'", "error",
         lambda c: [_sub(c, "backbone: embedded", "backbone: 'not a hub id!'")]),
    Case("dryalpha", "--dry-run with alpha: 1.5", "error", lambda c: [c.variant("    alpha: 1.5\n"), "--dry-run"]),
    Case("drysmoke", "--dry-run of the shipped profiles (smoke)", "ok", lambda c: ["smoke", "--dry-run"]),
    Case("drydefault", "--dry-run of the shipped profiles (default)", "ok", lambda c: ["default", "--dry-run"]),
    Case("relpath", "relative profile path from another directory (--dry-run)", "ok",
         lambda c: [c.variant(), "--dry-run"], must_say="every value valid"),
    Case("noprofile", "profile path that does not exist", "error", lambda c: ["nothere.yaml"],
         must_say="relative paths are taken from"),
    Case("onlybad", "--only 09 (no such notebook)", "error", lambda c: [c.variant(), "--only", "09"]),
    Case("option", "unknown option --fast", "error", lambda c: [c.variant(), "--fast"]),
    # missing inputs of earlier notebooks
    Case("order04", "--only 04 on a fresh profile (no trained models)", "error",
         lambda c: [c.variant(), "--only", "04"], must_say="Run notebook 03 first"),
    Case("order05", "--only 05 on a fresh profile (no evaluation)", "error",
         lambda c: [c.variant(), "--only", "05"], must_say="Run notebook 04 first"),
    # data
    Case("tydiko", "TyDi ko training file deleted, --only 03", "error",
         lambda c: _break("tydiqa_goldp/train_partial/tydiqa.goldp.ko.train.json", "delete")(c) + ["--only", "03"],
         must_say="missing", own_data=True),
    Case("tydibyte", "one byte changed in a TyDi training file, --only 03", "error",
         lambda c: _break("tydiqa_goldp/train_partial/tydiqa.goldp.sw.train.json", "byte")(c) + ["--only", "03"],
         must_say="corrupt", own_data=True),
    Case("mlqatrunc", "MLQA test file truncated, --only 02", "error",
         lambda c: _break("mlqa/test_partial/test-context-de-question-es.json", "truncate")(c) + ["--only", "02"], own_data=True),
    Case("xquaddel", "XQuAD-R file deleted, --only 01", "error",
         lambda c: _break("xquad_r/th.json", "delete")(c) + ["--only", "01"], own_data=True),
    Case("sums", "SHA256SUMS with a malformed line", "error",
         lambda c: _break("SHA256SUMS", "garbage")(c) + ["--only", "03"], own_data=True),
    Case("datadir", "HBT_DATA_DIR points nowhere", "error",
         lambda c: (c.env.update(HBT_DATA_DIR=str(c.work / "nowhere")) or [c.variant(), "--only", "03"])),
    # one run per folder, permissions
    Case("lock", "results folder held by a live run", "error", lambda c: [c.variant(), "--only", "03"],
         custom=locked, must_say="in use by another run: pid"),
    Case("readonly", "results folder on a read-only mount, --only 02", "error",
         lambda c: [c.variant(), "--only", "02", "--quiet"], custom=read_only, must_say="is read-only"),
    Case("debug", "HBT_DEBUG=1 with alpha: 1.5 (traceback on request)", "error",
         lambda c: (c.env.update(HBT_DEBUG="1") or [c.variant("    alpha: 1.5\n"), "--dry-run"]),
         must_say="Traceback"),
    # runs
    Case("disk", "results folder on a full disk (64 KiB tmpfs), --only 02", "error",
         lambda c: [c.variant(), "--only", "02", "--quiet"], heavy=True, custom=full_disk,
         must_say="no space left on the disk holding"),
    Case("stale", "lock file of a dead run + temp folder of a killed write, --only 02", "ok", stale_leftovers,
         heavy=True, must_say="took over the lock.*\n.*removed 1 temporary folder"),
    Case("ckbyte", "one byte changed in the cached backbone's model.safetensors, --only 03", "repaired",
         backbone_fault("byte"), heavy=True, must_say="Converting it again"),
    Case("cktrunc", "cached backbone's model.safetensors truncated, --only 03", "repaired",
         backbone_fault("truncate"), heavy=True, must_say="Converting it again"),
    Case("ctrlc", "Ctrl-C (SIGINT to the process group) during training, --only 03", "interrupt",
         lambda c: [c.variant(), "--only", "03", "--quiet"], heavy=True, custom=ctrl_c,
         must_say="interrupted in 03_training.*checkpoint at step \\d+ of 12.*rerun the same command"),
    Case("concurrent", "two runs of --only 03 at once, kill -9 of the first, a third run", "ok",
         lambda c: [c.variant(), "--only", "03"], heavy=True, custom=concurrent,
         must_say="in use by another run.*\n.*kill -9.*\n.*took over the lock.*resuming"),
]


def classify(case: Case, rc: int, out: str) -> tuple[str, bool]:
    traceback = "Traceback (most recent call last)" in out
    said = bool(re.search(case.must_say, out, re.S)) if case.must_say else True
    if case.id == "debug":
        return ("traceback shown on request", rc != 0 and traceback)
    if traceback:
        return "RAW TRACEBACK", False
    if case.expect == "error":
        if rc == 0:
            return "SILENT WRONG RUN", False
        return ("stopped with a clear error" if said else "stopped, message lacks the culprit"), said
    if case.expect == "interrupt":
        return ("interrupted cleanly" if rc == 130 and said else f"interrupt exit {rc}"), rc == 130 and said
    if case.expect == "repaired":
        return ("detected, repaired, run finished" if rc == 0 and said else "not repaired"), rc == 0 and said
    return ("ran" if rc == 0 and said else "FAILED"), rc == 0 and said


def message(out: str, work: Path) -> str:
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    starts = ("error:", "warning:", "note:", "interrupted", "FAILED", "usage:", "[second", "[kill", "[third",
              "python -m lib.runner:")
    picked, block = [], False
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith(starts):
            picked.append(line)
            block = True
        elif block and raw.startswith(" ") and line and not line.startswith("Traceback"):
            picked[-1] += " " + line  # continuation of a multi-line message
        else:
            block = False
    if not picked:
        picked = lines[-1:]
    text = " / ".join(picked)
    text = text.replace(str(work), "$TMP").replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    return re.sub(r"pid \d+", "pid N", text).replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", metavar="MD", help="write the table into this markdown file")
    parser.add_argument("--quick", action="store_true", help="skip the cases that run notebooks")
    parser.add_argument("--only", help="comma-separated words; run the cases whose id contains one")
    args = parser.parse_args()
    cases = [c for c in CASES if not (args.quick and c.heavy)]
    if args.only:
        words = args.only.split(",")
        cases = [c for c in cases if any(w in c.id for w in words)]
    rows = []
    embedded_model_dir()  # converted (with its checksums) once, in the real cache, before the cases
    top = Path(tempfile.mkdtemp(prefix="fault_sweep_"))
    os.chmod(top, 0o755)
    pristine = top / "data"
    _copy_data(data_dir(), pristine)
    cache = top / "cache"  # checksum cache of the scratch data; the converted models are the real ones
    cache.mkdir()
    (cache / "models").symlink_to(CACHE_DIR / "models")
    try:
        _run_cases(cases, top, pristine, cache, rows)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    silent = sum(r[2] == "SILENT WRONG RUN" for r in rows)
    raw = sum(r[2] == "RAW TRACEBACK" for r in rows)
    summary = (f"{len(rows)} cases: {sum(r[3] for r in rows)} as expected, {silent} silent wrong runs, "
               f"{raw} raw tracebacks for expected faults")
    print("\n" + summary)
    if args.write:
        table = ["| # | case | exit | outcome | time (s) | message (first lines the user sees) |",
                 "|---|---|---|---|---|---|"]
        for i, (case, rc, outcome, ok, msg, seconds) in enumerate(rows, 1):
            table.append(f"| {i} | {case.what} | {rc} | {outcome}{'' if ok else ' (unexpected)'} | "
                         f"{seconds:.1f} | {msg} |")
        write_table(Path(args.write), summary, "\n".join(table))
    return 0 if all(r[3] for r in rows) else 1


def _run_cases(cases, top: Path, pristine: Path, cache: Path, rows: list) -> None:
    for i, case in enumerate(cases, 1):
        work = Path(tempfile.mkdtemp(prefix=f"{case.id}_", dir=top))
        os.chmod(work, 0o755)
        try:
            data = pristine
            if case.own_data:
                data = work / "data"
                _copy_data(pristine, data)
            ctx = Ctx(work=work, data=data, case_id=case.id,
                      env={"HBT_DATA_DIR": str(data), "HBT_CACHE_DIR": str(cache)})
            runner_args = case.setup(ctx)
            rc, out, seconds = (case.custom or run)(ctx, runner_args)
            outcome, ok = classify(case, rc, out)
            rows.append((case, rc, outcome, ok, message(out, work), seconds))
            print(f"[{i}/{len(cases)}] {case.id:11s} exit {rc:>3}  {seconds:6.1f} s  {outcome}"
                  f"{'' if ok else '  <-- CHECK'}\n      {message(out, work)[:400]}", flush=True)
            if not ok and os.environ.get("FAULT_SWEEP_VERBOSE"):
                print(textwrap.indent(out, "      | "), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(ROOT / "results" / f"fsweep_{case.id}", ignore_errors=True)


def _copy_data(source: Path, target: Path) -> None:
    shutil.copytree(source, target)
    for p in [target, *target.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


def write_table(path: Path, summary: str, table: str) -> None:
    begin, end = "<!-- sweep table: begin -->", "<!-- sweep table: end -->"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = f"{begin}\n_{summary} (benchmarks/fault_sweep.py, {stamp})._\n\n{table}\n{end}"
    text = path.read_text() if path.is_file() else f"# Fault cases\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    path.write_text(head + block + rest.split(end, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
