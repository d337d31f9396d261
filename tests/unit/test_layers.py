"""The layers, read from the source with ``ast`` (every import: at the top and inside functions, ``import x`` and
``from x import y``, relative ones resolved, ``importlib.import_module("x")`` and ``"x:attr"`` references):

(a) ``emulation/`` (the engines) imports nothing of ``pipeline/`` but its leaf modules (:data:`LEAVES`), and those
    import no other module of ``pipeline/``;
(b) the two lanes never import each other: nothing under ``pipeline/batch`` imports ``pipeline.speed``, nothing under
    ``pipeline/speed`` imports ``pipeline.batch`` (what both use lives beside them: ``pipeline.lake``,
    ``pipeline.resources``, ``pipeline.storage``, ``pipeline.contracts``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("emulation", "pipeline")

# What emulation may import of pipeline: modules that import nothing of pipeline's but each other. (pipeline.errors,
# named a leaf by the issue, gathers the lanes' errors, so importing pipeline.batch and pipeline.speed: it may join
# once it is a leaf.)
LEAVES = frozenset({"pipeline.settings", "pipeline.progress"})
LANES = ("pipeline.batch", "pipeline.speed")

# Violations tolerated until the provisioning layer (pipeline/provision/) takes them over: (importer, imported).
# Empty it as each is fixed (test_pending_violations_still_occur warns of a pair that no longer occurs).

_REFERENCE = re.compile(r"((?:emulation|pipeline)(?:\.\w+)*):\w+")  # "module:attr", imported when used


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module, dotted
    imported: str  # the imported module (a package's submodule when ``from package import submodule``)
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
            if "__pycache__" not in p.parts}


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """A relative import's absolute module (``from . import x`` in ``a.b`` is ``a``, then ``x`` under it)."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def imports(modules: dict[str, Path]) -> Iterator[Import]:
    """Every import of every module of ours (also inside functions and ``if TYPE_CHECKING:``)."""
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(importer, is_package, node.level, node.module)
                # ``from pipeline import platform`` imports the module pipeline.platform
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str) and _called(node.func) in ("import_module", "__import__")):
                found = [node.args[0].value]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _REFERENCE.fullmatch(node.value.strip())
                found = [match.group(1)] if match and match.group(1) in modules else []
            for imported in dict.fromkeys(found):
                yield Import(importer, imported, f"{rel}:{node.lineno}")


def _called(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(found: list[Import]) -> list[Import]:
    bad = []
    for imp in found:
        if _under(imp.importer, "emulation") and _under(imp.imported, "pipeline") and imp.imported not in LEAVES:
            bad.append(imp)  # (a) the engines know nothing of the pipeline but its leaves
        elif imp.importer in LEAVES and _under(imp.imported, "pipeline") and imp.imported not in LEAVES:
            bad.append(imp)  # (a) a leaf stays a leaf, or emulation would import the rest through it
        elif imp.importer in LEAVES and _under(imp.imported, "emulation"):
            bad.append(imp)
        else:
            for lane, other in (LANES, LANES[::-1]):
                if _under(imp.importer, lane) and _under(imp.imported, other):
                    bad.append(imp)  # (b) the lanes never import each other
    return bad


def report(bad: list[Import]) -> str:
    return "\n".join(str(imp) for imp in bad)


def test_the_walk_sees_both_packages_and_imports_of_every_kind():
    modules = sources()
    assert {"emulation.registry", "pipeline.settings", "pipeline.batch.ingest.read", "pipeline.speed.lane"} <= set(
        modules)
    found = {(i.importer, i.imported) for i in imports(modules)}
    assert ("pipeline.platform", "emulation.service") in found  # at the top
    assert ("pipeline.platform", "pipeline.speed.cdc") in found  # inside a function, ``from pipeline.speed import cdc``
    assert _resolve("pipeline.batch.ingest.read", False, 2, "lake") == "pipeline.batch.lake"
    assert _resolve("pipeline.batch", True, 1, None) == "pipeline.batch"


def test_the_engines_import_only_the_pipelines_leaves_and_the_lanes_never_each_other():
    bad = violations(list(imports(sources())))
    for imp in bad:
        print(imp)
    assert not bad, "imports across the layers:\n" + report(bad)




ENGINE_CLASSES = frozenset({"PostgresService", "S3Service", "KafkaService", "ConnectService", "CassandraService",
                            "PostgresContainerService", "S3ContainerService"})


def engine_constructions(paths: list[Path]) -> list[str]:
    """Every ``SomeEngineService(...)`` call: each should be ``emulation.resources.engine(name, settings)``, the one
    place that chooses a deployment's engines (a process, a container or the endpoint the settings name)."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _called(node.func) in ENGINE_CLASSES:
                found.append(f"{path.name}:{node.lineno}: {_called(node.func)}(...)")
    return found


def test_engines_are_chosen_only_by_the_resources_module(tmp_path):
    ours = [p for p in sorted(ROOT.glob("*/**/*.py")) if p.parts[len(ROOT.parts)] in (*PACKAGES, "tests")
            and "__pycache__" not in p.parts and p != ROOT / "emulation" / "resources.py"]
    assert ROOT / "tests" / "conftest.py" in ours
    built = engine_constructions(ours)
    assert not built, "engines built outside emulation.resources.engine:\n" + "\n".join(built)
    planted = tmp_path / "planted.py"
    planted.write_text("from emulation.kafka import KafkaService\nKafkaService(settings).start()\n")
    assert [line.split(": ", 1)[1] for line in engine_constructions([planted])] == ["KafkaService(...)"]
