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

DOCS = ("README.md", "BUILD.md", "docs/DEVELOPING.md")
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


RUNNABLE = {"deploy": ("--format=", "--model_config_file", "_onnx", "_litert"), "beam": ("runner=DirectRunner",)}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RUNNABLE))
def test_the_deployment_examples_run(kind, tmp_path):
    """The README's and BUILD.md's ONNX, LiteRT and TF Serving config commands ("deploy"), and their Beam commands
    on DirectRunner ("beam"), run as written, in order, in a folder holding the photo.jpg and photos/ they name.
    (Dataflow, Flink, Spark and tensorflow_model_server cannot run here; their flags are checked above.)"""
    from conftest import write_photo

    write_photo(str(tmp_path / "photo.jpg"), 48, 64)
    (tmp_path / "photos").mkdir()
    for i in range(3):
        write_photo(str(tmp_path / "photos" / f"p{i}.png"), 40, 40 + 8 * i, seed=i)
    programs = _programs()
    seen, ran = set(), []
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    for doc, number, words in doc_commands():
        line = " ".join(words)
        if not any(k in line for k in RUNNABLE[kind]) or any(k in line for k in RUNNABLE["beam"]) != (
                kind == "beam") or line in seen:
            continue
        seen.add(line)
        argv = [sys.executable, "-m", programs[words[0]], *words[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{doc}:{number}: {line}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        ran.append(line)
    if kind == "deploy":
        assert len(ran) >= 5, ran
        assert (tmp_path / "export" / "span_x4_onnx" / "1" / "model.onnx").is_file()
        assert (tmp_path / "export" / "sr_keras_x4_litert" / "1" / "model.tflite").is_file()
        assert "span_x4" in (tmp_path / "export" / "models.config").read_text()
        assert (tmp_path / "out" / "photo_x4.jpg").is_file()
    else:
        assert len(ran) >= 2, ran
        assert sorted(os.listdir(tmp_path / "out_beam")) == ["p0_x4.png", "p1_x4.png", "p2_x4.png",
                                                             "sr_enhance_report.jsonl"]
        assert (tmp_path / "tfrecords" / "sample_x4" / "manifest.json").is_file()


def _headings(text: str) -> list:
    """The "## " headings of a Markdown text, outside code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## ") and line[3:] != "Contents":
            found.append(line[3:].strip())
    return found


@pytest.mark.parametrize("guide", ["BUILD.md", "docs/DEVELOPING.md"])
def test_each_guide_opens_with_contents_that_list_every_section_and_link_to_it(guide):
    text = open(os.path.join(REPO, guide), encoding="utf-8").read()
    listed = re.findall(r"^- \[(.+)\]\(#([\w-]+)\)$", text.split("## Contents", 1)[1].split("\n## ", 1)[0], re.M)
    assert [title for title, _ in listed] == _headings(text)
    for title, anchor in listed:  # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
        assert anchor == re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"), title


def test_user_facing_docs_carry_no_issue_numbers_or_history():
    for doc in ("README.md", "BUILD.md"):
        text = open(os.path.join(REPO, doc), encoding="utf-8").read()
        assert re.findall(r"\b[Ii]ssues? \d+|\(#\d+\)", text) == [], doc
