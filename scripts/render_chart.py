"""Render helm/chatrelay without helm: the part of Go's text/template and of Sprig that
the chart uses, with helm's conventions (`.Values`, `.Release`, `.Chart`, `.Files`,
`define`/`include`, `toYaml`).

No helm binary can be installed from the package registries this project reaches, and
the chart must still be checked in CI: tests/unit/test_chart.py renders it with this
and validates every manifest. Where helm is at hand, `helm lint` and `helm template`
are the real thing; an action this renderer does not know fails loudly, never silently.

    python scripts/render_chart.py [helm/chatrelay] [--set-json '{"relay": {"shards": 8}}']
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from typing import Any

import yaml


class TemplateError(Exception):
    pass


class Fail(TemplateError):
    """The chart's own `fail`: a message for the person installing it."""


# ---- parsing ------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokens(text: str):
    """("text", s) and ("action", s) with helm's whitespace trimming applied."""
    out: list[list] = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(["text", chunk])
        body = m.group(2).strip()
        out.append(["action", body, bool(m.group(3))])
        pos = m.end()
    out.append(["text", text[pos:]])
    for i, tok in enumerate(out):
        if tok[0] == "action" and tok[2] and i + 1 < len(out):
            out[i + 1][1] = out[i + 1][1].lstrip()
    return [(t[0], t[1]) for t in out if not (t[0] == "text" and t[1] == "")]


_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)|\||:=|=|[^\s()|]+')


def _split(expr: str) -> list[str]:
    return _WORD.findall(expr)


class Node:
    def __init__(self, kind: str, arg: str = "", body=None, orelse=None) -> None:
        self.kind, self.arg, self.body, self.orelse = kind, arg, body or [], orelse or []


