"""Execute the study's notebooks for one profile with papermill.

    python -m lib.runner PROFILE               # run every notebook in order
    python -m lib.runner PROFILE --only 03 04  # just these notebooks
    python -m lib.runner PROFILE --dry-run     # validate the profile, print the plan, run nothing
    python -m lib.runner PROFILE --prepare DIR # write parameterised copies for nbval

Before anything executes, the profile is validated completely (keys, types
and values) and every selected notebook's inputs from earlier notebooks are
checked (e.g. notebook 04 needs notebook 03's trained models); a missing
input stops the run and names the notebook to run first (``--allow-missing``
runs anyway on what is there). One run per results folder at a time: a
second run stops with the holder's pid and start time; a lock left by a
killed run is taken over, and the temporary files of writes it did not
finish are removed. Ctrl-C stops with one line and exit code 130; rerun the
same command to resume. Expected faults print one line (``--debug`` or
``HBT_DEBUG=1`` shows the traceback).

Executed notebooks land in ``results/<profile>/notebooks/`` (the kernel
processes' own output in ``kernel.log`` there); the run stops at
the first failing notebook and names it. Wall-clock times are appended to
``results/<profile>/run_times.csv``.

Exit codes: 0 done, 1 a notebook failed or a disk / permission fault,
2 a bad profile, option or input, 3 the results folder is in use, 130 interrupted.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from lib.config import NOTEBOOK_DIR, NotebookRun, apply_precision, load_profile, notebook_parameters, plan_runs
from lib.errors import DataError, StudyError
from lib.integrity import LockedError, RunLock, clean_stale_temps, describe_os_error, describe_stale
from lib.machine import describe as describe_machine
from lib.notebook_export import slim_file
from lib.paths import atomic_write, results_dir
from lib.settings import comma_list

# pandas (data_files), torch (training, embedded_model) and papermill are imported inside the functions
# that use them: `python -m lib.runner --help` and a bad profile or option answer in 0.15 s instead of
# 2-4 s (a --dry-run imports them anyway while it validates).

KERNEL = "python3"
# seconds a kernel may take to start: papermill's 60 s default fails a run when the 2 cores are busy (or the
# run was paused) while the kernel starts; a slow start is not an error
KERNEL_START_TIMEOUT = 600
EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED, EXIT_INTERRUPTED = 1, 2, 3, 130
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


class Interrupted(Exception):
    """The user stopped the run (Ctrl-C, or the kernel was interrupted)."""


def _select(runs: list[NotebookRun], only: list[str] | None) -> list[NotebookRun]:
    if not only:
        return runs
    chosen = [r for r in runs if any(r.notebook.stem.startswith(o) for o in only)]
    if not chosen:
        raise StudyError(f"--only {only} matches no notebook; notebooks: {sorted({r.notebook.stem for r in runs})}")
    return chosen


def prepare(runs: list[NotebookRun], out_dir: Path) -> list[Path]:
    """Write each run's notebook with its parameters injected but not executed."""
    import papermill as pm  # lazy: 1.7 s, see the note at the imports

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


# --------------------------------------------------------------------------
# What a notebook needs from earlier ones


def _values(run: NotebookRun) -> dict:
    values = {k: info["default"] for k, info in notebook_parameters(run.notebook).items()}
    values.update(run.parameters)
    return values


def train_dir(profile_name: str, run: NotebookRun) -> Path:
    """The run folder notebook 03 writes for ``run`` (``results/<profile>/models/<run name>``)."""
    from lib.training import config_from, run_name  # lazy: torch, see the note at the imports

    return results_dir(profile_name) / "models" / run_name(config_from(_values(run)))


def _finished(folder: Path, weights: bool = False) -> bool:
    """A finished training run (``lib.models.is_finished``); with ``weights``, one whose weights are here."""
    from lib.models import has_weights, is_finished  # lazy: torch, see the note at the imports

    return is_finished(folder) and (has_weights(folder) or not weights)


