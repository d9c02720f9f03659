"""The three PATCH bodies kube-apiserver takes, applied to plain JSON values.

- JSON merge patch (RFC 7386): maps merge, null deletes, lists are replaced.
- Strategic merge patch: treated as a merge patch, except that lists of maps with a "name"
  (containers, env, volumes, ports...) merge item by item, which is what kubectl apply's
  partial lists rely on; the $-directives kubectl sends ($setElementOrder, $patch,
  $deleteFromPrimitiveList, $retainKeys) are honoured or dropped, never stored.
- JSON patch (RFC 6902): add, remove, replace, move, copy, test.
"""

import copy


class PatchError(ValueError):
    """The patch cannot be applied; the server answers 422 (or 400 for a malformed one)."""


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _keyed(items):
    return isinstance(items, list) and items and all(isinstance(i, dict) and "name" in i for i in items)


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return dict((k, copy.deepcopy(v)) for k, v in patch.items() if not k.startswith("$"))
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and (_keyed(value) or (value == [] and _keyed(out.get(key)))):
            out[key] = _merge_named_list(out.get(key), value, patch.get("$setElementOrder/" + key))
        else:
            merged = strategic_merge_patch(out.get(key), value)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
    return out


def _merge_named_list(current, patch_items, order):
    current = list(current) if isinstance(current, list) else []
    by_name = dict((item.get("name"), item) for item in current if isinstance(item, dict))
    names = [item.get("name") for item in current if isinstance(item, dict)]
    for item in patch_items:
        name = item["name"]
        if item.get("$patch") == "delete":
            by_name.pop(name, None)
            continue
        by_name[name] = strategic_merge_patch(by_name.get(name), item)
        if name not in names:
            names.append(name)
    if order:  # $setElementOrder names the final order of the list
        wanted = [o["name"] for o in order if isinstance(o, dict) and "name" in o]
        names = [n for n in wanted if n in by_name] + [n for n in names if n not in wanted]
    return [by_name[n] for n in names if n in by_name]


# ---------------------------------------------------------------- RFC 6902

def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, tokens):
    """The container holding the last token."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError("doc is missing path: /%s" % "/".join(tokens))
    return node


def _get(doc, tokens):
    if not tokens:
        return doc
    parent, last = _walk(doc, tokens), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError("doc is missing path: /%s" % "/".join(tokens))


def _add(doc, tokens, value):
    if not tokens:
        return value
    parent, last = _walk(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else (int(last) if last.isdigit() else -1)
        if not 0 <= index <= len(parent):
            raise PatchError("add operation does not apply: index %s out of range" % last)
        parent.insert(index, value)
    else:
        raise PatchError("doc is missing path: /%s" % "/".join(tokens))
    return doc


def _remove(doc, tokens):
    if not tokens:
        raise PatchError("cannot remove the whole document")
    _get(doc, tokens)  # raises when missing
    parent, last = _walk(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def json_patch(doc, operations):
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid JSON patch operation %r" % (op,))
        kind, tokens = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("%s operation needs a value" % kind)
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)
            doc = _add(_remove(doc, tokens), tokens, copy.deepcopy(op["value"])) if tokens else op["value"]
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op["value"]:
                raise PatchError("testing value %s failed" % op["path"])
        else:
            raise PatchError("unexpected kind of JSON patch operation: %r" % kind)
    return doc
