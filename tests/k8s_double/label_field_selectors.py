"""Label and field selectors, parsed and matched the way kube-apiserver does.

Written independently of plugins/module_utils/_k8s_select.py so that the
module's selector strings are checked by a second implementation.
"""

import re

_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Characters that end an identifier in the apiserver's selector lexer.
_SPECIAL = set("!=(),<>")


class SelectorError(ValueError):
    """The selector cannot be parsed; the server answers 400 BadRequest."""


def _check_key(key):
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        raise SelectorError("invalid label key %r: prefix part must be a DNS subdomain" % key)
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        raise SelectorError("invalid label key %r: name part must be 63 characters or less, "
                            "alphanumeric, '-', '_' or '.', starting and ending alphanumeric" % key)


def _check_value(value):
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise SelectorError("invalid label value %r: must be 63 characters or less, "
                            "alphanumeric, '-', '_' or '.', starting and ending alphanumeric" % value)


def _tokens(text):
    """Split a label selector into tokens: operators, parentheses, commas, identifiers."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        two = text[i:i + 2]
        if two in ("==", "!="):
            out.append(two)
            i += 2
            continue
        if ch in _SPECIAL:
            out.append(ch)
            i += 1
            continue
        start = i
        while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        # 'in' and 'notin' are keywords wherever they appear, as in the apiserver lexer.
        out.append(("kw", word) if word in ("in", "notin") else ("id", word))
    return out


def parse_label_selector(text):
    """Return a list of (key, operator, values) requirements; raise SelectorError."""
    tokens = _tokens(text or "")
    reqs = []
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    while pos < len(tokens):
        negate = False
        if peek() == "!":
            negate = True
            pos += 1
        tok = peek()
        if not isinstance(tok, tuple) or tok[0] != "id":
            raise SelectorError("found %r, expected: identifier" % (tok[1] if isinstance(tok, tuple) else tok))
        key = tok[1]
        _check_key(key)
        pos += 1
        tok = peek()
        if negate:
            if tok not in (None, ","):
                raise SelectorError("found %r, expected: ',' or 'end of string'" % (tok,))
            reqs.append((key, "!", ()))
        elif tok in (None, ","):
            reqs.append((key, "exists", ()))
        elif tok in ("=", "==", "!="):
            pos += 1
            value_tok = peek()
            if value_tok in (None, ","):
                value = ""
            elif isinstance(value_tok, tuple):
                value = value_tok[1]
                pos += 1
            else:
                raise SelectorError("found %r, expected: identifier for value" % (value_tok,))
            _check_value(value)
            reqs.append((key, "!=" if tok == "!=" else "=", (value,)))
        elif tok in ("<", ">"):
            pos += 1
            value_tok = peek()
            if not isinstance(value_tok, tuple):
                raise SelectorError("found %r, expected: integer value" % (value_tok,))
            try:
                int(value_tok[1])
            except ValueError:
                raise SelectorError("for 'Gt', 'Lt' operators, the value must be an integer")
            pos += 1
            reqs.append((key, tok, (value_tok[1],)))
        elif isinstance(tok, tuple) and tok[0] == "kw":
            op = tok[1]
            pos += 1
            if peek() != "(":
                raise SelectorError("found %r, expected: '('" % (peek(),))
            pos += 1
            values = []
            expect_value = True
            while True:
                tok = peek()
                if tok is None:
                    raise SelectorError("found 'end of string', expected: ')'")
                if tok == ")":
                    if values and expect_value:
                        values.append("")  # "(a,)" holds a and the empty value
                    pos += 1
                    break
                if tok == ",":
                    if expect_value:
                        values.append("")
                    expect_value = True
                    pos += 1
                    continue
                if isinstance(tok, tuple) and expect_value:
                    values.append(tok[1])
                    expect_value = False
                    pos += 1
                    continue
                raise SelectorError("found %r, expected: ',' or ')'" % (tok,))
            if not values:
                raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
            for value in values:
                _check_value(value)
            reqs.append((key, op, tuple(values)))
        else:
            raise SelectorError("found %r, expected: in, notin, =, ==, !=, gt, lt" % (tok,))
        tok = peek()
        if tok is None:
            break
        if tok != ",":
            raise SelectorError("found %r, expected: ','" % (tok,))
        pos += 1
        if peek() is None:
            raise SelectorError("found 'end of string', expected: identifier")
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op in ("=", "in"):
            ok = present and value in values
        elif op in ("!=", "notin"):
            ok = not present or value not in values
        elif op == "exists":
            ok = present
        elif op == "!":
            ok = not present
        else:  # '<' or '>'
            try:
                number = int(value)
            except (TypeError, ValueError):
                ok = False
            else:
                ok = number > int(values[0]) if op == ">" else number < int(values[0])
        if not ok:
            return False
    return True


POD_FIELDS = {
    "metadata.name": lambda p: p["metadata"].get("name", ""),
    "metadata.namespace": lambda p: p["metadata"].get("namespace", ""),
    "spec.nodeName": lambda p: p["spec"].get("nodeName", ""),
    "spec.restartPolicy": lambda p: p["spec"].get("restartPolicy", ""),
    "spec.schedulerName": lambda p: p["spec"].get("schedulerName", ""),
    "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName", ""),
    "spec.hostNetwork": lambda p: "true" if p["spec"].get("hostNetwork") else "false",
    "status.phase": lambda p: p.get("status", {}).get("phase", ""),
    "status.podIP": lambda p: p.get("status", {}).get("podIP", ""),
    "status.nominatedNodeName": lambda p: p.get("status", {}).get("nominatedNodeName", ""),
}

NODE_FIELDS = {
    "metadata.name": lambda n: n["metadata"].get("name", ""),
    "spec.unschedulable": lambda n: "true" if n.get("spec", {}).get("unschedulable") else "false",
}


def _split_unescaped(text, sep):
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,=":
                raise SelectorError("invalid field selector escape in %r" % text)
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_field_selector(text, supported):
    """Return (field, operator, value) terms; unsupported fields raise SelectorError."""
    terms = []
    for term in _split_unescaped(text or "", ","):
        if not term:
            continue
        for op in ("!=", "==", "="):
            # The operator is the first unescaped occurrence.
            idx = _find_unescaped(term, op)
            if idx >= 0:
                field, value = term[:idx], term[idx + len(op):]
                break
        else:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, term))
        field = _unescape(field)
        if field not in supported:
            raise SelectorError('field label not supported: %s' % field)
        terms.append((field, "!=" if op == "!=" else "=", _unescape(value)))
    return terms


def _find_unescaped(text, op):
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            return i
        i += 1
    return -1


def fields_match(terms, obj, supported):
    for field, op, value in terms:
        actual = supported[field](obj)
        if (actual == value) != (op == "="):
            return False
    return True
