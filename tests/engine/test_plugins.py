"""Plugin loading: one by one, failures named and skipped, clashes naming both sources."""

import types
from dataclasses import dataclass

import pytest

import sedkit
from sedkit.components import Model
from sedkit.errors import UserError
from sedkit.plugins import PluginHookError, Plugins
from sedkit.recipe import load_recipe


@dataclass
class _P:
    width: int = 1


class _ModelA(Model):
    Params = _P


class _ModelB(Model):
    Params = _P


def _module(name: str, **functions) -> types.ModuleType:
    module = types.ModuleType(name)
    for fname, fn in functions.items():
        fn.__module__ = name
        setattr(module, fname, fn)
    return module


def _registers(model_name, cls):
    @sedkit.hookimpl
    def sedkit_register_models(register):
        register(model_name, cls)

    return sedkit_register_models


def test_builtins_are_entry_points_of_the_sedkit_distribution():
    plugins = Plugins.load(builtins_only=True)
    loaded = {p.name: p for p in plugins.plugins if p.status == "loaded"}
    assert {"desed", "crnn", "grl", "tri_training", "mean_teacher"} <= set(loaded)
    assert all(p.distribution == "sedkit" for p in loaded.values())
    assert loaded["crnn"].components == {"model": ["crnn"]}
    assert "sedkit_register_models" in loaded["crnn"].hooks
    assert {"crnn"} <= set(plugins.names("model"))
    assert not plugins.failures(), [p.describe_failure() for p in plugins.failures()]


def test_name_registered_twice_names_both(toy_recipe):
    first = _module("first_pkg", sedkit_register_models=_registers("dup", _ModelA))
    second = _module("second_pkg", sedkit_register_models=_registers("dup", _ModelB))
    plugins = Plugins.load(builtins_only=True, extra=[("first", first), ("second", second)])
    failure = {p.name: p for p in plugins.plugins}["second"]
    assert failure.status == "failed"
    assert "model 'dup' is registered twice" in failure.error
    assert "plugin 'first'" in failure.error and "plugin 'second'" in failure.error
    with pytest.raises(UserError, match="registered twice"):
        plugins.component("model", "dup", key="model.name")


def test_hook_with_unknown_name_is_an_error():
    @sedkit.hookimpl
    def sedkit_register_modles(register):  # typo
        register("x", _ModelA)

    plugins = Plugins.load(
        builtins_only=True,
        extra=[("typo", _module("typo_pkg", sedkit_register_modles=sedkit_register_modles))],
    )
    info = {p.name: p for p in plugins.plugins}["typo"]
    assert info.status == "failed"
    assert "sedkit_register_modles" in info.error


def test_undecorated_hook_function_is_an_error():
    def sedkit_register_models(register):
        register("x", _ModelA)

    plugins = Plugins.load(
        builtins_only=True,
        extra=[("plain", _module("plain_pkg", sedkit_register_models=sedkit_register_models))],
    )
    info = {p.name: p for p in plugins.plugins}["plain"]
    assert info.status == "failed" and "not decorated" in info.error
    assert "x" not in plugins.names("model")


def test_failing_registration_is_named_and_skipped():
    @sedkit.hookimpl
    def sedkit_register_models(register):
        raise RuntimeError("boom")

    plugins = Plugins.load(
        builtins_only=True,
        extra=[("bad", _module("bad_pkg", sedkit_register_models=sedkit_register_models))],
    )
    info = {p.name: p for p in plugins.plugins}["bad"]
    assert info.status == "failed" and "RuntimeError: boom" in info.error
    assert "crnn" in plugins.names("model")  # the others still load


def test_registered_class_must_have_params_dataclass():
    class NoParams(Model):
        Params = dict

    plugins = Plugins.load(
        builtins_only=True,
        extra=[("np", _module("np_pkg", sedkit_register_models=_registers("np", NoParams)))],
    )
    assert "Params must be a dataclass" in {p.name: p for p in plugins.plugins}["np"].error