def _names(folders: list[Path], shown: int = 6) -> str:
    """The first ``shown`` folder names, and how many more."""
    return ", ".join(f.name for f in folders[:shown]) + (f" and {len(folders) - shown} more"
                                                         if len(folders) > shown else "")


def _measured_elsewhere(profile_name: str, all_runs: list[NotebookRun], run06: NotebookRun) -> tuple[list[Path], bool]:
    """The runs notebook 06 would measure that are finished but whose weights are not on this machine, and
    whether ``efficiency.csv`` already holds a measurement of every model it names (made where they were)."""
    out = results_dir(profile_name)
    wanted = comma_list(_values(run06).get("models", ""))
    if wanted:
        folders = [out / "models" / m for m in wanted if m != "zero-shot"]
    else:
        folders = [train_dir(profile_name, r) for r in all_runs if r.notebook.stem.startswith("03")]
    elsewhere = [f for f in folders if _finished(f) and not _finished(f, weights=True)]
    path = out / "efficiency.csv"
    if not elsewhere or not path.is_file():
        return elsewhere, False
    with path.open(newline="") as fh:
        have = {row.get("model", "") for row in csv.DictReader(fh)}
    return elsewhere, all(f.name in have for f in folders) and (not wanted or "zero-shot" not in wanted
                                                                or "zero-shot" in have)


def measured_already(profile_name: str, all_runs: list[NotebookRun], runs: list[NotebookRun]) -> list[NotebookRun]:
    """``runs`` without a notebook-06 run whose models were all measured in an earlier session (rows in
    ``efficiency.csv``) and some of whose weights are not here: it cannot measure them again, and its
    executed notebook and figures from that session stay as they are (printed as a note)."""
    kept = []
    for run in runs:
        if run.notebook.stem.startswith("06"):
            elsewhere, measured = _measured_elsewhere(profile_name, all_runs, run)
            if elsewhere and measured:
                print(f"note: {run.name} is not run again: {results_dir(profile_name) / 'efficiency.csv'} holds its "
                      f"measurement of every model it names, and the weights of {len(elsewhere)} of them are not "
                      "on this machine (trained in another session); its executed notebook and figures from "
                      "that session stay. Retrain those runs to measure again", flush=True)
                continue
        kept.append(run)
    return kept


def trained_already(profile_name: str, runs: list[NotebookRun], rerun: bool = False) -> list[NotebookRun]:
    """``runs`` without the notebook-03 runs that are done: the training is finished, the executed notebook is in
    ``results/<profile>/notebooks`` with the same parameters, and ``run_times.csv`` records that it ran to the
    end (so its evaluations are there too). Executing them again would only reuse the run and replace the
    notebook that shows its training; ``rerun`` (``--rerun-finished``) keeps them all."""
    if rerun:
        return runs
    out = results_dir(profile_name)
    completed = last_finished(profile_name)
    kept, done = [], []
    for run in runs:
        executed = out / "notebooks" / f"{run.name}.ipynb"
        if (run.notebook.stem.startswith("03") and run.name in completed and executed.is_file()
                and _finished(train_dir(profile_name, run))):
            try:
                injected = json.loads(executed.read_text(encoding="utf-8"))["metadata"]["papermill"]["parameters"]
            except (ValueError, KeyError, TypeError):
                injected = None
            if injected == json.loads(json.dumps(run.parameters)):
                done.append(run)
                continue
        kept.append(run)
    if done:
        print(f"note: {len(done)} notebook-03 run(s) already trained and evaluated, with their executed notebooks in "
              f"{out / 'notebooks'}: not run again ({', '.join(r.name for r in done[:3])}"
              + (f" and {len(done) - 3} more" if len(done) > 3 else "") + "; --rerun-finished executes them again)",
              flush=True)
    return kept


