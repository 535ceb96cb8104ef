"""The MIWG corpus through the engine: every file lints without a crash; clean files deploy and run to the end.

Files whose only errors are gateway flows without conditions run after a transform kept here (each gateway's first
outgoing flow becomes its default). The table per tool is printed (pytest -s, or in the captured output).
"""

from __future__ import annotations

from collections import Counter
from uuid import uuid4

import pytest
from corpus import AnyConnector, corpus, drive, files, first_flow_default, only_missing_conditions

from baton.engine import Engine
from baton.engine.errors import InvalidDiagram

COLUMNS = ("files", "lint clean", "after transform", "ran to the end")


@pytest.mark.timeout(900)
def test_every_corpus_file_lints_and_every_clean_one_runs_to_its_end(sqlite_url):
    root = corpus()
    if not root.is_dir():
        pytest.skip(f"no corpus at {root}")
    engine = Engine(sqlite_url)
    engine.connectors = AnyConnector()
    table: dict[str, Counter[str]] = {}
    unfinished = []
    for tool, path in files(root):
        counts = table.setdefault(tool, Counter())
        counts["files"] += 1
        try:
            report = engine.lint(path)
        except InvalidDiagram:  # not even XML: the report names the line
            continue
        if report.ok:
            counts["lint clean"] += 1
            source = path.read_bytes()
        elif only_missing_conditions(report.problems):
            source = first_flow_default(path.read_bytes())
            if not engine.lint(source).ok:
                continue
            counts["after transform"] += 1
        else:
            continue
        endings = [drive(engine, engine.start(d.process_id, business_key=str(uuid4())).id)
                   for d in engine.deploy(source)]
        if endings and set(endings) == {"complete"}:
            counts["ran to the end"] += 1
        else:
            unfinished.append(f"{tool}/{path.name}: {endings}")
    engine.close()
    lines = [f"{'tool':38}" + "".join(f"{c:>17}" for c in COLUMNS)]
    lines += [f"{tool:38}" + "".join(f"{counts[c]:>17}" for c in COLUMNS) for tool, counts in table.items()]
    total = sum(table.values(), Counter())
    lines.append(f"{'all':38}" + "".join(f"{total[c]:>17}" for c in COLUMNS))
    print("\n" + "\n".join(lines + ["not finished:", *unfinished]))
    assert unfinished == []
