"""One thin module per ``drive`` verb (``drive/commands/<verb>.py``), registered in :data:`drive.cli.COMMANDS`.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``, and ``run``:

1. turns the parsed flags into typed values or a config dataclass
   (:func:`drive.commands.common.add_dataclass_arguments` / :func:`~drive.commands.common.dataclass_from_args`
   generate the flags from a dataclass whose fields carry docstrings);
2. checks every output folder before any work starts: ``prepare_out_dir(args.out)`` (from
   :mod:`drive.commands.common`) refuses an existing file, an unwritable place or an uncreatable folder
   with a one-line :class:`~drive.errors.UserError`, and creates the folder;
3. calls library functions with those typed values. The library never sees argparse or argv.

Bad user input anywhere (a flag value, a path, a file's content) is raised as :class:`~drive.errors.UserError`;
``drive.cli`` prints it as one line with exit status 2. Any other exception is a bug and keeps its traceback.
Import heavy modules (torch) inside ``run``, so ``drive --help`` stays instant.
"""
