"""The docs cannot drift from the code: every command in README.md and BUILD.md's code blocks names a program that
is installed, flags that program defines, model names that exist, and make targets the Makefile has. (The
commands' behaviour is covered by the tests of each program.)"""

import configparser
import functools
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

from sr_keras import zoo

DOCS = ("README.md", "BUILD.md")
ABSL_FLAGS = {"help", "helpfull", "helpshort", "flagfile", "verbosity", "v", "logtostderr", "alsologtostderr"}


def _programs() -> dict:
    """{sr-xxx: sr_keras.cli module} from setup.cfg's console scripts."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (p.strip() for p in line.split("="))
        scripts[name] = target.split(":")[0]
    return scripts


def doc_commands() -> list:
    """(file, line number, argv) of every command line in the docs' fenced code blocks."""
    found = []
    for doc in DOCS:
        lines = open(os.path.join(REPO, doc), encoding="utf-8").read().splitlines()
        fenced, inside, pending, start = False, False, "", 0
        for number, line in enumerate(lines, 1):
            if line.startswith("```"):
                fenced = not fenced  # Shell blocks only: ``` alone or ```bash/sh/shell.
                inside = fenced and line.strip() in ("```", "```bash", "```sh", "```shell")
                continue
            if not inside:
                continue
            text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if not text and not pending:
                continue
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            command, pending = pending + text, ""
            try:
                argv = shlex.split(command)
            except ValueError:
                continue
            for part in " ".join(argv).split(" && "):  # Simple chains.
                words = part.split()
                if words and (words[0].startswith("sr-") or words[0] in ("make",) or
                              words[0].startswith(".venv/bin/sr-") or words[:2] == ["python", "-m"]):
                    found.append((doc, start, words))
    return found


@functools.lru_cache(maxsize=None)
def own_flags(module: str) -> frozenset:
    """The flags a program's --help lists (its own), plus absl's common ones."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300).stdout
    flags = set(re.findall(r"^\s+--(?:\[no\])?([A-Za-z0-9_]+)", out, re.M))
    assert flags, f"{module} --help listed no flags:\n{out}"
    return frozenset(flags | ABSL_FLAGS)


def _check(doc, number, words, programs, targets) -> list:
    where = f"{doc}:{number}: {' '.join(words)[:90]}"
    if words[0] == "make":
        return [f"{where}: no make target {t!r}" for t in words[1:] if "=" not in t and t not in targets]
    if words[:2] == ["python", "-m"]:
        module = words[2]
        if not module.startswith("sr_keras."):
            return []
        args = words[3:]
    else:
        program = words[0].rsplit("/", 1)[-1]
        if program not in programs:
            return [f"{where}: {program} is not an installed program ({', '.join(sorted(programs))})"]
        module, args = programs[program], words[1:]
    problems = []
    flags = own_flags(module)
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        if name not in flags and not (name.startswith("no") and name[2:] in flags):
            problems.append(f"{where}: {module} has no flag --{name}")
        if name == "model" and value and "<" not in value and module != "sr_keras.cli.train":  # train: the GAN.
            for spec in value.split(","):
                if os.sep not in spec and not spec.endswith(".keras") and spec not in zoo.NAMES + ("default",):
                    problems.append(f"{where}: --model={spec} is neither a path nor a model name")
    return problems


def test_every_documented_command_uses_real_programs_flags_names_and_targets():
    programs = _programs()
    makefile = open(os.path.join(REPO, "Makefile")).read()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.M))
    commands = doc_commands()
    assert len(commands) > 40  # The docs' commands were found (not vacuous).
    problems = [p for doc, number, words in commands for p in _check(doc, number, words, programs, targets)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("bad", [["sr-enhance", "--input=x", "--no_such_flag"], ["sr-enhanse", "--input=x"],
                                 ["make", "tset"], ["sr-enhance", "--model=spam_x4", "--input=x"]])
def test_the_check_catches_drift(bad):
    programs = _programs()
    assert _check("DOC", 1, bad, programs, {"test", "demo", "install"})
