"""Sessions: tests, bench, lint, ablations (the main job), report.

All sessions share ONE virtual environment, `.nox/kit`: the PyTorch wheels are ~5 GB, so building
one per session would cost minutes and disk for nothing. It is rebuilt only when pyproject.toml
changes (a stamp file records its hash).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
KIT_ENV = ROOT / ".nox" / "kit"
nox.options.sessions = ["tests"]


def kit_python(session: nox.Session) -> str:
    """The shared environment's python, created or refreshed when pyproject.toml changed."""
    python = KIT_ENV / "bin" / "python"
    stamp = KIT_ENV / ".pyproject-sha256"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        session.log(f"building the shared environment {KIT_ENV} (torch is large: a few minutes the first time)")
        session.run(sys.executable, "-m", "venv", str(KIT_ENV), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]", external=True)
        stamp.write_text(wanted)
    return str(python)


def ensure_data(session: nox.Session, python: str, dataset: str = "fashion-mnist") -> None:
    """Find or fetch the real data; offline with apt-get as root, install Debian's package; else stop with the fix."""
    fetch = [python, "-m", "study", "data", "fetch", dataset]
    if subprocess.run(fetch).returncode == 0:
        return
    can_apt = shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0
    if dataset == "fashion-mnist" and can_apt:
        session.log("download failed: installing Debian's dataset-fashion-mnist (60k/10k real images)")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "dataset-fashion-mnist", external=True)
        if subprocess.run(fetch).returncode == 0:
            return
    session.error(f"{dataset} is not available offline: run `sudo apt-get install -y dataset-fashion-mnist` "
                  "(Debian/Ubuntu) or connect to the internet, then re-run `nox -s ablations`")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (benchmarks skipped; `nox -s bench` runs them)."""
    python = kit_python(session)
    session.run(python, "-m", "pytest", "-q", *session.posargs, external=True)


BENCH_STORAGE = ROOT / ".benchmarks"


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """pytest-benchmark: model throughput, data loader, report rendering, Optuna overhead.

    Every run is saved as JSON under .benchmarks/<machine>/ and compared with the previous saved run:
    pytest-benchmark's table compares the timings, then tests/bench/figures.py prints the measured
    figures of extra_info (img/s, trials per hour, speed-ups) beside the previous run's.
    """
    python = kit_python(session)
    compare = ["--benchmark-compare"] if any(BENCH_STORAGE.glob("*/[0-9][0-9][0-9][0-9]_*.json")) else []
    try:
        session.run(python, "-m", "pytest", "tests/bench", "--benchmark-only", "--benchmark-columns=median,iqr,rounds",
                    "--benchmark-autosave", f"--benchmark-storage=file://{BENCH_STORAGE}", *compare,
                    *session.posargs, external=True)
    finally:  # a failed speed-up assertion still shows (and has saved) the figures of the others
        session.run(python, str(ROOT / "tests" / "bench" / "figures.py"), str(BENCH_STORAGE), external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and noxfile."""
    python = kit_python(session)
    session.run(python, "-m", "ruff", "check", "study", "tests", "noxfile.py", external=True)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The one-command check of a GPU machine (JSON under runs/gpu/): `nox -s gpu`, or `nox -s gpu -- --tiny` to
    rehearse it on the CPU. Where nox is absent: `python3 -m study gpu` (docs/gpu.md)."""
    python = kit_python(session)
    session.run(python, "-m", "study", "gpu", *session.posargs, external=True)


@nox.session(venv_backend="none")
def ablations(session: nox.Session) -> None:
    """The main job: every study of ablations/ (default profile quick, real Fashion-MNIST), then the report.

    Pass options after `--`: `nox -s ablations -- --profile paper --only kernels,links --workers 2`.
    """
    python = kit_python(session)
    ensure_data(session, python)
    session.log(f"{python} -m study run {' '.join(session.posargs)}")
    code = subprocess.run([python, "-m", "study", "run", *session.posargs]).returncode
    if code not in (0, 4):
        session.error(f"study run failed with exit code {code} (its last line above says why)")
    if code == 4:  # the run's time guard stopped it with cells missing; the report shows what is there
        session.warn("the run stopped at its time guard with cells missing (exit code 4): the report marks what "
                     "was not run; re-run `nox -s ablations` to continue where it stopped")


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Rebuild reports/ from runs/ (`-- --study NAME` for one)."""
    python = kit_python(session)
    session.run(python, "-m", "study.report", *session.posargs, external=True)


