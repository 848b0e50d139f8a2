"""The docs name only paths and modules that exist, so they cannot drift from the tree.

Every module of the packages has its row in its package's code map (the nearest README.md
above it), and every inline code span of the README, ``docs/*.md`` and the package READMEs is
checked:

- a repository path (ending in ``.py``, ``.proto`` or ``.md``, or starting with a top-level
  directory of the project, globs allowed) must exist, relative to the repository root or to
  the markdown file's own directory (a package README names its modules by file name);
- a dotted name in a project package (``polyfleet.dsl.validate_document``) must be a module,
  or a name that module defines or imports at top level.

Relative markdown links must reach a file, and a ``#section`` a heading of it. Fenced code
blocks are left alone: they hold commands and examples, not references.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("polyfleet", "orchestrator", "runner", "store")
#: Where package READMEs live, besides the packages themselves.
OTHER_DIRS = ("protos", "examples", "bench", "deploy", "scripts")
PATH_SUFFIXES = (".py", ".proto", ".md")
#: Generated code: its names come from protoc, not from source this test can read.
GENERATED = ("polyfleet.v1",)

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^()\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
_DOTTED = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+$")


def _markdown_files() -> list[Path]:
    """The README, the docs and every README in the packages and the other project folders."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for top in (*PACKAGES, *OTHER_DIRS):
        files += sorted((ROOT / top).rglob("README.md"))
    return files


@cache
def _top_level_dirs() -> frozenset[str]:
    """The project's top-level directories (not hidden, not tool caches)."""
    return frozenset(
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and not p.name.startswith((".", "__")) and p.name != "node_modules"
    )


def _code_spans(path: Path) -> Iterator[str]:
    text = _FENCE.sub("", path.read_text())
    for match in _CODE_SPAN.finditer(text):
        yield match.group(1).strip()


def _as_path(span: str) -> str | None:
    """The repository path ``span`` names, or None when it names none."""
    if any(c.isspace() for c in span) or "://" in span or "$" in span or "=" in span:
        return None
    # `path.py:attribute` and `file.md#section` name the file.
    candidate = span.split("#", 1)[0]
    if ":" in candidate:
        head = candidate.split(":", 1)[0]
        if not head.endswith(PATH_SUFFIXES):
            return None
        candidate = head
    if candidate.startswith("/") or not candidate:
        return None  # JSON pointers (`/do/0/step`) and absolute paths are not repository paths.
    if candidate.endswith(PATH_SUFFIXES):
        return candidate
    first = candidate.split("/", 1)[0]
    if "/" in candidate and first in _top_level_dirs():
        return candidate
    return None


def _expand(reference: str) -> list[str]:
    """``tests/{unit,e2e}`` as ``tests/unit`` and ``tests/e2e``, as a shell would."""
    match = re.search(r"\{([^{}]*)\}", reference)
    if match is None:
        return [reference]
    head, tail = reference[: match.start()], reference[match.end() :]
    return [x for alt in match.group(1).split(",") for x in _expand(head + alt + tail)]


def _exists_one(reference: str, base: Path) -> bool:
    if any(c in reference for c in "*?["):
        return any(base.glob(reference.rstrip("/")))
    return (base / reference).exists()


def _exists(reference: str, doc: Path) -> bool:
    return all(
        any(_exists_one(one, base) for base in (ROOT, doc.parent)) for one in _expand(reference)
    )


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as ``-``."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = _FENCE.sub("", path.read_text())
    return frozenset(_anchor(m.group(1)) for m in _HEADING.finditer(text))


def _stale_links(doc: Path) -> Iterator[str]:
    """Relative links to files that do not exist, or to sections those files do not have."""
    for match in _LINK.finditer(_FENCE.sub("", doc.read_text())):
        target = match.group(1)
        if re.match(r"^[a-z][a-z+.-]*:", target):
            continue  # https:, mailto: and the like: not the tree's to check
        file, _, section = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            yield f"link ({target})"
        elif section and path.suffix == ".md" and section not in _anchors(path):
            yield f"link ({target})"


