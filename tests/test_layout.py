"""Stages meet only through files and shared utilities (DESIGN.md, "Layout"): no stage imports
another stage's modules, neither directly nor through a shared module that does.

Stages: mining (mining/), curation (semantica/curation/), training (training/), evaluation
(evaluation/). Every other module of semantica/ is shared and importable by all (config, encoders,
images, errors, logs, outputs, beam, beam_logs, portable, schemas, tiny_encoder, sample_web, ...);
the CLI and the demo (semantica/cli.py, semantica/demo.py) run the stages one after another and
import them. A shared module that imports a stage (the sample web uses the miner's reason names,
its WARC reader and evaluation's CNN judge) is not checked itself, but a stage importing it reaches
that stage through it, and that fails. Imports are read with `ast`, so one inside a function counts too.
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path
from typing import Optional

from helpers import REPO

STAGES = ("mining", "curation", "training", "evaluation")
# Known exceptions, (file, import statement as ast.unparse writes it). Each is to go: an entry that
# no longer occurs fails test_allowed_imports_are_still_needed, so delete it when its fix lands.
ALLOWED: set = set()  # none left: SemanticaPipeline moved to semantica/pipeline.py (issue 16)


def package_roots(repo: Path) -> dict[str, Path]:
    """Package name → folder, from setup.cfg's package_dir (`semantica.mining = mining`, ...)."""
    cfg = configparser.ConfigParser()
    cfg.read(repo / "setup.cfg")
    pairs = (line.split("=", 1) for line in cfg["options"]["package_dir"].splitlines() if "=" in line)
    return {name.strip(): repo / folder.strip() for name, folder in pairs}


def stage_of(module: str) -> Optional[str]:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "semantica" and parts[1] in STAGES else None


def modules(roots: dict[str, Path]) -> dict[str, Path]:
    """Every module under the roots: dotted name → file."""
    found = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(folder).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            found[".".join((package,) + rel)] = path
    return found


def imports(module: str, path: Path) -> list[tuple[ast.stmt, list[str]]]:
    """Each import statement of a module file, in line order, with every dotted name it may load
    (for `from a.b import c`: a.b and a.b.c, since c may be a module); relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.append((node, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.append((node, [base] + [f"{base}.{alias.name}" for alias in node.names]))
    return sorted(found, key=lambda f: (f[0].lineno, f[0].col_offset))


def loaded(name: str, known: dict[str, Path]) -> set[str]:
    """The modules of ours that importing `name` runs: it, if it is one, and every package above it."""
    parts = name.split(".")
    return {m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in known}


def layout_violations(repo: Path, allowed: set = frozenset()) -> list[str]:
    """`file:line: `statement`: what is wrong`, for every import by which a module of one stage
    loads a module of another, itself or through shared modules that do."""
    known = modules(package_roots(repo))
    edges = {m: [(node, set().union(*(loaded(n, known) for n in names))) for node, names in imports(m, p)]
             for m, p in known.items()}

    def other_stage(targets: set, stage: str) -> Optional[str]:
        hits = [t for t in targets if stage_of(t) not in (None, stage)]
        return max(hits, key=len) if hits else None  # the module itself, not its package

    def through_shared(start: str, stage: str) -> Optional[list[str]]:
        """Shared modules from `start` on, ending with a module of another stage than `stage`; or None."""
        seen, todo = {start}, [[start]]
        while todo:
            chain = todo.pop(0)
            for _, targets in edges[chain[-1]]:
                hit = other_stage(targets, stage)
                if hit:
                    return chain + [hit]
                for t in sorted(targets - seen):
                    seen.add(t)
                    if stage_of(t) is None:
                        todo.append(chain + [t])
        return None

    found = []
    for module, path in sorted(known.items(), key=lambda kv: kv[1]):
        stage = stage_of(module)
        if stage is None:
            continue  # shared modules, the CLI and the demo may import stages; what a stage reaches through them counts
        rel = path.relative_to(repo).as_posix()
        for node, targets in edges[module]:
            statement = ast.unparse(node)
            if (rel, statement) in allowed:
                continue
            hit = other_stage(targets, stage)
            if hit:
                found.append(f"{rel}:{node.lineno}: `{statement}`: {stage} imports {stage_of(hit)} ({hit})")
                continue
            for t in sorted(t for t in targets if stage_of(t) is None):
                chain = through_shared(t, stage)
                if chain:
                    found.append(f"{rel}:{node.lineno}: `{statement}`: {stage} imports {stage_of(chain[-1])} "
                                 f"through shared {' → '.join(chain)}")
                    break
    return found


# ----------------------------------------------------------------------------- the project
def test_no_stage_imports_another():
    roots = package_roots(REPO)
    assert {"semantica", "semantica.mining", "semantica.training", "semantica.evaluation"} <= set(roots)
    assert {stage_of(m) for m in modules(roots)} == set(STAGES) | {None}  # every stage has modules
    found = layout_violations(REPO, ALLOWED)
    assert not found, "stages import each other (they meet through files and semantica/*):\n" + "\n".join(found)


def test_allowed_imports_are_still_needed():
    """An allow-list entry whose import is gone must be deleted, so no exception outlives its reason."""
    found = layout_violations(REPO)
    for rel, statement in ALLOWED:
        assert any(v.startswith(f"{rel}:") and f"`{statement}`" in v for v in found), \
            f"{rel}: `{statement}` no longer crosses stages: delete it from ALLOWED in tests/test_layout.py"


# ----------------------------------------------------------------------------- the checker itself
SETUP_CFG = """[options]
package_dir =
    semantica = semantica
    semantica.mining = mining
    semantica.training = training
    semantica.evaluation = evaluation
