"""The package's layout: each part imports only the parts below it, no import circle, argparse only in cli/.

Read from the source (every import, those inside functions too), so a new module is checked as
soon as it exists.
"""
import ast
import os
import unittest

from helpers import REPO

PACKAGE = os.path.join(REPO, "gpt1_tf")
# the parts, bottom up; a module may import its own part and those before it
PARTS = ("", "network", "data", "weights", "lm", "train", "models", "cli")
TOP = {"export": "cli"}  # gpt1_tf/export.py: `python -m gpt1_tf.export`, a program's name


def modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def imports_of(path, names):
    """The package modules that the module at `path` imports (`from gpt1_tf.x import y`: gpt1_tf.x.y if a module)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gpt1_tf")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpt1_tf"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in names else node.module)
    return found - {"gpt1_tf"}


FRONT = "models"  # gpt1_tf/__init__.py: `gpt1_tf.GPT1Backbone`, ... (imported lazily); nothing imports it back


def part_of(name):
    rest = name.split(".")[1:]
    if len(rest) == 1:
        return TOP.get(rest[0], "") if rest[0] not in PARTS else rest[0]
    return rest[0] if rest else FRONT


class LayoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.modules = modules()
        cls.graph = {name: imports_of(path, cls.modules) for name, path in cls.modules.items()}

    def test_every_module_belongs_to_a_part(self):
        for name in self.modules:
            self.assertIn(part_of(name), PARTS, name)

    def test_no_part_imports_one_above_it(self):
        upward = [f"{a} -> {b}" for a, targets in self.graph.items() for b in targets
                  if PARTS.index(part_of(b)) > PARTS.index(part_of(a))]
        self.assertEqual(upward, [])

    def test_no_import_circle(self):
        state = {}

        def visit(name, path):
            state[name] = "open"
            for target in sorted(self.graph.get(name, ())):
                if state.get(target) == "open":
                    self.fail("import circle: " + " -> ".join(path + [target]))
                if target not in state:
                    visit(target, path + [target])
            state[name] = "done"

        for name in sorted(self.graph):
            if name not in state:
                visit(name, [name])

    def test_argparse_only_in_the_programs(self):
        """Below cli/: no module imports argparse, and no function takes a namespace called `args`."""
        found = []
        for name, path in self.modules.items():
            if part_of(name) == "cli":
                continue
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                    found.append(f"{name} imports argparse")
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if "args" in [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]:
                        found.append(f"{name}.{node.name} takes args")
        self.assertEqual(found, [])


if __name__ == "__main__":
    unittest.main()