def test_disabled_plugins(monkeypatch):
    monkeypatch.setenv("SEDKIT_DISABLE_PLUGINS", "grl, mean_teacher")
    plugins = Plugins.load()
    status = {p.name: p.status for p in plugins.plugins}
    assert status["grl"] == "disabled" and status["mean_teacher"] == "disabled"
    assert "grl" not in plugins.names("domain_adapter")


def test_recipe_needing_a_failed_plugin_stops_with_its_message(tmp_path, toy_recipe):
    @sedkit.hookimpl
    def sedkit_register_models(register):
        raise ImportError("libfoo.so: cannot open shared object file")

    import toy_plugin

    plugins = Plugins.load(
        builtins_only=True,
        extra=[
            ("toy", toy_plugin),
            ("fancy", _module("fancy_pkg", sedkit_register_models=sedkit_register_models)),
        ],
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(toy_recipe().read_text().replace("name: toy_model", "name: fancy"))
    with pytest.raises(UserError) as info:
        load_recipe(recipe, plugins=plugins)
    assert "model.name: unknown model 'fancy': plugin 'fancy'" in str(info.value)
    assert "libfoo.so" in str(info.value)


def test_lifecycle_hook_failure_names_the_plugin(tmp_path):
    @sedkit.hookimpl
    def sedkit_epoch_end(run_dir, epoch, metrics):
        raise ValueError("disk full")

    plugins = Plugins.load(
        builtins_only=True,
        extra=[("logger", _module("logger_pkg", sedkit_epoch_end=sedkit_epoch_end))],
    )
    with pytest.raises(PluginHookError, match="plugin 'logger' failed in sedkit_epoch_end"):
        plugins.epoch_end(run_dir=tmp_path, epoch=1, metrics={})


def _epoch_end_plugin(name: str, calls: list[str], *, fail: bool = False):
    @sedkit.hookimpl
    def sedkit_epoch_end(run_dir, epoch, metrics):
        calls.append(name)
        if fail:
            raise ValueError("disk full")

    return (name, _module(f"{name}_pkg", sedkit_epoch_end=sedkit_epoch_end))


def test_lifecycle_hooks_go_through_pluggy_with_wrappers_and_tracing(tmp_path, monkeypatch, capsys):
    """Hooks are called through ``pm.hook``: pluggy's order (last registered first), hook
    wrappers around the others, and SEDKIT_TRACE_HOOKS=1 lines in the order of the calls."""
    monkeypatch.setenv("SEDKIT_TRACE_HOOKS", "1")
    calls: list[str] = []

    @sedkit.hookimpl(wrapper=True)
    def sedkit_epoch_end(run_dir, epoch, metrics):
        calls.append("wrapper before")
        result = yield
        calls.append("wrapper after")
        return result

    wrapper = ("wrapper", _module("wrapper_pkg", sedkit_epoch_end=sedkit_epoch_end))
    extra = [_epoch_end_plugin("first", calls), _epoch_end_plugin("second", calls), wrapper]
    plugins = Plugins.load(builtins_only=True, disabled={"reporting"}, extra=extra)
    capsys.readouterr()
    plugins.epoch_end(run_dir=tmp_path, epoch=1, metrics={})
    assert calls == ["wrapper before", "second", "first", "wrapper after"]
    traced = [line for line in capsys.readouterr().err.splitlines() if "sedkit_epoch_end" in line]
    assert traced == [
        f"[sedkit hooks] sedkit_epoch_end -> {name}" for name in ("wrapper", "second", "first")
    ]


def test_hook_failure_names_the_raising_plugin_among_several(tmp_path):
    calls: list[str] = []

    @sedkit.hookimpl
    def sedkit_epoch_end(run_dir, epoch, metrics):
        calls.append("broken")
        raise ValueError("disk full")

    broken = ("broken", _module("broken_pkg", sedkit_epoch_end=sedkit_epoch_end))
    extra = [_epoch_end_plugin("first", calls), broken, _epoch_end_plugin("last", calls)]
    plugins = Plugins.load(builtins_only=True, extra=extra)
    with pytest.raises(PluginHookError, match="plugin 'broken' failed in sedkit_epoch_end: Value"):
        plugins.epoch_end(run_dir=tmp_path, epoch=1, metrics={})
    assert calls == ["last", "broken"]  # pluggy stops at the first exception
