"""docs/params.md: every key of params.yaml with its default, what its validator allows and what
params.yaml's own comments say about it.

What a key allows is asked of the validators themselves: params.yaml is parsed again with that one
key set to values it must refuse, and the message a user with a typo would see becomes the table's
cell. So the page changes whenever a validator or params.yaml does, and a test fails until it is
regenerated.
"""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from nnstudy.core import params as core
from nnstudy.core.errors import ParamError

# What validates the whole of params.yaml (the transfer study's section included): the reference
# asks it about each key.
validate = core.parse
# Mappings listed entry by entry, not key by key: their keys are names the user chooses.
NAMED = ("variants", "tune.spaces", "transfer.arms", "stats.questions", "transfer.min_seeds")
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?P<rest>.*)$")


class _Refused:
    """A value no check accepts; messages show it as `?`."""

    def __repr__(self) -> str:
        return "?"


REFUSED = _Refused()


@dataclass
class Comments:
    """params.yaml's comments: the page's opening, each key's own, and each group's opening."""
    intro: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)   # "---" blocks, by the key that follows them


def _comment(line: str) -> str:
    """The comment of a line, outside quotes ('' if none)."""
    quote = None
    for i, char in enumerate(line):
        if char in "'\"":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None and (i == 0 or line[i - 1] == " "):
            return line[i + 1:].strip()
    return ""


