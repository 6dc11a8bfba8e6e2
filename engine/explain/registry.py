"""Where explainers come from: built-ins, installed packages, and the user's plugin folder.

Three sources are read in this order, and the first explainer to claim a name keeps it:

1. the built-in modules of the ``plugins`` package;
2. entry points in the group ``lucida.explainers`` (a package's ``pyproject.toml`` declares
   ``[project.entry-points."lucida.explainers"] name = "pkg.module:ExplainerClass"``);
3. ``.py`` files in the user plugin folders: ``LUCIDA_USER_PLUGINS`` (folders separated by
   ``os.pathsep``; empty means none) or else the per-user data folder
   (``~/.local/share/lucida/plugins`` on Linux).

An entry point or a file may provide an explainer class, an explainer object, a module, or a list
of these; a module contributes its ``EXPLAINERS`` tuple, or else every :class:`Explainer`
subclass it defines. A plugin that fails to import or breaks the contract is skipped and reported
in :attr:`Registry.errors` with one line; it never stops the others. A parameter schema that
cannot work (an unknown type, a range with min > max, a default outside its own range or
choices) is such a break: :class:`engine.explain.api.Param` refuses it when it is built, so the
file or package that declares it is reported, naming the parameter, and not registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import threading
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.core.errors import LucidaError, UsageError
from engine.core.log import user_data_dir
from engine.explain.api import NEEDS, Explainer, PluginError, check_params

#: Entry-point group third-party packages register explainers under.
ENTRY_POINT_GROUP = "lucida.explainers"
#: Environment variable naming the user plugin folders.
USER_PLUGINS_ENV = "LUCIDA_USER_PLUGINS"
#: Built-in explainer modules, in the order ``methods`` lists them.
BUILTIN_MODULES = (
    "plugins.cam",
    "plugins.gradient_cams",
    "plugins.eigencam",
    "plugins.scorecam",
    "plugins.occlusion",
    "plugins.rise",
    "plugins.ablationcam",
    "plugins.gradients",
    "plugins.guided",
    "plugins.superpixels",
    "plugins.attention_rollout",
    "plugins.attention_relevance",
    "plugins.legrad",
)


def default_user_plugin_dir() -> Path:
    """Return the per-user plugin folder of this platform (it need not exist)."""
    return user_data_dir() / "plugins"


def user_plugin_dirs() -> list[Path]:
    """Return the folders searched for user plugin files."""
    value = os.environ.get(USER_PLUGINS_ENV)
    if value is None:
        return [default_user_plugin_dir()]
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _contract_problem(obj: Any) -> str | None:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        return "has no valid 'name' (letters, digits, '_' or '-')"
    if not callable(getattr(obj, "explain", None)):
        return f"explainer {name!r} has no explain() method"
    needs = getattr(obj, "needs", None)
    if needs is None or not set(needs) <= NEEDS:
        return f"explainer {name!r} declares needs {needs!r}; allowed: {', '.join(sorted(NEEDS))}"
    try:
        check_params(obj)
    except PluginError as exc:
        return exc.one_line()
    return None


def _broken(origin: str, exc: Exception) -> str:
    """The one line that reports a plugin which failed to import or to build."""
    if isinstance(exc, LucidaError):
        # Already one line that names what is wrong (a Param's schema) and the fix.
        return f"plugin {origin}: {exc.one_line()}"
    return f"plugin {origin}: {type(exc).__name__}: {exc}"


def _explainers_in(obj: Any) -> list[Any]:
    """Instantiate what an entry point or plugin file provides."""
    if isinstance(obj, ModuleType):
        found = getattr(obj, "EXPLAINERS", None)
        if found is None:
            found = [
                v for v in vars(obj).values()
                if inspect.isclass(v) and issubclass(v, Explainer) and v is not Explainer
                and v.__module__ == obj.__name__
            ]
        return [item for f in found for item in _explainers_in(f)]
    if isinstance(obj, (list, tuple)):
        return [item for f in obj for item in _explainers_in(f)]
    if inspect.isclass(obj):
        return [obj()]
    return [obj]


class Registry:
    """The explainers available in this process, by registry key.

    Attributes
    ----------
    errors : list of str
        One line per plugin that was skipped, naming it and why.
    """

    def __init__(self) -> None:
        self._explainers: dict[str, Any] = {}
        self._origins: dict[str, str] = {}
        self.errors: list[str] = []

    def names(self) -> list[str]:
        """Return the registry keys in discovery order."""
        return list(self._explainers)

    def get(self, name: str) -> Any:
        """Return the explainer registered as ``name``.

        Raises
        ------
        UsageError
            Naming the known methods, if ``name`` is unknown.
        """
        try:
            return self._explainers[name]
        except KeyError:
            raise UsageError(
                f"unknown method {name!r}", fix=f"use one of {', '.join(self.names())}"
            ) from None

    def origin(self, name: str) -> str:
        """Return where an explainer came from (module, entry point or file)."""
        return self._origins[name]

    def add(self, provided: Any, origin: str) -> None:
        """Register what one source provides, recording a one-line error for anything broken."""
        try:
            explainers = _explainers_in(provided)
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor may raise anything
            self.errors.append(_broken(origin, exc))
            return
        for explainer in explainers:
            problem = _contract_problem(explainer)
            if problem:
                self.errors.append(f"plugin {origin}: {problem}")
            elif explainer.name in self._explainers:
                self.errors.append(
                    f"plugin {origin}: method name {explainer.name!r} is already taken by "
                    f"{self._origins[explainer.name]}"
                )
            else:
                self._explainers[explainer.name] = explainer
                self._origins[explainer.name] = origin

    def load_builtins(self) -> None:
        """Register the explainers shipped in ``plugins/``."""
        for module in BUILTIN_MODULES:
            self._import_and_add(lambda m=module: importlib.import_module(m), module)

    def load_entry_points(self) -> None:
        """Register explainers of installed packages (group ``lucida.explainers``)."""
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._import_and_add(ep.load, f"entry point {ep.name} ({ep.value})")

    def load_folder(self, folder: Path) -> None:
        """Register explainers from every ``.py`` file directly inside ``folder``."""
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.py")):
            self._import_and_add(lambda p=path: _import_file(p), str(path))

    def _import_and_add(self, loader, origin: str) -> None:
        try:
            provided = loader()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            self.errors.append(_broken(origin, exc))
            return
        self.add(provided, origin)


def _import_file(path: Path) -> ModuleType:
    """Import a plugin file as its own module, without touching ``sys.path``."""
    module_name = f"lucida_user_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_registry(user_dirs: list[Path] | None = None) -> Registry:
    """Build a fresh registry from every source.

    Parameters
    ----------
    user_dirs : list of Path, optional
        User plugin folders; defaults to :func:`user_plugin_dirs`.
    """
    reg = Registry()
    reg.load_builtins()
    reg.load_entry_points()
    for folder in user_plugin_dirs() if user_dirs is None else user_dirs:
        reg.load_folder(folder)
    return reg


_lock = threading.Lock()
_registry: Registry | None = None


def registry(reload: bool = False) -> Registry:
    """Return the process-wide registry, building it on first use (or again with ``reload``)."""
    global _registry
    with _lock:
        if _registry is None or reload:
            _registry = load_registry()
        return _registry
