"""``--duration-s`` of every driving verb obeys the scenario schema's episode bound (``duration_s``)."""

from __future__ import annotations

import pytest

from drive.cli import main
from drive.world.scenario import MAX_DURATION_S

VERBS = ("simulate", "record", "suite", "stress")


def _required(verb: str, tmp_path) -> list[str]:
    return ["--out", str(tmp_path / "out")]  # record's one required flag; the others take it too


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("value", ["1e9", str(MAX_DURATION_S * 1.001), "0", "-5", "nan", "inf", "ten"])
def test_out_of_bound_duration_is_one_line_exit_2_before_any_work(verb, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, f"--duration-s={value}", *_required(verb, tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"drive {verb}: error: argument --duration-s:"), err
    assert value in err and f"{MAX_DURATION_S:g}" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", VERBS)
def test_the_bound_itself_is_accepted(verb, tmp_path):
    from drive.cli import build_parser

    args = build_parser(verb).parse_args([verb, "--duration-s", f"{MAX_DURATION_S:g}", *_required(verb, tmp_path)])
    assert args.duration_s == pytest.approx(MAX_DURATION_S)
    args = build_parser(verb).parse_args([verb, "--duration-s", "0.5", *_required(verb, tmp_path)])
    assert args.duration_s == pytest.approx(0.5)
