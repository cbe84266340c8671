"""A generated corpus of broken spec and study files, fed to the CLI the way a user would.

Every file is a real file of the kit (a network spec of `ablations/specs/` or a study of
`ablations/`) with one to three typo-like mutations: a number scaled by orders of magnitude or made
negative, a value of the wrong type, a key with a letter missing, a line dropped or repeated, the
file cut short, stray or non-UTF-8 bytes; plus files of random bytes. Each must end in one line and
exit 0 (still valid) or 2 (a spec error), never a traceback, inside a process whose address space is
capped, so a width typed ×10⁴ is refused from the analytic count rather than allocated. The corpus is
seeded: a failure names the case, and the same seed reproduces it.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "ablations" / "specs").glob("*.toml"))
STUDIES = sorted((ROOT / "ablations").glob("*.toml"))
CASES_PER_KIND = 40
ADDRESS_SPACE = 8 * 2**30  # torch alone maps ~3.3 GB; a refused giant network must not come near the rest

_NUMBER = re.compile(r"(?<![\w.\"-])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.\"])")
_ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)(\s*=\s*)(.+)$", re.M)
_VALUES = ('"x"', "true", "[]", "{}", '[1, "a"]', "1.5", "-1", "0", '"{3,5}"', "[[3], 5]", "1e400", "nan", "inf",
           '{ a = 1 }', "[0.5, 0.1]", '"fashion-mnist"', '["mnist", 3]')


def _scale_number(text: str, rng: random.Random) -> str:
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return text
    m = rng.choice(numbers)
    value = float(m.group())
    new = rng.choice([value * 10 ** rng.choice([2, 3, 4, 6, 9]), -abs(value) - 1, 0, 10**30, value / 1000])
    shown = str(int(new)) if float(new).is_integer() and abs(new) < 1e18 and "." not in m.group() else repr(float(new))
    return text[:m.start()] + shown + text[m.end():]


def _retype_value(text: str, rng: random.Random) -> str:
    lines = list(_ASSIGNMENT.finditer(text))
    if not lines:
        return text
    m = rng.choice(lines)
    return text[:m.start(4)] + rng.choice(_VALUES) + text[m.end(4):]


def _typo_key(text: str, rng: random.Random) -> str:
    lines = list(_ASSIGNMENT.finditer(text))
    if not lines:
        return text
    m = rng.choice(lines)
    key = m.group(2)
    i = rng.randrange(len(key))
    return text[:m.start(2)] + (key[:i] + key[i + 1:] or "k") + text[m.end(2):]


def _line_edit(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = rng.randrange(len(lines))
    return "".join(lines[:i] + ([] if rng.random() < 0.5 else [lines[i], lines[i]]) + lines[i + 1:])


def _truncate(text: str, rng: random.Random) -> str:
    return text[:rng.randrange(len(text) + 1)]


MUTATIONS = (_scale_number, _scale_number, _retype_value, _retype_value, _typo_key, _line_edit, _truncate)


def mutate(text: str, rng: random.Random) -> bytes:
    """One to three mutations of a file's text; sometimes stray bytes (invalid UTF-8 or NUL) on top."""
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(MUTATIONS)(text, rng)
    data = text.encode()
    if rng.random() < 0.1:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice([b"\xff\xfe", b"\x00", "é".encode("latin-1"), b"\x1b[2J"]) + data[at:]
    return data


def corpus(folder: Path, seed: int = 0) -> list[tuple[str, Path]]:
    """(kind, path) of the generated files: mutated real files, and a few of random bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for kind, sources in (("spec", SPECS), ("study", STUDIES)):
        for i in range(CASES_PER_KIND):
            path = folder / f"{kind}{i:02d}.toml"
            if i % 10 == 9:
                path.write_bytes(rng.randbytes(rng.randrange(1, 200)))
            else:
                path.write_bytes(mutate(rng.choice(sources).read_text(), rng))
            cases.append((kind, path))
    return cases


DRIVER = r"""
import contextlib, io, json, resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from study.cli import main

runs, results = sys.argv[2], []
for kind, path in json.load(sys.stdin):
    argv = (["profile", path, "--no-timing"] if kind == "spec" else
            ["plan", "--only", path, "--runs", runs, "--no-profiling", "--samples", "5", "--device", "cpu"])
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit:
        code = exit.code
    except BaseException:
        code = "traceback"
        err.write(traceback.format_exc())
    results.append({"path": path, "code": code, "stderr": err.getvalue()})
json.dump(results, sys.stdout)
"""


def test_generated_broken_files_end_in_one_line_and_exit_0_or_2(tmp_path):
    cases = corpus(tmp_path / "corpus")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(ADDRESS_SPACE), str(tmp_path / "runs")], cwd=ROOT,
                          input=json.dumps([(kind, str(path)) for kind, path in cases]), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = []
    for outcome in outcomes:
        lines = outcome["stderr"].strip().splitlines()
        one_line = outcome["code"] == 0 or (len(lines) == 1 and lines[0].startswith("error: "))
        if outcome["code"] not in (0, 2) or not one_line or "Traceback" in outcome["stderr"]:
            bad.append(f"{Path(outcome['path']).name}: exit {outcome['code']}: {outcome['stderr'].strip()[-600:]}")
    assert not bad, f"{len(bad)} of {len(outcomes)} generated files (seed 0) did not end in one line:\n" + "\n".join(bad)
    codes = [o["code"] for o in outcomes]
    assert codes.count(2) >= len(codes) // 2  # the corpus mostly breaks things: it exercises the error paths


@pytest.mark.parametrize("seed", [1, 2])
def test_the_corpus_is_reproducible_from_its_seed(tmp_path, seed):
    first = [p.read_bytes() for _, p in corpus(tmp_path / "a", seed)]
    again = [p.read_bytes() for _, p in corpus(tmp_path / "b", seed)]
    assert first == again and len(set(first)) > len(first) * 0.9
