"""Skills defined apart from the worker (the official SDK's `SkillBlueprint` and skills directory).

A module declares `bp = SkillBlueprint()` and `@bp.skill("name", version=...)` handlers, or a
`setup(worker)` function; `worker.include_blueprint(bp)` registers them, and at start the worker loads
every such module in WORKER_SKILLS_DIR (default `skills`, when it exists).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import StartupError
from .handlers import Handler

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger(__name__)
H = TypeVar("H", bound=Handler)


class SkillBlueprint:
    """Handlers declared without a worker; `worker.include_blueprint(bp)` registers them."""

    def __init__(self) -> None:
        self.skills: list[tuple[str, Handler, dict[str, Any]]] = []

    def skill(self, name: str | None = None, **keywords: Any) -> Callable[[H], H]:
        """Like `@worker.task(name, ...)`; the name defaults to the function's."""

        def decorator(func: H) -> H:
            self.skills.append((name or func.__name__, func, keywords))
            return func

        return decorator

    task = skill


def load_skills_dir(worker: Worker, directory: Path) -> list[str]:
    """Import every `*.py` in `directory` (not `_*`): include its blueprints, call its `setup(worker)`."""
    loaded = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = _import(path)
            found = [v for v in vars(module).values() if isinstance(v, SkillBlueprint)]
            for blueprint in found:
                worker.include_blueprint(blueprint)
            setup = getattr(module, "setup", None)
            if callable(setup):
                setup(worker)
        except Exception as exc:  # a broken skills module must not start a worker without its skills
            raise StartupError(f"skills module {path} failed to load: {exc!r}; fix it or move it") from exc
        if found or callable(setup):
            loaded.append(path.name)
    if loaded:
        logger.info("loaded skills from %s: %s", directory, ", ".join(loaded))
    return loaded


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"avtomatika_skills.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
