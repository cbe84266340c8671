"""The kit as a library: its wheel, installed into a fresh environment outside any clone, runs `study --version`,
`study init DIR` and `study plan` in DIR (the example studies ship inside the package)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done


def test_the_wheel_installs_and_runs_outside_a_clone(tmp_path):
    try:
        import setuptools  # noqa: F401 - the build backend, used without isolation (no network needed)
    except ImportError:
        pytest.skip("setuptools is not installed in this environment")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STUDY_STUDIES", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
         tmp_path, env)
    (wheel,) = wheels.glob("lrnet_study_kit-*.whl")
    venv = tmp_path / "env"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp_path, env)
    # the kit's dependencies (torch is ~5 GB) come from this environment, after the new one's own packages
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     env).stdout.strip())
    (site / "zz_kit_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    study = str(venv / "bin" / "study")
    version = _run([study, "--version"], tmp_path, env).stdout
    assert "0.1.0" in version
    where = _run([str(python), "-c", "import study; print(study.__file__)"], tmp_path, env).stdout
    assert str(venv) in where and str(REPO) not in where  # the installed copy, not the clone's
    _run([study, "init", str(work)], tmp_path, env)
    assert (work / "ablations" / "contrasts.toml").is_file() and (work / "ablations" / "specs" / "lrnet_paper.toml").is_file()
    plan = _run([study, "plan", "--only", "contrasts", "--no-profiling"], work, env).stdout
    assert "study contrasts (grid, profile quick): 0/15 cells done" in plan
    listed = _run([study, "plan", "--no-profiling", "--only", "transfer", "--json"], work, env).stdout
    assert '"rungs"' in listed
    assert (venv / "bin" / "study-report").exists()