def _parse(tokens, i=0, stop=("end",)):
    """Nodes up to a closing action; returns (nodes, index after it, the closing action)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(Node("text", value))
            continue
        if value.startswith("/*"):
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word):].strip()
        if word in ("end", "else"):
            if word not in stop and "else" not in stop:
                raise TemplateError(f"unexpected {{{{ {value} }}}}")
            return nodes, i, value
        if word in ("if", "with", "range", "define"):
            body, i, closing = _parse(tokens, i, ("end", "else"))
            node = Node(word, rest, body)
            tail = node
            while closing.startswith("else"):
                more = closing[4:].strip()
                if more.startswith("if ") and word == "if":
                    inner = Node("if", more[3:].strip())
                    inner.body, i, closing = _parse(tokens, i, ("end", "else"))
                    tail.orelse = [inner]
                    tail = inner
                else:
                    tail.orelse, i, closing = _parse(tokens, i, ("end",))
            nodes.append(node)
            continue
        nodes.append(Node("action", value))
    return nodes, i, ""


# ---- evaluation ---------------------------------------------------------------------------


class Files:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def Get(self, name: str) -> str:  # noqa: N802 (helm's name)
        path = self.root / name
        return path.read_text() if path.is_file() else ""


def _truthy(value) -> bool:
    return bool(value) and value != 0


def _to_yaml(value) -> str:
    if value in (None, {}, []):
        return "{}" if isinstance(value, dict) else ("[]" if isinstance(value, list) else "null")
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(n, text) -> str:
    pad = " " * int(n)
    return "\n".join(pad + line for line in str(text).split("\n"))


def _go_str(value) -> str:
    if value is None:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _printf(fmt, *args) -> str:
    return re.sub(r"%[sdv]", "{}", fmt).format(*(_go_str(a) for a in args))


class Renderer:
    def __init__(self, chart: pathlib.Path, values: dict, release: str = "relay", namespace: str = "default") -> None:
        self.chart_dir = chart
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        self.root = {
            "Values": values,
            "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
            "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion", "")},
            "Files": Files(chart),
        }
        self.defines: dict[str, list[Node]] = {}
        self.funcs = {
            "include": lambda name, dot: self._include(name, dot),
            "toYaml": _to_yaml, "nindent": lambda n, t: "\n" + _indent(n, t), "indent": _indent,
            "quote": lambda v: json.dumps(_go_str(v)), "printf": _printf,
            "trunc": lambda n, s: str(s)[: int(n)], "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
            "contains": lambda sub, s: sub in s, "int": lambda v: int(v), "not": lambda v: not _truthy(v),
            "and": lambda *vs: next((v for v in vs if not _truthy(v)), vs[-1]),
            "or": lambda *vs: next((v for v in vs if _truthy(v)), vs[-1]),
            "eq": lambda a, *bs: any(a == b for b in bs), "first": lambda v: v[0] if v else None,
            "until": lambda n: list(range(int(n))), "default": lambda d, v=None: v if _truthy(v) else d,
            "trim": lambda s: str(s).strip(), "fail": self._fail, "required": self._required, "toJson": lambda v: json.dumps(v, sort_keys=True),
        }

    def _fail(self, message):
        raise Fail(message)

    def _required(self, message, value):
        if value in (None, ""):
            raise Fail(message)
        return value

    def _include(self, name, dot) -> str:
        if name not in self.defines:
            raise TemplateError(f"no template {name!r}")
        return self._run(self.defines[name], dot, {"$": self.root})

    # expressions

    def _value(self, word: str, dot, scope):
        if word.startswith('"'):
            return json.loads(word)
        if word.startswith("`"):
            return word[1:-1]
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if re.fullmatch(r"-?\d+\.\d*", word):
            return float(word)
        if word in ("true", "false"):
            return word == "true"
        if word == "nil":
            return None
        if word == ".":
            return dot
        if word.startswith("$"):
            name, _, path = word.partition(".")
            if name not in scope:
                raise TemplateError(f"undefined variable {name}")
            return self._path(scope[name], path)
        if word.startswith("."):
            return self._path(dot, word[1:])
        raise TemplateError(f"cannot evaluate {word!r}")

    @staticmethod
    def _path(value, path: str):
        for part in filter(None, path.split(".")):
            if isinstance(value, dict):
                value = value.get(part)
            elif value is None:
                return None
            else:
                value = getattr(value, part)
        return value

    def _command(self, words: list, dot, scope, piped=None, has_piped=False):
        args = []
        head, rest = words[0], words[1:]
        i = 0
        parsed = []
        while i < len(rest):
            if rest[i] == "(":
                depth, j = 1, i + 1
                while depth:
                    depth += {"(": 1, ")": -1}.get(rest[j], 0)
                    j += 1
                parsed.append(("pipe", rest[i + 1:j - 1]))
                i = j
            else:
                parsed.append(("word", rest[i]))
                i += 1
        for kind, item in parsed:
            args.append(self._pipeline(item, dot, scope) if kind == "pipe" else self._value(item, dot, scope))
        if has_piped:
            args.append(piped)
        if isinstance(head, list):  # a parenthesized start
            return self._pipeline(head, dot, scope)
        if head in self.funcs:
            return self.funcs[head](*args)
        value = self._value(head, dot, scope)
        if callable(value):
            return value(*args)
        if args:
            raise TemplateError(f"{head} is not a function")
        return value

    def _pipeline(self, words: list, dot, scope):
        if len(words) >= 2 and words[0].startswith("$") and words[1] in (":=", "="):
            scope[words[0]] = self._pipeline(words[2:], dot, scope)
            return ""
        stages, current, depth = [], [], 0
        for w in words:
            depth += {"(": 1, ")": -1}.get(w, 0)
            if w == "|" and depth == 0:
                stages.append(current)
                current = []
            else:
                current.append(w)
        stages.append(current)
        value, has = None, False
        for stage in stages:
            if stage and stage[0] == "(" and stage[-1] == ")" and len(stage) > 2 and not has:
                value = self._pipeline(stage[1:-1], dot, scope)
            else:
                value = self._command(stage, dot, scope, value, has)
            has = True
        return value

    # statements

    def _run(self, nodes, dot, scope) -> str:
        out = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.arg)
            elif node.kind == "define":
                self.defines[json.loads(node.arg)] = node.body
            elif node.kind == "action":
                value = self._pipeline(_split(node.arg), dot, scope)
                if node.arg.split()[0].startswith("$") and ":=" in node.arg.split()[:2]:
                    continue
                out.append(_go_str(value))
            elif node.kind == "if":
                branch = node.body if _truthy(self._pipeline(_split(node.arg), dot, scope)) else node.orelse
                out.append(self._run(branch, dot, scope))
            elif node.kind == "with":
                value = self._pipeline(_split(node.arg), dot, scope)
                out.append(self._run(node.body, value, dict(scope)) if _truthy(value) else self._run(node.orelse, dot, scope))
            elif node.kind == "range":
                words = _split(node.arg)
                var = None
                if len(words) > 2 and words[1] == ":=":
                    var, words = words[0], words[2:]
                items = self._pipeline(words, dot, scope) or []
                if isinstance(items, dict):
                    items = [items[k] for k in sorted(items)]
                for item in items:
                    inner = dict(scope)
                    if var:
                        inner[var] = item
                    out.append(self._run(node.body, item, inner))
            else:
                raise TemplateError(f"unknown node {node.kind}")
        return "".join(out)

    def render(self) -> dict[str, str]:
        """{template path: rendered text}, helpers first (their defines), as helm does."""
        templates = sorted((self.chart_dir / "templates").iterdir(), key=lambda p: (not p.name.startswith("_"), p.name))
        parsed = {}
        for path in templates:
            nodes, _, closing = _parse(_tokens(path.read_text()))
            if closing:
                raise TemplateError(f"{path.name}: unexpected {{{{ {closing} }}}}")
            parsed[path.name] = nodes
        for name, nodes in parsed.items():  # every define is known before anything renders
            for node in nodes:
                if node.kind == "define":
                    self.defines[json.loads(node.arg)] = node.body
        # helm trims each rendered template before splitting it into manifests
        return {
            f"templates/{name}": self._run(nodes, self.root, {"$": self.root}).strip() + "\n"
            for name, nodes in parsed.items() if not name.startswith("_")
        }


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render_text(chart: pathlib.Path, overrides: dict | None = None) -> dict[str, str]:
    """{template path: text} of the chart with its values.yaml and `overrides`."""
    values = merge(yaml.safe_load((chart / "values.yaml").read_text()), overrides or {})
    return Renderer(chart, values).render()


def render(chart: pathlib.Path, overrides: dict | None = None) -> list[dict]:
    """The manifests of the chart with its values.yaml and `overrides`, as dicts."""
    manifests = []
    for text in render_text(chart, overrides).values():
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(doc)
    return manifests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", nargs="?", default=str(pathlib.Path(__file__).parent.parent / "helm" / "chatrelay"))
    parser.add_argument("--set-json", default="{}", help="values to merge over values.yaml, as JSON")
    args = parser.parse_args()
    try:
        texts = render_text(pathlib.Path(args.chart), json.loads(args.set_json))
    except (TemplateError, json.JSONDecodeError) as exc:
        print(f"render_chart: {exc}", file=sys.stderr)
        return 2
    for name, text in texts.items():
        if text.strip():
            sys.stdout.write(f"---\n# Source: chatrelay/{name}\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
