"""RFC 6455 WebSocket framing, server side, standard library only.

Only what the exec endpoint needs: the opening handshake's accept key, unmasked server frames,
and an incremental reader for masked client frames (fragmentation, ping/pong, close).
"""

import base64
import hashlib
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1000, 1002, 1009


class ProtocolError(Exception):
    def __init__(self, message, code=CLOSE_PROTOCOL_ERROR):
        super().__init__(message)
        self.code = code


def accept_key(key):
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def frame(opcode, payload=b"", fin=True):
    """One server frame: servers never mask (RFC 6455 5.1)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def close_frame(code=CLOSE_NORMAL, reason=""):
    return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])


def _unmask(data, mask):
    # XOR as one big integer: linear time, fast enough for megabytes of stdin.
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class FrameReader:
    """Feed it bytes as they arrive; it returns whole messages as (opcode, payload).

    Control frames (close, ping, pong) come out as soon as they are complete, even in the
    middle of a fragmented message; data frames are joined until the one with FIN.
    """

    def __init__(self, max_message=256 << 20):
        self.buffer = bytearray()
        self.max_message = max_message
        self._parts = []
        self._opcode = None

    def feed(self, data):
        self.buffer += data
        messages = []
        while True:
            parsed = self._one_frame()
            if parsed is None:
                return messages
            fin, opcode, payload = parsed
            if opcode >= 0x8:
                if not fin or len(payload) > 125:
                    raise ProtocolError("fragmented or oversized control frame")
                messages.append((opcode, payload))
            elif opcode == OP_CONTINUATION:
                if self._opcode is None:
                    raise ProtocolError("continuation frame without a message to continue")
                self._add(payload, fin, messages)
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._opcode is not None:
                    raise ProtocolError("new message before the previous one finished")
                self._opcode = opcode
                self._add(payload, fin, messages)
            else:
                raise ProtocolError("unknown opcode %d" % opcode)

    def _add(self, payload, fin, messages):
        self._parts.append(payload)
        if sum(len(p) for p in self._parts) > self.max_message:
            raise ProtocolError("message too big", CLOSE_TOO_BIG)
        if fin:
            messages.append((self._opcode, b"".join(self._parts)))
            self._parts, self._opcode = [], None

    def _one_frame(self):
        buf = self.buffer
        if len(buf) < 2:
            return None
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        if buf[0] & 0x70:
            raise ProtocolError("reserved bits set without an extension")
        masked, size, offset = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if not masked:
            raise ProtocolError("client frames must be masked")
        if size == 126:
            if len(buf) < 4:
                return None
            size, offset = struct.unpack_from("!H", buf, 2)[0], 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, offset = struct.unpack_from("!Q", buf, 2)[0], 10
        if size > self.max_message:
            raise ProtocolError("frame too big", CLOSE_TOO_BIG)
        if len(buf) < offset + 4 + size:
            return None
        mask = bytes(buf[offset:offset + 4])
        payload = _unmask(bytes(buf[offset + 4:offset + 4 + size]), mask)
        del buf[:offset + 4 + size]
        return fin, opcode, payload