#: Each module mutation testing covers, and the fast tests that must kill its mutants.
MUTATION_TESTS = {
    "study/stats.py": ["tests/test_stats.py"],
    "study/report/claims.py": ["tests/test_claims.py",
                               "tests/test_costs.py::test_the_speed_claim_calls_a_gap_inside_the_measured_spread_inconclusive"],
    "study/results.py": ["tests/test_results.py", "tests/test_claims.py"],
    "study/cells.py": ["tests/test_cells.py"],
    "study/train.py": ["tests/test_train_selection.py"],
    "study/spec.py": ["tests/test_specs.py"],
    # (its simulated-device-image test runs the kit in a subprocess outside mutmut's working folder)
    "study/gpu_check.py": ["tests/test_gpu_check.py", "-k", "not device_image"],
}
#: Where only part of a module is in scope: the mutants (fnmatch on mutmut's names) of those functions.
MUTATION_SCOPE = {
    # the training loop's selection (best epoch, patience, divergence), its loaders (shuffle, seed, augmentation),
    # restoration of the best weights, and the history rows' device-side sums (`_Loop.epoch`, `_log`, `_Window`);
    # `_progress_bar` and `_progress_note` (tqdm's display) are out of scope
    "study/train.py": [f"study.train.x_{name}__mutmut_*" for name in ("_fit", "_loaders", "_restored", "_best_val")]
    + [f"study.train.xǁ{cls}ǁ{name}__mutmut_*" for cls, name in (("_Loop", "epoch"), ("_Loop", "_log"), ("_Window", "*"))],
    # the GPU check's plumbing (what runs, in which order, the budget, failures, the summary, the bundle); not the
    # measurements themselves (profile_model and train, tested elsewhere)
    "study/gpu_check.py": [f"study.gpu_check.x_{name}__mutmut_*" for name in (
        "plan", "tta_summary", "paper_study_estimate", "run_check", "_failure", "summary_lines", "bundle")],
    # the spec validator: types and coercion, graph checks, pooling depth, node tables
    "study/spec.py": [f"study.spec.x_{name}__mutmut_*" for name in (
        "validate_network", "_validate_graph", "_max_pooled_blocks", "_coerce", "from_mapping", "network_from_mapping",
        "_node_table", "unknown_key")],
}


def mutation_workdir(module: str) -> Path:
    """A copy of the kit under .nox/mutation/<module> whose [tool.mutmut] mutates `module` with its tests only."""
    import tomllib

    work = ROOT / ".nox" / "mutation" / Path(module).stem
    work.mkdir(parents=True, exist_ok=True)
    for folder in ("study", "tests", "ablations", "docs"):
        shutil.copytree(ROOT / folder, work / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    config |= {"only_mutate": [module], "pytest_add_cli_args_test_selection": MUTATION_TESTS[module]}
    lines = ["[tool.mutmut]"] + [f"{key} = {_toml_value(value)}" for key, value in config.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


def _toml_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


@nox.session(venv_backend="none")
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut 3, one worker, not in CI) of the statistics and bookkeeping modules.

    One module at a time against its fast tests (`MUTATION_TESTS`), only the functions in `MUTATION_SCOPE` where
    it names them: `nox -s mutation -- study/stats.py`;
    no argument runs every module in turn; the last line gives the killed share. Needs the `mutation` extra (`pip install -e .[mutation]`). A re-run
    resumes and re-tests changed functions only: after changing tests, delete .nox/mutation/<module>/mutants.
    `cd .nox/mutation/<module> && mutmut results` lists the survivors, `mutmut show NAME` one diff.
    """
    python = kit_python(session)
    for module in session.posargs or list(MUTATION_TESTS):
        if module not in MUTATION_TESTS:
            session.error(f"{module}: not a mutation-tested module; use one of {', '.join(MUTATION_TESTS)}")
        scope = MUTATION_SCOPE.get(module, [])
        with session.chdir(mutation_workdir(module)):
            # one OpenMP thread: mutmut forks a child per mutant, and a forked torch with a thread pool hangs
            session.run(python, "-m", "mutmut", "run", "--max-children", "1", *scope, external=True,
                        env={"PYTHONPATH": "", "OMP_NUM_THREADS": "1"})
            listing = subprocess.run([python, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                                     text=True, env={**os.environ, "PYTHONPATH": ""}).stdout
        outcomes = [line.rsplit(":", 1) for line in listing.splitlines() if ":" in line]
        outcomes = [(name.strip(), outcome.strip()) for name, outcome in outcomes
                    if not scope or any(fnmatch.fnmatch(name.strip(), pattern) for pattern in scope)]
        # a mutant whose tests time out (e.g. a loop that no longer ends) was detected too
        killed = sum(outcome in ("killed", "timeout") for _, outcome in outcomes)
        for name, outcome in outcomes:
            if outcome not in ("killed", "timeout"):
                session.log(f"  {outcome}: {name}")
        session.log(f"{module}: {killed}/{len(outcomes)} mutants killed or timed out "
                    f"({100 * killed / max(len(outcomes), 1):.0f} %)" + (f" in {', '.join(scope)}" if scope else ""))
