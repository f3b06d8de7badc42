"""Reproducible runs (issue 24, item 3): run.json, --config FILE.yaml, one --out rule for every verb."""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
from pathlib import Path

import pytest

from drive.cli import COMMANDS, build_parser, main
from drive.commands import runs
from drive.commands.config_file import apply_config_file
from drive.errors import UserError

SIM = ["simulate", "--checkpoint", "expert", "--episodes", "1", "--duration-s", "1", "--no-video", "--no-expert"]


def parse(argv: list[str]):
    """The verb's parsed flags, as :func:`drive.cli.main` parses them (``--config`` applied)."""
    from drive.commands.config_file import config_path

    verb = argv[0]
    parser = build_parser(verb)
    path = config_path(argv)
    if path is not None:
        apply_config_file(parser.verb_parsers[verb], path, verb, argv)
    return parser.parse_args(argv)


def no_machine_path(text: str, *paths: Path) -> None:
    for p in paths:
        assert str(p) not in text, f"{p} in {text}"


# ------------------------------------------------------------------------------------ run.json


def test_simulate_writes_run_json_with_command_line_config_versions_and_status(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main([*SIM, "--out", str(out), "--seed", "7"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["verb"] == "simulate" and record["status"] == "finished" and record["exit_status"] == 0
    assert record["command_line"][:3] == ["drive", "simulate", "--checkpoint"]
    assert record["command_line"][-2:] == ["--seed", "7"]
    assert record["config"]["episodes"] == 1 and record["config"]["checkpoint"] == "expert"
    assert record["seeds"] == {"seed": 7}
    assert record["code_version"]["drive"] == importlib.import_module("drive").__version__
    assert {"numpy", "gymnasium", "highway-env"} <= set(record["packages"])
    assert record["started"] <= record["ended"] and record["started"].endswith("Z")
    text = (out / "run.json").read_text()
    no_machine_path(text, tmp_path, Path.home())
    assert record["config"]["out"] == "sim"  # outside the working folder: its last component only


def test_paths_inside_the_working_folder_stay_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs.portable_path(str(tmp_path / "runs" / "a")) == "runs/a"
    assert runs.portable_path("runs/a") == "runs/a"
    assert runs.portable_path("../elsewhere/b") == "b"
    assert runs.portable("--out=" + str(tmp_path / "x")) == "--out=x"
    assert runs.portable("ray://host:10001") == "ray://host:10001"
    assert runs.portable("gaussian:0.1,0.2") == "gaussian:0.1,0.2"
    assert runs.portable({"a": (Path("/nowhere/z"), float("nan"))}) == {"a": ["z", "nan"]}


def test_a_failed_run_records_its_exit_status(tmp_path, capsys, monkeypatch):
    import drive.eval.simulate as sim

    def broken(*a, **k):
        raise UserError("something the user gave was wrong")

    monkeypatch.setattr(sim, "simulate", broken)
    out = tmp_path / "sim"
    assert main([*SIM, "--out", str(out)]) == 2
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["exit_status"] == 2 and record["ended"]


def test_record_appends_a_run_record_per_run(tmp_path, capsys):
    from drive.data import layout
    from drive.data.reader import snapshot

    out = tmp_path / "ds"
    argv = ["record", "--episodes", "1", "--duration-s", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert main([*argv, "--seed", "1"]) == 0
    records = sorted((out / "meta" / "runs").glob("*-record.json"))
    assert len(records) == 2
    assert json.loads(records[1].read_text())["config"]["seed"] == 1
    assert layout.foreign_entries(out) == []
    # outside the dataset's fingerprint; one file per run, never overwritten
    before = snapshot(out)
    run = runs.Run("record", [], {})
    for _ in range(2):
        runs._write_dataset_record(out, "record", run.started, run.record("finished", 0, run.started))
    assert snapshot(out) == before
    assert len(list((out / "meta" / "runs").glob("*-record*.json"))) == 4
    assert layout.foreign_entries(out) == []
    # a refused run that changed nothing leaves no record
    assert main([*argv, "--episodes", "0"]) == 2
    assert len(list((out / "meta" / "runs").glob("*.json"))) == 4


# ------------------------------------------------------------------------------------ --config


def test_config_file_and_flags_give_the_same_resolved_config(tmp_path):
    flags = [*SIM, "--out", "runs/x", "--seed", "3", "--perturb", "gaussian:0.1", "--runtime", "torch"]
    (tmp_path / "c.yaml").write_text(
        "checkpoint: expert\nepisodes: 1\nduration-s: 1\nvideo: false\nno_expert: true\nout: runs/x\nseed: 3\n"
        "perturb: [gaussian:0.1]\nruntime: torch\n"
    )
    from_file = parse(["simulate", "--config", str(tmp_path / "c.yaml")])
    from_flags = parse(flags)
    assert runs.args_config(from_file) == runs.args_config(from_flags)
    # flags override the file
    assert parse(["simulate", "--config", str(tmp_path / "c.yaml"), "--seed", "9"]).seed == 9


def test_required_flags_can_come_from_the_file(tmp_path):
    (tmp_path / "t.yaml").write_text("data: d\nout: o\nepochs: 3\nbatch_size: 8\n")
    args = parse(["train", "--config", str(tmp_path / "t.yaml")])
    assert (args.data, args.out, args.epochs, args.batch_size) == ("d", "o", 3, 8)


@pytest.mark.parametrize(
    "content, words",
    [
        ("episodes: 2\nepisdoes: 3\n", ["unknown key 'episdoes'", "3"]),
        ("episodes: many\n", ["key 'episodes'", '"many"', "whole number"]),
        ("seed: -1\n", ["key 'seed'", "-1"]),
        ("video: 3\n", ["key 'video'", "true or false"]),
        ("runtime: jax\n", ["key 'runtime'", "jax", "onnx"]),
        ("- a\n- b\n", ["expected a mapping"]),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_key_and_value(tmp_path, capsys, content, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["simulate", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err, err
    for w in words:
        assert w in err, err
    assert not (tmp_path / "o").exists()


def shipped_ncp19() -> Path:
    from drive.resources import resolve_checkpoint_arg

    return resolve_checkpoint_arg("ncp19")


def test_retraining_from_a_checkpoint_config_gives_the_same_train_config(tmp_path):
    from drive.train.config import TrainConfig

    config = shipped_ncp19() / "config.json"
    recorded = json.loads(config.read_text())["training"]
    args = parse(["train", "--config", str(config), "--data", "d", "--out", "o"])
    from drive.commands.train import NOT_GIVEN

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in given.items() if v is not NOT_GIVEN})  # as drive train builds it
    expected = TrainConfig(**{**{k: v for k, v in recorded.items() if k in given}, "data": "d", "out": "o"})
    assert cfg == expected


def test_retraining_from_a_checkpoint_config_needs_data_and_out(capsys):
    config = shipped_ncp19() / "config.json"
    assert main(["train", "--config", str(config), "--data", "d"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last component" in err and "--out" in err and "'ncp19'" in err, err


# ------------------------------------------------------------------------------------ the --out rule


def out_rules() -> dict[str, runs.OutRule]:
    rules = {}
    for verb, (module, _) in COMMANDS.items():
        rule = getattr(importlib.import_module(module), "OUT_RULE", None)
        if rule is not None:
            rules[verb] = rule
    return rules


def test_every_verb_that_writes_a_folder_has_an_out_rule():
    verbs = {"simulate", "explain", "suite", "export", "stress", "evaluate", "train", "study", "results"}
    assert verbs <= set(out_rules())  # record and import: the dataset rule (runs.DATASET_VERBS)


@pytest.mark.parametrize("verb", sorted(out_rules()))
def test_each_verbs_out_rule(verb, tmp_path):
    rule = out_rules()[verb]
    out = tmp_path / "out"
    runs.claim_out(out, rule)  # a new folder: always fine
    runs.claim_out(out, rule)  # empty (its lock only): fine
    own = [p.replace("*", "x") for p in rule.own]
    for rel in own:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("old")
    if rule.resumable:
        runs.claim_out(out, rule)  # resumes what it finds
    else:
        with pytest.raises(UserError, match="not empty.*--overwrite"):
            runs.claim_out(out, rule)
    if not rule.overwrite:
        return
    (out / "mine.txt").write_text("foreign")
    with pytest.raises(UserError, match=r"--overwrite: .* does not write \(mine.txt\)"):
        runs.claim_out(out, rule, overwrite=True)
    assert all((out / rel).exists() for rel in own)  # nothing deleted
    (out / "mine.txt").unlink()
    runs.claim_out(out, rule, overwrite=True)
    left = sorted(p.name for p in out.rglob("*"))
    assert set(left) <= {".drive.lock"}, left  # the lock: only while a run holds it


def test_simulate_refuses_a_stale_folder_and_overwrite_leaves_no_stale_files(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main([*SIM, "--out", str(out)]) == 0
    (out / "videos").mkdir()
    (out / "videos" / "episode_004.mp4").write_bytes(b"an earlier run's")  # what a longer run left
    assert main([*SIM, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--overwrite" in err and "metrics.json" in err, err
    assert main([*SIM, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "videos").exists()
    assert sorted(p.name for p in out.iterdir()) == [".drive.lock", "metrics.json", "run.json"]
    (out / "notes.txt").write_text("mine")
    assert main([*SIM, "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt" in err, err
    assert (out / "metrics.json").exists() and (out / "notes.txt").exists()


def test_train_overwrite_and_resume_exclude_each_other(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    code = main(["train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--resume", "--overwrite"])
    assert code == 2 and "--overwrite and --resume" in capsys.readouterr().err


def test_train_refusing_a_finished_checkpoint_leaves_its_files_alone(tmp_path, capsys):
    ck = tmp_path / "ck"
    # what git ships (a local training's state, ignored by git, would make it a resumable run instead)
    shutil.copytree(shipped_ncp19(), ck, ignore=shutil.ignore_patterns("train_state", "tensorboard"))
    (tmp_path / "d").mkdir()
    (ck / "run.json").write_text('{"the": "run that made it"}')
    assert main(["train", "--data", str(tmp_path / "d"), "--out", str(ck)]) == 2
    assert "finished checkpoint" in capsys.readouterr().err
    assert json.loads((ck / "run.json").read_text()) == {"the": "run that made it"}


# ------------------------------------------------------------------------------------ one name per driver


def test_simulate_names_a_checkpoint_by_its_folder_or_label(tmp_path, capsys):
    ck = tmp_path / "mine"
    ck.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(shipped_ncp19() / name, ck / name)
    base = ["simulate", "--checkpoint", str(ck), "--runtime", "torch", "--episodes", "1", "--duration-s", "0.5"]
    base += ["--no-video", "--no-expert"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["label"] == "mine" and metrics["model"] == "ncp19"
    assert "| mine " in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "b"), "--label", "candidate"]) == 0
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["label"] == "candidate"
    assert "| candidate " in capsys.readouterr().out
