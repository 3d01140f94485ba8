"""Who may import whom (README, Architecture). Read from the source, so it holds for
function-local imports too:

- `apps.core` is what every app uses: it imports no app.
- No app imports another app's private modules: a module named `_*`, or an entry point
  (its views `api`/`v1_api`/`views`, `admin`, `urls`, `tasks`, `signals`, `apps`, management commands).
  Only the URLconf that gathers the management API's routes (`apps.management.urls`) imports
  the apps' `api` modules.
- `apps.management` (the management API's framework and permission rules) is imported only by
  the management API's and the admin's own modules, never by the data plane.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "apps"
ENTRY_POINTS = {"api", "v1_api", "views", "admin", "urls", "tasks", "signals", "apps"}
MANAGEMENT_USERS = {"api", "admin", "serializers", "urls"}  # the modules that may use apps.management
URLCONF_GATHERING_VIEWS = "apps.management.urls"


def _modules():
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imported(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from apps.keys import api`
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else None


def _is_private(module: str) -> bool:
    parts = module.split(".")[2:]  # inside the app
    if not parts:
        return False
    if any(part.startswith("_") and not part.startswith("__") for part in parts):
        return True
    if "commands" in parts and parts[0] == "management":
        return True
    return parts[0] in ENTRY_POINTS


def _existing(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _violations():
    for module, path in _modules():
        app = _app_of(module)
        own_name = module.split(".")[-1]
        for line, imported in _imported(path):
            target = _app_of(imported)
            if target is None or target == app or not _existing(imported):
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            if app == "core":
                yield f"{where}: apps.core imports no app"
            if _is_private(imported) and not (
                module == URLCONF_GATHERING_VIEWS and imported.split(".")[2] == "api"
            ):
                yield f"{where}: another app's private module or entry point"
            if target == "management" and own_name not in MANAGEMENT_USERS and not own_name.startswith("admin"):
                yield f"{where}: only the management API's views, serializers and admins use apps.management"


def test_every_import_goes_the_allowed_direction():
    assert list(_violations()) == []


def test_the_check_sees_what_it_forbids(tmp_path, monkeypatch):
    """The rules catch each kind of violation (a check that finds nothing must still look)."""
    assert _is_private("apps.teams.api")
    assert _is_private("apps.spend.management.commands._prices")
    assert _is_private("apps.spend.management.commands.import_prices")
    assert not _is_private("apps.spend.management")  # a package, not a command
    assert not _is_private("apps.keys.services")
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from apps.keys.selectors import virtual_key_get_for_auth\n")
    assert list(_imported(source)) == [(2, "apps.keys.selectors"), (2, "apps.keys.selectors.virtual_key_get_for_auth")]