def _lines(text: str) -> list[tuple[str, int, str, str]]:
    """params.yaml as (kind, indent, key path or comment text, inline comment): kind is key,
    comment or blank."""
    items: list[tuple[str, int, str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            items.append(("blank", 0, "", ""))
        elif stripped.startswith("#"):
            # "# --- text" opens a group of keys (kind "group"); "# text" is a plain comment.
            body = stripped.lstrip("#").strip()
            items.append(("group" if body.startswith("---") else "comment", indent, body.lstrip("-").strip(), ""))
        elif match := KEY_LINE.match(line):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            items.append(("key", indent, ".".join(key for _, key in stack), _comment(match["rest"])))
    return items


def comments(text: str) -> Comments:
    """Which comment belongs to which key: a block right above a key, at its indentation, is that
    key's; a block right under a key (or indented under it) goes on with that key's; a block with
    a blank line on both sides opens the group of the key after it (the file's first, the page)."""
    found = Comments()
    items = _lines(text)
    i = 0
    while i < len(items):
        kind, indent, body, inline = items[i]
        if kind == "key":
            if inline:
                found.keys[body] = " ".join(filter(None, [found.keys.get(body, ""), inline]))
            i += 1
            continue
        if kind == "blank":
            i += 1
            continue
        end = i
        while end < len(items) and items[end][0] in ("comment", "group"):
            end += 1
        block = " ".join(filter(None, (item[2] for item in items[i:end])))
        before = items[i - 1] if i else ("blank", 0, "", "")
        after = items[end] if end < len(items) else ("blank", 0, "", "")
        following = next((item[2] for item in items[end:] if item[0] == "key"), "")
        if not any(item[0] == "key" for item in items[:i]):
            found.intro = block
        elif kind == "group" and following:
            found.groups[following] = block
        elif after[0] == "key" and after[1] == indent:
            found.keys[after[2]] = block
        elif before[0] == "key":
            found.keys[before[2]] = " ".join(filter(None, [found.keys.get(before[2], ""), block]))
        elif following:
            found.groups[following] = block
        i = end
    return found


KeyPath = tuple[Any, ...]   # a key path: ("transfer", "min_seeds", 10)


def dotted(path: KeyPath) -> str:
    return ".".join(map(str, path))


def leaves(raw: dict, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every key path of params.yaml in file order: a mapping's own path, then its keys' (a
    mapping in NAMED: its entries, whose keys are names the user chose)."""
    found = []
    for key, value in raw.items():
        path = (*prefix, key)
        found.append(path)
        if isinstance(value, dict):
            found += [(*path, name) for name in value] if dotted(path) in NAMED else leaves(value, path)
    return found


def _set(raw: dict, path: KeyPath, value: Any) -> dict:
    changed = copy.deepcopy(raw)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def refusal(raw: dict, path: KeyPath, value: Any) -> str | None:
    """What the validators say to params.yaml with `path` set to `value`: their message about this
    key (None when it passes, or when what fails is another key)."""
    try:
        validate(_set(raw, path, value))
    except ParamError as error:
        message = str(error)
        return message if message.startswith(dotted(path)) else None
    return None


def clean(message: str, path: str) -> str:
    """`sweeps.depth[0]: must be a number, got str 'x'` -> `a number`."""
    message = re.sub(rf"^{re.escape(path)}(\[0\])*: ", "", message)
    message = message.split(", got ")[0]
    message = re.sub(r"^'?(\?|no-such-value)'? is not ", "", message)
    message = re.sub(r" \(did you mean .*?\)", "", message)
    return message.removeprefix("must be ").removeprefix("must ")


def allowed(ask: Callable[[Any], str | None], path: str, depth: int = 0) -> str:
    """What a key allows, in its validator's words; `ask(value)` is the message for `value`."""
    first = ask(REFUSED)
    if first is None:
        return ""
    said = clean(first, path)
    if "mapping of keys to values" in said:
        return "a mapping"
    if (shortest := re.match(r"a list of at least (\d+)", said)) and depth < 3:
        # As many values as the list needs at least, all the same: the first one is refused.
        items = allowed(lambda value: ask([value] * max(1, int(shortest[1]))), path, depth + 1)
        said = f"a list ({'may be empty' if ask([]) is None else f'at least {shortest[1]}'}) of: {items}"
    elif said == "a finite number":
        bounds = [clean(m, path) for m in (ask(-1e300), ask(1e300)) if m]
        said = " ".join(["a number", ", ".join(b for b in bounds if re.match(r"[<>]=? ", b))]).strip()
    elif said == "a non-empty string" and (named := ask("no-such-value")):
        said = clean(named, path)  # a name checked against others: which ones
    if ask("no-such-value") is not None:  # a check that takes any text has no special words
        specials = [f"`{word}`" for word in ("all", "full")
                    if ask(word) is None and not re.search(rf"\b{word}\b", said)]
        said = ", or ".join([*specials, said]) if said.startswith("a list") else " or ".join([said, *specials])
    return said


def _cell(text: str) -> str:
    """Table-safe text: params.yaml's comments write alternatives as `a | b`."""
    return text.replace(" | ", " / ").replace("|", "/")


def _default(value: Any) -> str:
    if isinstance(value, dict | list):
        return "`" + yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip() + "`"
    return "`" + yaml.safe_dump(value, default_style=None).removesuffix("\n...\n").strip() + "`"


def _value(raw: dict, path: KeyPath) -> Any:
    node: Any = raw
    for key in path:
        node = node[key]
    return node


def _group(raw: dict, path: KeyPath) -> str:
    """A mapping at the top is its own section; the top's plain keys are the base network's or not."""
    if len(path) > 1 or isinstance(raw[path[0]], dict):
        return path[0]
    return "base" if path[0] in core.MODEL_SCHEMA else "top"


TITLES = {"top": "Top level", "base": "The base network"}


def render(params_text: str) -> str:
    """The reference page for this params.yaml (its text: the comments are read from it)."""
    raw = yaml.safe_load(params_text)
    notes = comments(params_text)
    groups: dict[str, list[KeyPath]] = {}
    for path in leaves(raw):
        groups.setdefault(_group(raw, path), []).append(path)
    out = ["# params.yaml reference", "",
           "<!-- Generated by `python -m nnstudy.docs` from params.yaml and its validators "
           "(nnstudy/core/params.py, nnstudy/transfer/params.py); do not edit. -->", "",
           "Every key of `params.yaml`: its default, what the validators allow (in their own words: "
           "each cell is the message a wrong value gets) and what `params.yaml`'s comments say. "
           "Every value is checked before any work starts; a typo stops the run at once with one line "
           "naming the key. Set a key for one experiment with `dvc exp run -S key=value` "
           "(`-S +key=value` for a key that `params.yaml` does not have yet).", "",
           f"> {notes.intro}", ""]
    for group, paths in groups.items():
        out += [f"## {TITLES.get(group, f'`{group}`')}", ""]
        opening = [notes.groups.get(dotted(paths[0]), "")]
        if paths[0] == (group,):  # the mapping's own comment opens its section
            opening.append(notes.keys.get(group, ""))
            paths = paths[1:]
        out += [text + "\n" for text in opening if text]
        # A mapping whose keys have rows of their own needs none (its entries in NAMED do).
        rows = [path for path in paths if not isinstance(_value(raw, path), dict)
                or dotted(path) in NAMED or dotted(path[:-1]) in NAMED]
        if not rows:
            continue
        out += ["| key | default | allowed | what it does |", "|---|---|---|---|"]
        for path in rows:
            what = allowed(lambda value, path=path: refusal(raw, path, value), dotted(path))
            default = "the entries below" if dotted(path) in NAMED else _default(_value(raw, path))
            out.append(f"| `{dotted(path)}` | {default} | {_cell(what)} | "
                       f"{_cell(notes.keys.get(dotted(path), ''))} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
