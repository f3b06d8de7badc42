"""One thin module per ``drive`` verb.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``: it parses argv into typed values,
checks the output folder before any work starts (:func:`drive.commands.common.prepare_out_dir`), and
calls library functions. The library never sees argparse.
"""
