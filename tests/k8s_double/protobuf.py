"""Read the one protobuf body the double must understand: a SelfSubjectAccessReview.

kubectl 1.32 and later send typed objects as application/vnd.kubernetes.protobuf, which is how
``kubectl auth can-i`` asks its question. The envelope is "k8s\\0" and a runtime.Unknown whose
field 2 holds the object; field numbers below are those of k8s.io/api/authorization/v1.
Other protobuf bodies are answered 415 (kubectl apply, create -f and the Python client send JSON).
"""

MAGIC = b"k8s\x00"
RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                       7: "name"}
NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data):
    """{field number: [values]}; length-delimited values stay bytes."""
    out, i = {}, 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = bytes(data[i:i + size]), i + size
        elif wire == 1:
            value, i = bytes(data[i:i + 8]), i + 8
        elif wire == 5:
            value, i = bytes(data[i:i + 4]), i + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wire)
        out.setdefault(number, []).append(value)
    return out


def _strings(data, names):
    return dict((names[n], v[-1].decode()) for n, v in fields(data).items() if n in names)


def decode_access_review(body):
    """{'spec': {...}} of a protobuf SelfSubjectAccessReview; ValueError when it is not one."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("no protobuf envelope")
        unknown = fields(body[4:])
        type_meta = _strings(unknown.get(1, [b""])[0], {1: "apiVersion", 2: "kind"})
        if type_meta.get("kind") != "SelfSubjectAccessReview":
            raise ValueError("not a SelfSubjectAccessReview: %r" % type_meta.get("kind"))
        review = fields(unknown[2][0])
        spec_fields = fields(review.get(2, [b""])[0])
    except (IndexError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError("malformed protobuf: %s" % exc)
    spec = {}
    if 1 in spec_fields:
        spec["resourceAttributes"] = _strings(spec_fields[1][0], RESOURCE_ATTRIBUTES)
    if 2 in spec_fields:
        spec["nonResourceAttributes"] = _strings(spec_fields[2][0], NON_RESOURCE_ATTRIBUTES)
    return {"spec": spec}
