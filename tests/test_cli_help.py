"""Each installed command's --help lists its own flags (and not absl's), as a console script is actually run."""

import configparser
import os
import subprocess
import sys

import pytest

from conftest import REPO

_CFG = configparser.ConfigParser()
_CFG.read(os.path.join(REPO, "setup.cfg"))
SCRIPTS = dict(line.split(" = ") for line in _CFG["options.entry_points"]["console_scripts"].strip().splitlines())


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags(script):
    exe = os.path.join(os.path.dirname(sys.executable), script)
    if not os.path.exists(exe):
        pytest.fail(f"{exe} is not installed; run `make install`")
    module = SCRIPTS[script].split(":")[0]
    own = subprocess.run([sys.executable, "-c", f"import {module} as m, absl.flags as f; "
                          f"print(' '.join(fl.name for fl in f.FLAGS.get_key_flags_for_module(m)))"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    names = own.stdout.split()
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1)  # absl exits 1 after --help.
    assert names and all(f"--{n}" in proc.stdout or f"--[no]{n}" in proc.stdout for n in names), proc.stdout
    assert "--verbosity" not in proc.stdout and "--helpfull" not in proc.stdout.replace("Try --helpfull", "")
