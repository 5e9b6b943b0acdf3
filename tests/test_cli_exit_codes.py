"""Exit codes a script can trust, checked through a real process: 0 success, 2 user error (no
traceback; usage errors included), 130 interrupted (with the --resume command), 1 internal error."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args, env=None, code=None, timeout=120):
    """Run ``cl-domains ARGS`` (or ``python -c CODE``) and return (exit code, stdout + stderr)."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "cl_domains.cli", *map(str, args)]
    environ = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ, cwd=REPO, check=False)
    return p.returncode, p.stdout + p.stderr


def main(*args):
    """The entry point in this process (fast): the codes the subprocess tests below see too."""
    from cl_domains.cli import main as entry

    return entry([str(a) for a in args])


def test_success_usage_error_and_user_error_through_a_process():
    assert cli("--help")[0] == 0
    code, out = cli("--bogus")
    assert code == 2 and "Usage" in out and "No such option" in out and "Traceback" not in out
    code, out = cli("run", "no_such_recipe")
    assert code == 2 and "recipe not found" in out and "Traceback" not in out


@pytest.mark.parametrize("args", [["nosuchcommand"], ["run", "--bogus"], ["data", "verify", "--nope"]])
def test_usage_errors_are_2_with_usage(args, capsys):
    assert main(*args) == 2
    assert "Usage" in capsys.readouterr().err


def test_user_errors_are_2(tmp_path, capsys):
    assert main("data", "list") == 0
    f = tmp_path / "a_file"
    f.write_text("")
    assert main("run", "supremix_airfoil", "--out", f, "--data-root", tmp_path) == 2
    assert "is a file" in capsys.readouterr().err  # said before the (missing) data is looked at
    assert main("run", "--resume", tmp_path / "nope") == 2
    assert main("run", "--resume", tmp_path, "supremix_airfoil") == 2


def test_data_verify_missing_or_corrupt_is_2(tmp_path, data_root, capsys):
    assert main("data", "verify", "uci_airfoil", "--data-root", tmp_path) == 2
    assert "missing" in capsys.readouterr().out
    dst = tmp_path / "regression/uci_airfoil"
    shutil.copytree(data_root / "regression/uci_airfoil", dst)
    assert main("data", "verify", "uci_airfoil", "--data-root", tmp_path) == 0
    (dst / "airfoil_self_noise.dat").write_text("1 2 3\n")
    assert main("data", "verify", "uci_airfoil", "--data-root", tmp_path) == 2
    assert "corrupt" in capsys.readouterr().out


def test_internal_error_is_1():
    code, out = cli(
        code="import sys, cl_domains.core.recipe as r\n"
        "def boom(*a, **k): raise ZeroDivisionError('a bug')\n"
        "r.load_recipe = boom\n"
        "from cl_domains.cli import main\n"
        "sys.exit(main(['run', 'anything']))"
    )
    assert code == 1 and "ZeroDivisionError" in out and "internal error" in out


def test_ctrl_c_during_a_run_is_130_with_the_resume_command(tmp_path, data_root):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "cl_domains.cli",
        "run",
        "supremix_airfoil",
        "--profile",
        "paper",
        "--set",
        "train.checkpoint_every=5",
        "--set",
        "train.eval_every=null",
        "--out",
        str(tmp_path / "runs"),
        "--data-root",
        str(data_root),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.time() + 90
        while not list((tmp_path / "runs").glob("*/checkpoints/latest")):
            assert p.poll() is None, p.communicate()
            assert time.time() < deadline, "the run wrote no checkpoint in 90 s"
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert p.returncode == 130, err
    assert f"cl-domains run --resume {run_dir}" in err and "Traceback" not in err
