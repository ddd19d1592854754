"""Execute the study's notebooks for one profile with papermill.

    python -m lib.runner PROFILE               # run every notebook in order
    python -m lib.runner PROFILE --only 03 04  # just these notebooks
    python -m lib.runner PROFILE --dry-run     # print the plan, run nothing
    python -m lib.runner PROFILE --prepare DIR # write parameterised copies for nbval

Executed notebooks land in ``results/<profile>/notebooks/``; the run stops at
the first failing notebook and names it. Wall-clock times are appended to
``results/<profile>/run_times.csv``.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from lib.config import NOTEBOOK_DIR, NotebookRun, load_profile, plan_runs
from lib.errors import StudyError
from lib.paths import results_dir

KERNEL = "python3"


def _select(runs: list[NotebookRun], only: list[str] | None) -> list[NotebookRun]:
    if not only:
        return runs
    chosen = [r for r in runs if any(r.notebook.stem.startswith(o) for o in only)]
    if not chosen:
        raise StudyError(f"--only {only} matches no notebook; notebooks: {sorted({r.notebook.stem for r in runs})}")
    return chosen


def prepare(runs: list[NotebookRun], out_dir: Path) -> list[Path]:
    """Write each run's notebook with its parameters injected but not executed."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.ipynb"):
        stale.unlink()
    written = []
    for run in runs:
        target = out_dir / f"{run.name}.ipynb"
        pm.execute_notebook(str(run.notebook), str(target), parameters=run.parameters,
                            prepare_only=True, kernel_name=KERNEL, progress_bar=False)
        written.append(target)
    return written


def execute(profile_name: str, runs: list[NotebookRun], quiet: bool = False) -> int:
    """Run notebooks in order; return a process exit code."""
    import papermill as pm

    out_dir = results_dir(profile_name) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    times_path = results_dir(profile_name) / "run_times.csv"
    started = time.perf_counter()
    for i, run in enumerate(runs, 1):
        target = out_dir / f"{run.name}.ipynb"
        shown = ", ".join(f"{k}={v}" for k, v in run.parameters.items() if k != "profile")
        print(f"\n[{i}/{len(runs)}] {run.name}  ({shown})", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(run.notebook), str(target), parameters=run.parameters,
                                kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=quiet,
                                stdout_file=None if quiet else sys.stdout,
                                stderr_file=None if quiet else sys.stderr)
        except Exception as exc:  # papermill wraps the cell's error; show its last line
            summary = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            print(f"\nFAILED: notebook {run.notebook.name} ({run.name}) stopped with: {summary}\n"
                  f"        The executed copy with the traceback is {target}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        _log_time(times_path, run, seconds)
        print(f"[{i}/{len(runs)}] {run.name} done in {seconds / 60:.1f} min", flush=True)
    total = time.perf_counter() - started
    print(f"\nProfile '{profile_name}': {len(runs)} notebook run(s) in {total / 60:.1f} min. "
          f"Results in {results_dir(profile_name)}", flush=True)
    return 0


def _log_time(path: Path, run: NotebookRun, seconds: float) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["finished_utc", "notebook", "run", "seconds", "cpu_count"])
        writer.writerow([datetime.now(timezone.utc).isoformat(timespec="seconds"), run.notebook.stem,
                         run.name, f"{seconds:.1f}", os.cpu_count()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="profile name in configs/ (smoke, default, paper) or a YAML path")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only notebooks whose name starts so")
    parser.add_argument("--dry-run", action="store_true", help="print the planned runs and exit")
    parser.add_argument("--prepare", metavar="DIR", help="write parameterised notebooks to DIR (for nbval)")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        runs = _select(plan_runs(profile), args.only)
        if args.dry_run:
            for run in runs:
                print(f"{run.name}: {run.parameters}")
            return 0
        if args.prepare:
            for path in prepare(runs, Path(args.prepare)):
                print(path)
            return 0
        return execute(profile.name, runs, quiet=args.quiet)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
