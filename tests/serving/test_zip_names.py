"""The page's batch zip: entry names from the browser's file names are made safe for every unzip tool (run in
Node.js, the page's own function)."""

import json
import os
import shutil
import subprocess

import pytest
from conftest import REPO

APP = os.path.join(REPO, "sr_keras", "serving", "static", "app.js")
NAMES = ["..\\..\\..\\Windows\\evil_span_x4.png", "a/../../b.png", "A_span_x4.png", "a_span_x4.png",
         "caf\u00e9.png", "cafe\u0301.png", "x" * 262 + ".png", "evil\u202egnp.exe.png", "tab\tname\x07.png",
         "/etc/passwd.png", "ok/dir/p.png", "..", "CON:.png"]


def _run(names):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (the machine's Node.js runs the page's own code here)")
    script = ("const fs = require('fs'); const src = fs.readFileSync(process.argv[1], 'utf8');"
              "const m = src.match(/const UNSAFE[\\s\\S]*?const zipKey = [^\\n]*\\n/)[0];"
              "eval(m.replace('const UNSAFE', 'var UNSAFE').replace('const zipKey', 'var zipKey'));"
              "const names = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(names.map((n) => [zipName(n), zipKey(zipName(n))])));")
    out = subprocess.run([node, "-e", script, APP, json.dumps(names)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_zip_entry_names_are_safe_and_unique_without_regard_to_case_or_normalisation():
    result = _run(NAMES)
    for original, (name, _) in zip(NAMES, result):
        parts = name.split("/")
        assert "\\" not in name and ".." not in parts and "." not in parts and name and not name.startswith("/")
        assert len(name.encode("utf-8")) <= 200, original
        assert not any(ord(c) < 32 or 0x202A <= ord(c) <= 0x202E for c in name), name
    keys = dict(zip(NAMES, (k for _, k in result)))
    assert keys["A_span_x4.png"] == keys["a_span_x4.png"]  # The page numbers the second (_2), so none overwrites.
    assert keys["caf\u00e9.png"] == keys["cafe\u0301.png"]
    assert result[0][0] == "Windows/evil_span_x4.png" and result[NAMES.index("/etc/passwd.png")][0] == "etc/passwd.png"