def missing_inputs(profile_name: str, all_runs: list[NotebookRun], selected: list[NotebookRun],
                   command: str) -> list[str]:
    """One message per selected notebook whose inputs neither exist nor come from an earlier selected notebook."""
    problems: list[str] = []
    stems = list(dict.fromkeys(r.notebook.stem for r in selected))
    training = [r for r in all_runs if r.notebook.stem.startswith("03")]
    out = results_dir(profile_name)
    for i, stem in enumerate(stems):
        earlier = {s[:2] for s in stems[:i]}
        if stem[:2] in ("04", "06") and "03" not in earlier and training:
            folders = {train_dir(profile_name, r): r for r in training}
            missing = [f for f in folders if not _finished(f)]
            if stem[:2] == "06":  # notebook 06 measures every trained run, or the runs named in `models`
                run06 = next(r for r in selected if r.notebook.stem == stem)
                wanted = comma_list(_values(run06).get("models", ""))
                if wanted:
                    missing = [out / "models" / m for m in wanted
                               if m != "zero-shot" and not _finished(out / "models" / m)]
            if missing:
                names = _names(missing)
                problems.append(
                    f"notebook {stem} needs the trained models of notebook 03, and {len(missing)} are not in "
                    f"{out / 'models'} ({names}). Run notebook 03 first: {command} --only 03 "
                    f"(or --only 03 {stem[:2]}); or add --allow-missing to run {stem} on what is there")
        if stem[:2] == "06":
            run06 = next(r for r in selected if r.notebook.stem == stem)
            elsewhere, measured = _measured_elsewhere(profile_name, all_runs, run06)
            if elsewhere and not measured:
                problems.append(
                    f"notebook {stem} encodes with every model it measures, and the weights of {len(elsewhere)} "
                    f"finished run(s) are not on this machine ({_names(elsewhere)}): their results came with the results "
                    f"folder, their weights stayed where they were trained. Train them again into the same "
                    f"identity (checked step by step against their training logs): python -m lib.training "
                    f"restore {profile_name} {' '.join(f.name for f in elsewhere)}; or name the runs to "
                    f"measure in notebook 06's `models` parameter")
        if stem[:2] == "05" and "04" not in earlier and not (out / "metrics.csv").is_file():
            problems.append(
                f"notebook {stem} reads notebook 04's evaluation ({out / 'metrics.csv'} does not exist). Run "
                f"notebook 04 first: {command} --only 04 (or --only 04 05); or add --allow-missing")
    return problems


def needed_datasets(run: NotebookRun) -> list[str]:
    """The datasets a notebook run reads (names of :mod:`lib.data_files`)."""
    from lib.data_files import DATASETS  # lazy: pandas, see the note at the imports

    values = _values(run)
    stem = run.notebook.stem[:2]
    listed = comma_list(values.get("datasets", ""))
    training = ["mlqa_test", "tydiqa"]
    if stem == "01":
        return list(DATASETS)
    if stem in ("02", "03"):
        return training
    if stem in ("04", "05"):
        return listed
    if stem == "06":
        return (["dureader_demo"] if values.get("dureader_source", "demo") == "demo" else []) + ["xquad_r"]
    if stem == "07":
        return training + listed
    single = values.get("dataset")  # e.g. notebook 08's one dataset
    return [single] if single in DATASETS else []


def check_data(runs: list[NotebookRun]) -> None:
    """DataError listing every missing or changed data file the selected notebooks read (before any runs)."""
    from lib.data_files import CHECKSUM_FILE, data_dir, preflight  # lazy: pandas, see the note at the imports

    needed = list(dict.fromkeys(d for run in runs for d in needed_datasets(run)))
    problems = preflight(needed)
    if len(problems) == 1:
        raise DataError(f"{problems[0]} (found before running anything)")
    if problems:
        shown = "\n       ".join(problems[:8]) + (f"\n       ... and {len(problems) - 8} more"
                                                   if len(problems) > 8 else "")
        raise DataError(f"{len(problems)} data problems found against {data_dir() / CHECKSUM_FILE} before "
                        f"running anything:\n       {shown}")


