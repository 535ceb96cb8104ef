"""Every file of the MIWG corpus (../shared/corpus/miwg, or tests/data/miwg) imports into the vendored bpmn-js viewer.

The viewer is the one the web app serves (web/static/vendor/bpmn-js, copied by .ci/vendor); it runs in headless
Chromium on a blank page, with no server. Each diagram of each file is opened; import warnings are counted, not
failures (bpmn-js warns about what it cannot draw or resolve and still draws the rest).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from corpus import corpus
from playwright.sync_api import Browser

REPO = Path(__file__).resolve().parents[2]
CORPUS = corpus()  # the whole corpus beside the repo, or the part kept in tests/data/miwg
VIEWER = REPO / "web" / "static" / "vendor" / "bpmn-js" / "bpmn-navigated-viewer.production.min.js"

IMPORT = """
async (xml) => {
  const container = document.getElementById('canvas');
  const viewer = new BpmnJS({ container });
  const result = { ok: true, error: null, warnings: [], diagrams: 0, elements: 0 };
  try {
    const first = await viewer.importXML(xml);
    result.warnings.push(...first.warnings.map(w => w.message));
    const diagrams = viewer.getDefinitions().diagrams || [];
    result.diagrams = diagrams.length;
    result.elements = viewer.get('elementRegistry').getAll().length;
    for (const diagram of diagrams.slice(1)) {
      const next = await viewer.open(diagram);
      result.warnings.push(...next.warnings.map(w => w.message));
      result.elements += viewer.get('elementRegistry').getAll().length;
    }
  } catch (err) {
    result.ok = false;
    result.error = String(err && err.message || err);
    result.warnings.push(...((err && err.warnings) || []).map(w => w.message));
  } finally {
    viewer.destroy();
  }
  return result;
}
"""


def test_bpmn_js_imports_the_miwg_corpus(browser: Browser) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no MIWG corpus at {CORPUS}")
    if not VIEWER.exists():
        pytest.skip(f"no vendored bpmn-js at {VIEWER}: run .ci/vendor")
    files = sorted(CORPUS.rglob("*.bpmn"))
    assert files, f"no .bpmn files under {CORPUS}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.set_content('<!doctype html><div id="canvas" style="width:1200px;height:800px"></div>')
        page.add_script_tag(path=str(VIEWER))
        assert page.evaluate("typeof BpmnJS") == "function", "the vendored viewer did not define BpmnJS"
        results = {}
        for path in files:
            xml = path.read_bytes().decode("utf-8-sig")
            results[path.relative_to(CORPUS)] = page.evaluate(IMPORT, xml)
    finally:
        context.close()

    folders: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
    for name, result in results.items():
        folders[name.parts[0]].append((name, result))
    lines = [f"{'folder':40} {'files':>5} {'failed':>6} {'warned':>6} {'warnings':>8} {'diagrams':>8} {'elements':>8}"]
    for folder, rows in sorted(folders.items()):
        r = [result for _, result in rows]
        failed, warned = sum(not x["ok"] for x in r), sum(bool(x["warnings"]) for x in r)
        warnings, diagrams, elements = (
            sum(len(x["warnings"]) for x in r),
            sum(x["diagrams"] for x in r),
            sum(x["elements"] for x in r),
        )
        lines.append(f"{folder:40} {len(r):5} {failed:6} {warned:6} {warnings:8} {diagrams:8} {elements:8}")
    warned = [(name, r) for name, r in results.items() if r["warnings"]]
    if warned:
        lines.append("warnings, per file (first one shown):")
        lines += [f"  {name}: {len(r['warnings'])}: {' '.join(r['warnings'][0].split())[:160]}" for name, r in warned]
    print("\nbpmn-js import of the MIWG corpus\n" + "\n".join(lines))

    failed = {str(name): r["error"] for name, r in results.items() if not r["ok"]}
    assert not failed, "bpmn-js could not import:\n" + "\n".join(f"  {n}: {e}" for n, e in failed.items())
    empty = [str(name) for name, r in results.items() if r["elements"] == 0]
    assert not empty, f"imported but drew nothing: {empty}"