"""


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in dict(files, **{"setup.cfg": SETUP_CFG}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_checker_names_file_line_and_import(tmp_path):
    repo = _tree(tmp_path, {
        "semantica/__init__.py": "",
        "semantica/images.py": "import numpy\n",
        "semantica/cli.py": "from semantica.mining import pipeline\nfrom semantica.training import trainer\n",
        "semantica/helpers.py": "def f():\n    from semantica.training.model import Net\n",
        "semantica/curation/__init__.py": "",
        "semantica/curation/publish.py": "from semantica.images import to_rgb\n\nimport semantica.mining.decode\n",
        "mining/__init__.py": "",
        "mining/decode.py": "from semantica.images import to_rgb\nfrom semantica.mining import reasons\n",
        "mining/reasons.py": "",
        "mining/pipeline.py": "import json\nfrom semantica import helpers\n",
        "training/__init__.py": "",
        "training/model.py": "import torch\n",
        "training/trainer.py": "from semantica.images import to_rgb\n",
        "evaluation/__init__.py": "",
        "evaluation/generate.py": "from ..training import model\nfrom semantica.curation.publish import x\n",
        "evaluation/report.py": "from . import generate\nfrom semantica import cli\n",
    })
    found = layout_violations(repo)
    assert found == [
        "evaluation/generate.py:1: `from ..training import model`: evaluation imports training "
        "(semantica.training.model)",
        "evaluation/generate.py:2: `from semantica.curation.publish import x`: evaluation imports curation "
        "(semantica.curation.publish)",
        "evaluation/report.py:2: `from semantica import cli`: evaluation imports mining through shared "
        "semantica.cli → semantica.mining.pipeline",
        "mining/pipeline.py:2: `from semantica import helpers`: mining imports training through shared "
        "semantica.helpers → semantica.training.model",
        "semantica/curation/publish.py:3: `import semantica.mining.decode`: curation imports mining "
        "(semantica.mining.decode)",
    ], found
    allowed = {("semantica/curation/publish.py", "import semantica.mining.decode")}
    assert [v for v in layout_violations(repo, allowed) if v.startswith("semantica/curation/")] == []


def test_checker_passes_a_clean_tree(tmp_path):
    repo = _tree(tmp_path, {
        "semantica/__init__.py": "",
        "semantica/images.py": "import numpy\n",
        "semantica/cli.py": "from semantica.mining import decode\nfrom semantica.training import data\n",
        "mining/__init__.py": "",
        "mining/decode.py": "from semantica.images import to_rgb\nfrom . import reasons\n",
        "mining/reasons.py": "",
        "training/__init__.py": "",
        "training/data.py": "from semantica.images import to_rgb\nfrom semantica.training import model\n",
        "training/model.py": "",
        "evaluation/__init__.py": "",
    })
    assert layout_violations(repo) == []
