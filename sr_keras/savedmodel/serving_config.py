"""TF Serving's `--model_config_file` for an export folder (`sr-export --model_config_file=PATH`).

    model_config_list {
      config {
        name: "span_x4"
        base_path: "/abs/export/span_x4"
        model_platform: "tensorflow"
      }
    }

`update` lists every SavedModel base path under the export folder (ONNX and LiteRT folders are not TF Serving's),
keeps the blocks it finds for the same name and path as they are (a version policy or labels added by hand stay),
keeps entries for places outside the export folder, drops entries for base paths under it that are gone, and
writes atomically. TF Serving re-reads the file with `--model_config_file_poll_wait_seconds`. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import os
import re
import stat

from sr_keras.savedmodel import layout
from sr_keras.utils import safe_files

_NAME = re.compile(r'\bname\s*:\s*"((?:[^"\\]|\\.)*)"')
_BASE = re.compile(r'\bbase_path\s*:\s*"((?:[^"\\]|\\.)*)"')


def base_paths(export_dir: str) -> dict:
    """{model name: absolute base path} of every folder under `export_dir` whose complete versions are all
    SavedModels (and at least one)."""
    root = os.path.abspath(export_dir)
    out = {}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, name)
        versions = layout.complete_versions(folder)
        if versions and all(layout.version_format(os.path.join(folder, str(v))) == "savedmodel" for v in versions):
            out[name] = folder
    return out


def _blocks(text: str) -> list:
    """The text of each `config { ... }` block inside `model_config_list { ... }`, braces matched.

    Raises:
      ValueError: no model_config_list, or unbalanced braces.
    """
    start = re.search(r"\bmodel_config_list\s*\{", text)
    if start is None:
        raise ValueError("not a TF Serving model config (no model_config_list); move it aside or pick another path")
    blocks, depth, i, block_start = [], 1, start.end(), None
    while i < len(text) and depth:
        c = text[i]
        if c == '"':  # Skip a quoted string (braces inside it do not count).
            m = re.compile(r'"(?:[^"\\]|\\.)*"').match(text, i)
            if m is None:
                raise ValueError("an unterminated string")
            i = m.end()
            continue
        if c == "{":
            if depth == 1:
                head = re.search(r"\bconfig\s*$", text[:i])
                block_start = head.start() if head else i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 1 and block_start is not None:
                blocks.append(text[block_start:i + 1])
                block_start = None
        i += 1
    if depth:
        raise ValueError("unbalanced braces")
    return blocks


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _block(name: str, base_path: str) -> str:
    return (f"config {{\n    name: {_quote(name)}\n    base_path: {_quote(base_path)}\n"
            f'    model_platform: "tensorflow"\n  }}')


def render(export_dir: str, existing: str = "") -> tuple:
    """(the new file's text, the names it lists) for `export_dir`, keeping what `existing` holds (see above)."""
    root = os.path.abspath(export_dir)
    wanted = base_paths(export_dir)
    kept, names = [], []
    for block in _blocks(existing) if existing.strip() else []:
        name, base = _NAME.search(block), _BASE.search(block)
        if name is None or base is None:
            raise ValueError(f"a config entry without a name or base_path: {block[:80]!r}")
        name, base = name.group(1), base.group(1)
        inside = os.path.dirname(os.path.abspath(base)) == root
        if inside and wanted.get(name) != base:
            continue  # Gone, or now under another name: written afresh below if it still exists.
        if name in names:
            raise ValueError(f"two entries are named {name!r}")
        kept.append(block)
        names.append(name)
        if inside:
            wanted.pop(name)
    for name, base in wanted.items():
        if name in names:
            raise ValueError(f"{name!r} is listed for another base path; rename one of them")
        kept.append(_block(name, base))
        names.append(name)
    return "model_config_list {\n" + "".join(f"  {b}\n" for b in kept) + "}\n", names


MAX_CONFIG_BYTES = 1 << 20  # A model config lists a few models: kilobytes.


def update(path: str, export_dir: str) -> list:
    """Writes or updates the model config file at `path` for `export_dir` (atomically); returns the names listed.

    Raises:
      ValueError: the file exists and is not a model config this can update (it is left as it was).
      OSError: it cannot be read or written.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):  # A FIFO would block the read for good.
        raise ValueError("not a regular file (a FIFO, a device or a folder); choose a file path")
    if info is not None and info.st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{info.st_size / 1e6:.0f} MB, but a model config file is kilobytes: choose another path")
    try:
        with open(path, encoding="utf-8") as f:
            existing = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        existing = ""
    except UnicodeDecodeError:
        raise ValueError("not a text file (left as it was)") from None
    text, names = render(export_dir, existing)
    safe_files.write_text(path, text)
    return names
