"""The public surface is exactly what ``__all__`` declares.

Fails when a public name is importable but undeclared, when a declared name does not
exist, or when a public module has no ``__all__``.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing

import pytest

import crosswire


def _public_modules() -> list[str]:
    names = ["crosswire"]
    for info in pkgutil.walk_packages(crosswire.__path__, "crosswire."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _private_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(crosswire.__path__, "crosswire.")
        if any(part.startswith("_") for part in info.name.split("."))
    )


def test_the_package_declares_all() -> None:
    assert isinstance(crosswire.__all__, (list, tuple))
    assert len(set(crosswire.__all__)) == len(crosswire.__all__), "duplicate names in __all__"


@pytest.mark.parametrize("name", sorted(crosswire.__all__))
def test_every_declared_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from crosswire import {name}", namespace)
    assert namespace[name] is getattr(crosswire, name)


def _undeclared(module: types.ModuleType, *, package_level: bool) -> list[str]:
    declared = set(getattr(module, "__all__", ()))
    undeclared = []
    for name in dir(module):
        if name.startswith("_") or name in declared:
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            continue  # submodules are reached by their own import path
        if isinstance(value, typing.TypeVar):
            continue  # type variables are annotations, not API
        origin = getattr(value, "__module__", None)
        if package_level or (isinstance(origin, str) and origin.startswith(module.__name__)):
            # in the package namespace everything public counts; in a module, what it defines
            undeclared.append(name)
    return undeclared


@pytest.mark.parametrize("module_name", _public_modules())
def test_no_undeclared_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"public module {module_name} has no __all__"
    undeclared = _undeclared(module, package_level=module_name == "crosswire")
    assert not undeclared, f"{module_name} exposes names missing from __all__: {undeclared}"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ lists names that do not exist: {missing}"


@pytest.mark.parametrize("module_name", _private_modules())
def test_private_modules_all_is_accurate(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ lists names that do not exist: {missing}"


def test_the_undeclared_check_can_fail() -> None:
    fake = types.ModuleType("crosswire_fake")
    fake.__all__ = ["Declared"]  # type: ignore[attr-defined]
    fake.Declared = type("Declared", (), {"__module__": "crosswire_fake"})  # type: ignore[attr-defined]
    fake.Hidden = type("Hidden", (), {"__module__": "crosswire_fake"})  # type: ignore[attr-defined]
    assert _undeclared(fake, package_level=False) == ["Hidden"]
    assert _undeclared(fake, package_level=True) == ["Hidden"]
