"""The command line: plugin subcommands, listings, errors without tracebacks."""

import json
import types

import pytest

import sedkit
from sedkit import cli
from sedkit import plugins as plugins_module
from sedkit.components import Command
from sedkit.plugins import Plugins


class Hello(Command):
    help = "say hello"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("name")

    @classmethod
    def run(cls, args):
        print(f"hello {args.name}")
        return 0


def _command_plugin(command_name):
    module = types.ModuleType("hello_pkg")

    @sedkit.hookimpl
    def sedkit_register_commands(register):
        register(command_name, Hello)

    sedkit_register_commands.__module__ = "hello_pkg"
    module.sedkit_register_commands = sedkit_register_commands
    return module


def test_plugin_adds_a_subcommand(monkeypatch, capsys):
    plugins = Plugins.load(builtins_only=True, extra=[("hello", _command_plugin("hello"))])
    monkeypatch.setattr(plugins_module, "_loaded", plugins)
    assert cli.main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


def test_subcommand_clashing_with_builtin_names_both(monkeypatch, capsys):
    plugins = Plugins.load(builtins_only=True, extra=[("hello", _command_plugin("run"))])
    monkeypatch.setattr(plugins_module, "_loaded", plugins)
    assert cli.main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert "command 'run' from plugin 'hello' from local" in err and "built-in" in err


def test_plugins_listing(monkeypatch, capsys):
    monkeypatch.setattr(plugins_module, "_loaded", Plugins.load(builtins_only=True))
    assert cli.main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["crnn"]["components"] == {"model": ["crnn"]}
    assert listed["tri_training"]["distribution"] == "sedkit"
    assert cli.main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "crnn  [loaded]  sedkit" in text and "model: crnn" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no/such/recipe.yaml"], "recipe file not found"),
        (["run", "--resume", "no/such/run"], "not a sedkit run directory"),
        (["synth", "crnn", "out"], "unknown data 'crnn'"),
        (["predict", "no/such/run", "x.wav"], "not a sedkit run directory"),
    ],
)
def test_user_errors_exit_2_without_traceback(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(plugins_module, "_loaded", Plugins.load(builtins_only=True))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
