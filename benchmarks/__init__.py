"""Benchmarks: each module prints ratios against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def benchmark_main(
    doc: str,
    run: Callable[[bool], dict[str, Any]],
    section: Callable[[dict[str, Any]], str],
    quick_help: str,
) -> None:
    """The command line every benchmark module shares: `[--quick] [--json PATH]`.

    Runs `run(quick)`, writes its figures as JSON when asked (the runner reads them) and
    prints `section(figures)`, the Markdown for RESULTS.md.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    result = run(args.quick)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(section(result))
