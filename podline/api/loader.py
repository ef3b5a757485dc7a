"""Load multi-document YAML from files, directories or stdin into validated models.

YAML is parsed with the safe loader and limited before anything is built: a source may hold at most
`MAX_SOURCE_BYTES`, and a document may expand (counting every alias as a full copy) to at most
`MAX_NODES` nodes, so alias bombs are refused without being expanded.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from podline.api.base import Resource, warnings_var
from podline.api.checks import check_object
from podline.api.errors import InvalidObject, ManifestError, format_path
from podline.api.kinds import MODELS
from podline.api.names import CLUSTER_SCOPED

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: ~10x faster
MAX_SOURCE_BYTES = 8 * 1024 * 1024
MAX_OBJECT_BYTES = 3 * 512 * 1024  # Kubernetes' request limit (etcd's 1.5 MiB)
MAX_NODES = 100_000
MAX_DEPTH = 64
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Loaded:
    """One validated object and where it came from."""

    obj: Resource
    source: str
    document: int
    warnings: list[str] = field(default_factory=list)
    where: str = ""  # an item of a `kind: List`: its place in it (`items[1]`), the prefix of its field paths
    raw: dict[str, Any] | None = None  # the document as written (with fields podline ignores), for Kubernetes

    def describe(self) -> str:
        meta = self.obj.metadata  # before apply names it, an object with only a generateName shows that
        return f"{self.source}: document {self.document} ({self.obj.kind}/{meta.name or meta.generate_name})"


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a cycle counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo, depth + 1) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
            if size > MAX_NODES:
                break
    memo[key] = size
    return size


DUPLICATE_KEY = "duplicate key (refused, as kubectl --validate=strict does)"
UNENCODABLE = "not valid Unicode: a lone surrogate (\\ud800-\\udfff) cannot be written as UTF-8"


def _node_problem(node: yaml.Node, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(path, problem) of the first of what strict reading refuses, in one walk of the document: a mapping key
    given twice (YAML lets the last win; two `<<` merges too: one is silently lost), or a key or value holding a
    lone surrogate (a `"\\ud800"` escape: no valid Unicode, it cannot be written as UTF-8 anywhere, a file, an
    argv, a terminal, and would fail later with a traceback)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, yaml.ScalarNode):
        try:
            str(node.value).encode("utf-8")
        except UnicodeEncodeError:
            return path or "<document>", UNENCODABLE
        return None
    if isinstance(node, yaml.SequenceNode):
        children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        children = []
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            child = f"{path}.{name}" if path else name
            if isinstance(key, yaml.ScalarNode) and name in seen:
                return child, DUPLICATE_KEY
            seen.add(name)
            children += [(child, key), (child, value)]
    else:
        return None
    for at, child_node in children:
        found = _node_problem(child_node, at, depth + 1)
        if found:
            return found
    return None


def _document_at(text: str, index: int) -> int:
    """1-based number of the YAML document holding character `index` (counting `---` separators)."""
    before = text[:index]
    separators = sum(1 for line in before.splitlines() if line.startswith("---"))
    first_is_separator = text.lstrip().startswith("---")
    return max(1, separators + (0 if first_is_separator else 1))


def parse_documents(text: str, source: str) -> list[tuple[int, Any]]:
    """Return (1-based document number, data) for each non-empty YAML document.

    libyaml parses (fast, and without Python recursion on deep nesting); malformed YAML is parsed again
    by PyYAML's own loader, whose messages name the offending character or alias."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:  # a lone surrogate: the reader refuses it
        raise ManifestError(source, f"input is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    if SafeLoader is not yaml.SafeLoader:
        try:
            return _parse(text, source, SafeLoader, explain=False)
        except yaml.YAMLError:
            pass
    return _parse(text, source, yaml.SafeLoader, explain=True)


def _parse(text: str, source: str, loader_class: Any, explain: bool) -> list[tuple[int, Any]]:
    docs: list[tuple[int, Any]] = []
    number = 0
    loader: Any = None
    try:
        loader = loader_class(text)  # the reader rejects control characters already here
        while loader.check_node():
            number += 1
            node = loader.get_node()
            try:
                if _expanded_size(node, {}) > MAX_NODES:
                    raise ValueError(f"expands to more than {MAX_NODES} nodes (alias bomb?)")
            except ValueError as exc:
                raise ManifestError(source, f"document too large: {exc}", document=number) from None
            refused = _node_problem(node)
            if refused:
                raise ManifestError(source, refused[1], refused[0], number)
            data = loader.construct_document(node)
            if data is not None:
                docs.append((number, data))
    except RecursionError:
        raise ManifestError(source, f"document too large: nesting deeper than {MAX_DEPTH} levels",
                            document=number or 1) from None
    except yaml.reader.ReaderError as exc:  # raised for the whole stream, before any document is parsed
        if not explain:
            raise
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ManifestError(source, f"malformed YAML: {exc.reason} (#x{code:04x}) at line {line}, column "
                            f"{column}", document=_document_at(text, exc.position)) from None
    except yaml.YAMLError as exc:
        if not explain:
            raise
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(source, f"malformed YAML: {problem}{where}", document=number or 1) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _problem(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def build_object(data: Any, source: str, number: int, namespace: str | None = None) -> Loaded:
    """Validate one document's data; raise ManifestError naming document, field path and problem.
    `namespace` (a `-n` the user gave) is the namespace of an object that names none, and an object that
    names another one is refused, as kubectl refuses it."""
    def fail(path: str, problem: str, kind: str | None = None, name: str | None = None) -> ManifestError:
        return ManifestError(source, problem, path, number, kind, name)

    if not isinstance(data, dict):
        raise fail("", f"expected a mapping (an object), got {type(data).__name__}")
    kind, api_version = data.get("kind"), data.get("apiVersion")
    meta = data.get("metadata")
    name = next((meta[k] for k in ("name", "generateName") if isinstance(meta, dict) and isinstance(meta.get(k), str)),
                None)
    kind_s = kind if isinstance(kind, str) else None
    if namespace is not None and kind_s not in CLUSTER_SCOPED and isinstance(meta, dict):
        given = meta.get("namespace")
        if given is None or given == "":  # "" is unset, as the API server reads it (Helm writes it)
            data = {**data, "metadata": {**meta, "namespace": namespace}}
        elif given != namespace:
            raise fail("metadata.namespace", f"the namespace of the object ({given!r}) does not match the "
                       f"namespace given with -n ({namespace!r})", kind_s, name)
    for key, value in (("apiVersion", api_version), ("kind", kind)):
        if value is not None and not isinstance(value, str):
            raise fail(key, f"must be a string, got {type(value).__name__}", kind_s, name)
    if not isinstance(api_version, str) or not api_version:
        raise fail("apiVersion", "required field is missing", kind_s, name)
    if not kind_s:
        raise fail("kind", "required field is missing", None, name)
    model = MODELS.get((api_version, kind_s))
    if model is None:
        known = sorted({k for _, k in MODELS})
        if kind_s in known:
            versions = [v for v, k in MODELS if k == kind_s]
            raise fail("apiVersion", f"unsupported apiVersion {api_version!r} for kind {kind_s} "
                       f"(use {', '.join(versions)})", kind_s, name)
        raise fail("kind", f"unknown kind {kind_s!r} (known: {', '.join(known)})", kind_s, name)
    warnings: list[str] = []
    token = warnings_var.set(warnings)
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(format_path(first["loc"]), _problem(first), kind_s, name) from None
    finally:
        warnings_var.reset(token)
    size = len(json.dumps(data, separators=(",", ":"), default=str))
    if size > MAX_OBJECT_BYTES:
        raise fail("", f"object is {size} bytes, above the {MAX_OBJECT_BYTES} Kubernetes stores", kind_s, name)
    token = warnings_var.set(warnings)  # the cross-field checks may warn too
    try:
        check_object(obj)
    except InvalidObject as exc:
        raise fail(exc.path, exc.problem, kind_s, name) from None
    finally:
        warnings_var.reset(token)
    return Loaded(obj, source, number, warnings)


LIST_FIELDS = ("apiVersion", "kind", "metadata", "items")


def _flatten_lists(docs: list[tuple[int, Any]], source: str) -> list[tuple[int, Any, str]]:
    """`kind: List` (as `kubectl get -o yaml` prints) contributes its items: (document, data, path of the item).
    The List itself is `v1` with `items` (and a `metadata` kubectl leaves empty), as kubectl reads it."""
    out: list[tuple[int, Any, str]] = []
    for number, data in docs:
        if isinstance(data, dict) and data.get("kind") == "List":
            _check_list(data, source, number)
            out.extend((number, item, f"items[{i}]") for i, item in enumerate(data["items"]))
        else:
            out.append((number, data, ""))
    return out


def _check_list(data: dict[Any, Any], source: str, number: int) -> None:
    def fail(path: str, problem: str) -> ManifestError:
        return ManifestError(source, problem, path, number, "List")

    unknown = next((key for key in data if key not in LIST_FIELDS), None)
    if unknown is not None:
        raise fail(str(unknown), "unknown field")
    if data.get("apiVersion") != "v1":
        given = data.get("apiVersion")
        raise fail("apiVersion", "required field is missing" if given is None else
                   f"unsupported apiVersion {given!r} for kind List (use v1)")
    if not isinstance(data.get("items"), list):
        raise fail("items", "required field is missing" if data.get("items") is None else
                   f"must be a list, got {type(data['items']).__name__}")
    if not isinstance(data.get("metadata", {}), dict):
        raise fail("metadata", f"must be a mapping, got {type(data['metadata']).__name__}")


def _build_item(data: Any, source: str, number: int, where: str, namespace: str | None) -> Loaded:
    """An object of the input; an item of a List names its place in it in any error's field path."""
    raw = copy.deepcopy(data) if isinstance(data, dict) else None
    try:
        loaded = build_object(data, source, number, namespace)
    except ManifestError as exc:
        if where:
            exc.path = f"{where}.{exc.path}" if exc.path else where
        raise
    loaded.where, loaded.raw = where, raw
    return loaded


def load_text(text: str, source: str, namespace: str | None = None) -> list[Loaded]:
    loaded = [_build_item(data, source, n, where, namespace)
              for n, data, where in _flatten_lists(parse_documents(text, source), source)]
    check_unique(loaded)
    return loaded


def check_unique(loaded: list[Loaded]) -> None:
    """Names are unique per kind and namespace across everything applied together (a generateName makes a
    new name at each apply, so objects with only a generateName never clash)."""
    seen: dict[tuple[str, str, str], Loaded] = {}
    for item in loaded:
        if item.obj.metadata.name is None:
            continue
        key = (item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name or "")
        if key in seen:
            first = seen[key]
            raise ManifestError(item.source, f"duplicate object: also defined in {first.describe()}"
                                + (f" at {first.where}" if first.where else ""),
                                f"{item.where}.metadata.name" if item.where else "metadata.name", item.document,
                                item.obj.kind, item.obj.metadata.name)
        seen[key] = item


def _read(path: Path, source: str) -> str:
    """A file's text, read to at most the limit and one byte more: a device (`/dev/zero`) or a pipe
    (`<(yes)`) has no meaningful size, so the size `stat` reports is never trusted."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ManifestError(source, f"cannot read: {exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ManifestError(source, f"file is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    return _decode(data, source)


def _decode(data: bytes, source: str) -> str:
    """Bytes as text (UTF-8, universal newlines, as `Path.read_text` reads them), or one `cannot read` error."""
    try:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()
    except UnicodeDecodeError as exc:
        raise ManifestError(source, f"cannot read: {exc}") from None


def _read_stdin(source: str = "<stdin>") -> str:
    """stdin's bytes, read and decoded as a file's are (its text layer would smuggle bad bytes through as
    surrogates, which only fail later with a traceback)."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is not None:
            data = stream.read(MAX_SOURCE_BYTES + 1)
        else:  # a text-only stdin (an embedding caller's): its characters, as UTF-8
            data = sys.stdin.read(MAX_SOURCE_BYTES + 1).encode("utf-8", "surrogateescape")
    except (OSError, UnicodeError) as exc:
        raise ManifestError(source, f"cannot read: {exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ManifestError(source, f"input is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB")
    return _decode(data, source)


def load_paths(paths: list[str], namespace: str | None = None, recursive: bool = False) -> list[Loaded]:
    """Load every document of every `-f` argument (file, directory of manifests — with `recursive`, its
    subdirectories' too, as kubectl -R —, or `-` for stdin).

    All inputs are validated before anything is returned, so one bad document stops the whole apply,
    and names must be unique per kind and namespace across the inputs. Inputs that hold no object at all
    are an error, as kubectl's "no objects passed" (a broken generator piped in must not look like success).
    `namespace`: see `build_object`.
    """
    loaded: list[Loaded] = []
    for arg in paths:
        if arg == "-":
            loaded.extend(load_text(_read_stdin(), "<stdin>", namespace))
            continue
        path = Path(arg)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in found if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            for file in files:
                loaded.extend(load_text(_read(file, str(file)), str(file), namespace))
        elif path.exists():
            loaded.extend(load_text(_read(path, arg), arg, namespace))
        else:
            raise ManifestError(arg, "no such file or directory")
    if not loaded:
        raise ManifestError(", ".join(paths), "no objects in the input")
    check_unique(loaded)
    return loaded
