"""The MIWG corpus through the engine: every file lints without a crash; clean files deploy and run to the end.

Files whose only errors are gateway flows without conditions run after a transform kept here (each gateway's first
outgoing flow becomes its default). Where that first flow leads back into a loop, the instance goes round forever, as
the transformed diagram says: it is counted apart, not as a failure. The table per tool is printed (pytest -s, or in
the captured output).
"""

from __future__ import annotations

from collections import Counter
from uuid import uuid4

import pytest
from corpus import AnyConnector, corpus, drive, files, first_flow_default, only_missing_conditions

from baton.engine import Engine
from baton.engine.parsing import Source

COLUMNS = ("files", "stored", "lint clean", "after transform", "ran to the end", "loops (transform)")


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
        draft = engine.save_draft(Source(path.name, path.read_bytes()))  # an upload: stored whatever lint says
        if engine.draft_file(draft.id, path.name) == path.read_bytes():
            counts["stored"] += 1
        if draft.report.ok:
            counts["lint clean"] += 1
            deployed = engine.deploy_draft(draft.id)
        elif only_missing_conditions(draft.report.problems):
            transformed = first_flow_default(path.read_bytes())
            if not engine.lint(transformed).ok:
                continue
            counts["after transform"] += 1
            deployed = engine.deploy(transformed)
        else:
            continue
        endings = [drive(engine, engine.start(d.process_id, business_key=str(uuid4())).id) for d in deployed]
        if endings and set(endings) == {"complete"}:
            counts["ran to the end"] += 1
        elif not draft.report.ok and "looped" in endings and set(endings) <= {"complete", "looped"}:
            counts["loops (transform)"] += 1
        else:
            unfinished.append(f"{tool}/{path.name}: {endings}")
    engine.close()
    lines = [f"{'tool':34}" + "".join(f"{c:>18}" for c in COLUMNS)]
    lines += [f"{tool:34}" + "".join(f"{counts[c]:>18}" for c in COLUMNS) for tool, counts in table.items()]
    total = sum(table.values(), Counter())
    lines.append(f"{'all':34}" + "".join(f"{total[c]:>18}" for c in COLUMNS))
    print("\n" + "\n".join(lines + ["not finished:", *unfinished]))
    assert unfinished == []
    assert total["stored"] == total["files"]
