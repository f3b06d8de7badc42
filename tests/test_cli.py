"""The `drive` command: one verb per job, a version string in step with the package metadata."""

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

import drive
from drive.cli import COMMANDS, main


def test_version_matches_installed_metadata():
    # the distribution (drive-ncp on PyPI; an older install may still be called drive) that ships `drive`
    dist = importlib.metadata.packages_distributions()["drive"][0]
    assert importlib.metadata.version(dist) == drive.__version__


def test_version_flag_prints_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"drive {drive.__version__}"


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_has_a_module_with_arguments_and_run(verb):
    module = importlib.import_module(COMMANDS[verb][0])
    assert callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_prints_help(verb):
    proc = subprocess.run(
        [sys.executable, "-m", "drive.cli", verb, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"usage: drive {verb}" in proc.stdout


def test_no_verb_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = "import sys; from drive.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_bad_flag_value_is_one_line_with_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "drive.cli", "inspect", "--in-features", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == "drive inspect: error: --in-features must be >= 1, got 0\n"


def test_an_unexpected_exception_in_a_command_keeps_its_traceback(monkeypatch, capsys):
    import drive.commands.inspect as inspect_command

    def broken(args):
        raise ValueError("a bug, not bad input")  # a plain ValueError is not a UserError

    monkeypatch.setattr(inspect_command, "run", broken)
    with pytest.raises(ValueError, match="a bug, not bad input"):
        main(["inspect"])
    assert "error:" not in capsys.readouterr().err


def test_user_error_raised_inside_a_command_is_one_line(monkeypatch, capsys):
    import drive.commands.inspect as inspect_command
    from drive.errors import UserError

    def bad_input(args):
        raise UserError("some.yaml: field 'x' is 'y', expected\na number")

    monkeypatch.setattr(inspect_command, "run", bad_input)
    assert main(["inspect"]) == 2
    assert capsys.readouterr().err == "drive inspect: error: some.yaml: field 'x' is 'y', expected a number\n"


def test_every_verb_is_a_thin_command_module():
    import importlib
    import keyword

    for verb, (module, _) in COMMANDS.items():  # a verb that is a Python keyword gets a trailing underscore (PEP 8)
        assert module == f"drive.commands.{verb}" + ("_" if keyword.iskeyword(verb) else "")
        command = importlib.import_module(module)
        assert callable(command.add_arguments) and callable(command.run)


def test_inspect_refuses_a_bad_plot_path_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["inspect", "--plot-wiring", str(tmp_path / "file" / "w.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plot-wiring" in err and "exists and is not a folder" in err
    assert main(["inspect", "--plot-wiring", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_prepare_out_dir_refuses_files_and_unwritable_places(tmp_path):
    import os

    from drive.commands.common import prepare_out_dir
    from drive.errors import UserError

    assert prepare_out_dir(tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"--out: .*/f: exists and is not a folder"):
        prepare_out_dir(tmp_path / "f")
    with pytest.raises(UserError, match=r"--dest: .*/f/sub: .*/f is a file, not a folder"):
        prepare_out_dir(tmp_path / "f" / "sub", "--dest")
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(UserError, match="is not writable"):
            prepare_out_dir(tmp_path / "ro" / "x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--data", "d", "--out", "o", "--epochs", "abc"],
            "drive train: error: argument --epochs: invalid int value: 'abc'",
        ),
        (["train"], "drive train: error: the following arguments are required: --data, --out"),
        (["frobnicate"], "drive: error: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_a_bad_or_missing_flag_is_one_line_with_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith(message), err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--episodes", "1", "--duration-s", "1", "--no-video"],
        ["stress", "--checkpoint", "expert", "--seeds", "1", "--duration-s", "1"],
        ["suite", "--tracks", "1", "--case", "plain", "--duration-s", "1", "--no-expert"],
        ["explain", "--duration-s", "1"],
    ],
    ids=lambda a: a[0],
)
def test_a_verb_refuses_an_output_folder_another_process_is_writing(tmp_path, capsys, argv):
    """Every verb that writes holds its --out's lock: a second writer fails at once, in one line, and writes nothing."""
    import subprocess
    import sys

    hold = "import sys, time\nfrom drive.io import output_lock\nwith output_lock(sys.argv[1]):\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "    print('held', flush=True)\n    time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*argv, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another drive process is writing to this folder" in err
        assert [p.name for p in tmp_path.iterdir()] == [".drive.lock"]
    finally:
        holder.kill()
        holder.wait()