def check_backbone(runs: list[NotebookRun]) -> None:
    """The converted embedded backbone, checked (and converted again if damaged) before any notebook starts.

    Done here so that the warning reaches the user even with ``--quiet``;
    the notebooks find the folder intact afterwards.
    """
    if any(_values(run).get("backbone") == "embedded" for run in runs):
        from lib.embedded_model import embedded_model_dir  # lazy: torch, see the note at the imports

        embedded_model_dir()


# --------------------------------------------------------------------------
# Running


def _error_summary(exc: BaseException) -> str:
    """The error line of a failed cell (``Type: message``), without colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line
    return lines[-1] if lines else type(exc).__name__


def _hint(summary: str, folder: Path | None = None) -> str:
    """The fix for OS errors raised inside a notebook (``folder``: where it was writing when unnamed)."""
    m = re.search(r"\[Errno (\d+)\][^:]*(?::\s*'([^']+)')?", summary)
    if not m:
        return ""
    exc = OSError(int(m[1]), os.strerror(int(m[1])), m[2] or None)
    message = describe_os_error(exc, folder)
    return f"\n        {message}" if message else ""


def _kernel_manager(log_path: Path):
    """A kernel manager whose kernel process writes its own stdout / stderr to ``log_path``.

    Cell output still reaches the notebook (and the terminal) through
    Jupyter's messages; only the kernel process's own noise goes to the log,
    e.g. the shutdown traceback a kernel prints when the run is interrupted.
    """
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "ab") as log:
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def execute(profile_name: str, runs: list[NotebookRun], quiet: bool = False, state: dict | None = None) -> int:
    """Run notebooks in order; return a process exit code (Interrupted on Ctrl-C)."""
    import papermill as pm  # lazy: 1.7 s, see the note at the imports

    state = state if state is not None else {}
    out_dir = results_dir(profile_name) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    times_path = results_dir(profile_name) / "run_times.csv"
    started = time.perf_counter()
    for i, run in enumerate(runs, 1):
        target = out_dir / f"{run.name}.ipynb"
        shown = ", ".join(f"{k}={v}" for k, v in run.parameters.items() if k != "profile")
        print(f"\n[{i}/{len(runs)}] {run.name}  ({shown})", flush=True)
        state.update(run=run, index=i, total=len(runs), t0=time.time())
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(run.notebook), str(target), parameters=run.parameters,
                                kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=quiet,
                                start_timeout=KERNEL_START_TIMEOUT,
                                stdout_file=None if quiet else sys.stdout,
                                stderr_file=None if quiet else sys.stderr,
                                kernel_manager_class=_kernel_manager(out_dir / "kernel.log"))
        except KeyboardInterrupt:
            raise Interrupted() from None
        except Exception as exc:  # papermill wraps the cell's error; show its error line
            if getattr(exc, "ename", "") == "KeyboardInterrupt":
                raise Interrupted() from None
            summary = _error_summary(exc)
            print(f"\nFAILED: notebook {run.notebook.name} ({run.name}) stopped with: {summary}"
                  f"{_hint(summary, results_dir(profile_name))}\n"
                  f"        The executed copy with the traceback is {target}", file=sys.stderr)
            return EXIT_FAILED
        seconds = time.perf_counter() - t0
        slim_file(target)  # progress bars and widget state out, smaller figures: the copy readers keep
        _log_time(times_path, run, seconds)
        state["done"] = state.get("done", 0) + 1
        print(f"[{i}/{len(runs)}] {run.name} done in {seconds / 60:.1f} min", flush=True)
    total = time.perf_counter() - started
    print(f"\nProfile '{profile_name}': {len(runs)} notebook run(s) in {total / 60:.1f} min. "
          f"Results in {results_dir(profile_name)}", flush=True)
    return 0


TIME_COLUMNS = ["finished_utc", "notebook", "run", "seconds", "cpu_count", "cpu_model", "precision"]


def last_finished(profile_name: str) -> dict[str, tuple[str, str]]:
    """Run name -> (finished_utc, seconds) of its last completed execution, from ``run_times.csv`` (the one
    reader of that file here; empty when the profile has none)."""
    times = results_dir(profile_name) / "run_times.csv"
    last: dict[str, tuple[str, str]] = {}
    if times.is_file():
        with times.open(newline="") as fh:
            for row in csv.DictReader(fh):
                last[row.get("run", "")] = (row.get("finished_utc", ""), row.get("seconds", ""))
    return last


def _log_time(path: Path, run: NotebookRun, seconds: float) -> None:
    """Append one row to ``run_times.csv`` with the machine it ran on (:func:`lib.machine.describe`); a file
    written before the machine columns existed is first rewritten with them (empty for its old rows)."""
    if path.exists():
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        if rows and rows[0] != TIME_COLUMNS:
            width = len(rows[0])
            if rows[0] != TIME_COLUMNS[:width]:
                raise DataError(f"{path}: header {rows[0]} is not a prefix of {TIME_COLUMNS}; move the file "
                                "aside and rerun")
            with atomic_write(path) as tmp, tmp.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(TIME_COLUMNS)
                writer.writerows(r + [""] * (len(TIME_COLUMNS) - len(r)) for r in rows[1:])
    new = not path.exists()
    machine = describe_machine()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(TIME_COLUMNS)
        writer.writerow([datetime.now(timezone.utc).isoformat(timespec="seconds"), run.notebook.stem,
                         run.name, f"{seconds:.1f}", os.cpu_count(), machine["cpu_model"], machine["precision"]])


def _checkpoint_step(folder: Path) -> tuple[int | None, int | None]:
    """(step, steps) of the checkpoint in a training run folder, when one can be read cheaply."""
    state_file = folder / "checkpoint" / "state.pt"
    steps = None
    try:
        steps = json.loads((folder / "checkpoint" / "train_config.json").read_text()).get("steps")
    except (OSError, ValueError):
        pass
    if not state_file.is_file():
        return None, steps
    try:
        import torch  # lazy: see the note at the imports

        ckpt = torch.load(state_file, map_location="cpu", weights_only=False, mmap=True)
        return int(ckpt.get("step")), steps
    except Exception:  # an unreadable checkpoint: say nothing about it
        return None, steps


def progress(profile_name: str, runs: list[NotebookRun]) -> dict[str, str]:
    """What is already done of each planned run, for ``--dry-run``: a training run is trained, resumable
    from its checkpoint, or to train; any other notebook run shows when it last finished
    (``run_times.csv``), or that it has not run."""
    last = last_finished(profile_name)
    out = {}
    for run in runs:
        if run.notebook.stem.startswith("03"):
            try:
                folder = train_dir(profile_name, run)
            except Exception:  # a value the dry run reports anyway
                continue
            if _finished(folder):
                out[run.name] = "trained" if _finished(folder, weights=True) else \
                    "trained elsewhere (record and results here, weights not)"
            else:
                step, steps = _checkpoint_step(folder)
                out[run.name] = (f"checkpoint at step {step}" + (f" of {steps}" if steps else "") + ": resumes there"
                                 if step is not None else "to train")
        elif run.name in last:
            when, seconds = last[run.name]
            out[run.name] = f"last finished {when} ({seconds} s)"
        else:
            out[run.name] = "not run yet"
    return out


def interrupted_message(profile_name: str, state: dict) -> str:
    """One line: where the run stopped and how to resume."""
    run: NotebookRun | None = state.get("run")
    if run is None:
        return "interrupted before any notebook started; nothing was changed. Rerun the same command to start"
    where = f"interrupted in {run.name} (notebook {state['index']} of {state['total']}"
    where += f", {time.time() - state['t0']:.0f} s in)"
    if run.notebook.stem.startswith("03"):
        try:
            folder = train_dir(profile_name, run)
            step, steps = _checkpoint_step(folder)
        except Exception:
            step, steps = None, None
        if step is not None:
            return (f"{where} with a checkpoint at step {step}" + (f" of {steps}" if steps else "")
                    + f" in {folder / 'checkpoint'}; rerun the same command to resume from that step")
        return f"{where} before its first checkpoint; rerun the same command to train this run from the start"
    done = state.get("done", 0)
    return (f"{where}; {done} notebook run(s) before it finished and are kept. Rerun the same command to resume "
            "(finished training runs and evaluations are reused)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="profile name in configs/ (smoke, default, paper) or a YAML path "
                                        "(relative to the current directory)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only notebooks whose name starts so")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the profile, print the planned runs and what of each is done, exit")
    parser.add_argument("--prepare", metavar="DIR", help="write parameterised notebooks to DIR (for nbval)")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    parser.add_argument("--allow-missing", action="store_true",
                        help="run notebooks even when an earlier notebook's results are missing (partial results)")
    parser.add_argument("--rerun-finished", action="store_true",
                        help="execute notebook-03 runs again whose training, evaluation and executed notebook are "
                             "already there (by default they are left as they are)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected faults (or HBT_DEBUG=1)")
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("HBT_DEBUG", "") not in ("", "0")
    state: dict = {}
    profile_name = None
    command = f"./run_all.sh {args.profile}"
    lock = None
    try:
        profile = load_profile(args.profile)
        profile_name = profile.name
        invoked = " ".join(["python -m lib.runner"] + (sys.argv[1:] if argv is None else list(argv)))
        run_lock = RunLock(results_dir(profile.name), command=invoked)
        if not (args.dry_run or args.prepare):
            run_lock.probe()  # first, so a second run stops at once
        all_runs = plan_runs(profile)
        runs = _select(all_runs, args.only)
        if args.dry_run:
            done = progress(profile.name, runs)
            for run in runs:
                print(f"{run.name}: {run.parameters}" + (f"  [{done[run.name]}]" if run.name in done else ""))
            training = [done.get(r.name) for r in runs if r.notebook.stem.startswith("03")]
            if training:
                trained = [t for t in training if t and t.startswith("trained")]
                elsewhere = sum(t != "trained" for t in trained)
                print(f"notebook 03: {len(trained)} of {len(training)} training runs trained in "
                      f"{results_dir(profile.name) / 'models'}"
                      + (f" ({elsewhere} of them elsewhere: record and results here, weights not)" if elsewhere else ""))
            for problem in missing_inputs(profile.name, all_runs, runs, command):
                print(f"note: {problem}")
            print(f"profile {profile.path}: {len(runs)} notebook run(s), every value valid")
            return 0
        if args.prepare:
            for path in prepare(runs, Path(args.prepare)):
                print(path)
            return 0
        problems = missing_inputs(profile.name, all_runs, runs, command)
        if problems and not args.allow_missing:
            raise StudyError("\n       ".join(problems))
        runs = trained_already(profile.name, measured_already(profile.name, all_runs, runs), args.rerun_finished)
        check_data(runs)
        out = results_dir(profile.name)
        lock = run_lock.acquire()
        if lock.stale_holder:
            print(f"note: {describe_stale(lock.stale_holder)}", flush=True)
        removed = clean_stale_temps(out)
        if removed:
            print(f"note: removed {len(removed)} temporary folder(s) left by an interrupted write "
                  f"(e.g. {removed[0]})", flush=True)
        check_backbone(runs)
        note = apply_precision(profile)
        if note:
            print(f"note: {note}", flush=True)
        return execute(profile.name, runs, quiet=args.quiet, state=state)
    except (KeyboardInterrupt, Interrupted):
        if debug:
            raise
        print(f"\n{interrupted_message(profile_name or args.profile, state)}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except LockedError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except StudyError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        message = describe_os_error(exc, results_dir(profile_name) if profile_name else None)
        if debug:
            raise
        print(f"error: {message or f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug, not a user fault: one line, the traceback on request
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}. Rerun with --debug (or HBT_DEBUG=1) for the "
              "traceback, and report it", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    sys.exit(main())