@cache
def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _top_level_names(path: Path) -> frozenset[str]:
    """Names a module defines or imports at top level (including under ``if``/``try``)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                if isinstance(node.target, ast.Name):
                    names.add(node.target.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return frozenset(names)


@cache
def _string_literals() -> frozenset[str]:
    """Every string constant in the project's sources: metric, logger and span names."""
    return frozenset(
        node.value
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a project module, a name one defines, or a name the code uses.

    A dotted name that is no module may still be a metric or logger name
    (``polyfleet.reconciler.repairs``): it exists when the code spells it as a string.
    """
    return _resolves_in_code(dotted) or dotted in _string_literals()


def _resolves_in_code(dotted: str) -> bool:
    if dotted.startswith(GENERATED):
        return _module_file(dotted) is not None or (ROOT / "polyfleet" / "v1").is_dir()
    parts = dotted.split(".")
    for size in range(len(parts), 0, -1):
        module = ".".join(parts[:size])
        path = _module_file(module)
        if path is None:
            continue
        rest = parts[size:]
        # Only the first attribute is checked: `Class.method` needs the class, not its body.
        return not rest or rest[0] in _top_level_names(path)
    return False


def _stale(doc: Path) -> list[str]:
    stale = []
    for span in _code_spans(doc):
        reference = _as_path(span)
        if reference is not None and not _exists(reference, doc):
            stale.append(f"path `{span}`")
        elif reference is None and _DOTTED.match(span) and not _resolves(span):
            stale.append(f"name `{span}`")
    stale.extend(_stale_links(doc))
    return stale


@pytest.mark.parametrize(
    "doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)) if isinstance(p, Path) else p
)
def test_docs_name_only_what_exists(doc: Path) -> None:
    stale = _stale(doc)
    assert not stale, f"{doc.relative_to(ROOT)} names what the tree does not have: {stale}"


def test_the_check_finds_stale_references(tmp_path: Path) -> None:
    """The checker itself: a moved module and a renamed name are caught, the rest is not."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "See `runner/reporter.py`, `orchestrator/threads.py` and `polyfleet.dsl.NoSuchName`.\n"
        "Fine: `runner/progress.py`, `store/`, `polyfleet.dsl.validate_document`, `/do/0/x`,\n"
        "`protos/polyfleet/v1/*.proto`, `module:attribute`, `POLYFLEET_API_ADDRESS`.\n"
        "```\ncat no/such/file.py\n```\n"
        "## A section\n"
        "[here](#a-section), [there](https://example.org/x.md), [gone](gone.md),\n"
        f"[moved]({ROOT}/docs/architecture.md#no-such-section).\n"
    )
    assert _stale(doc) == [
        "path `runner/reporter.py`",
        "path `orchestrator/threads.py`",
        "name `polyfleet.dsl.NoSuchName`",
        "link (gone.md)",
        f"link ({ROOT}/docs/architecture.md#no-such-section)",
    ]


def _code_map_gaps() -> list[str]:
    """Modules that the code map of their package (the nearest README.md above them) omits."""
    gaps = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel.name == "__init__.py" or rel.parts[:2] == ("polyfleet", "v1"):
                continue
            readme = next(p / "README.md" for p in path.parents if (p / "README.md").is_file())
            named = set(_code_spans(readme))
            local = path.relative_to(readme.parent)
            # A module is named by its path from the README, or covered by a row of its folder.
            covered = {str(local), *(f"{parent}/" for parent in local.parents if parent.parts)}
            if not covered & named:
                gaps.append(str(rel))
    return gaps


def test_every_module_is_on_its_code_map() -> None:
    """A new module gets its row in the code map of its package (see docs/architecture.md)."""
    assert not _code_map_gaps(), f"modules missing from their package README: {_code_map_gaps()}"
