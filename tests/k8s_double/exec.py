"""pods/exec over WebSocket, the way kube-apiserver speaks it to kubectl 1.30 and later.

Minimum client: kubectl 1.30, the first to exec over WebSocket. kubectl 1.29 and older speak
SPDY/3.1 only; the server answers their upgrade with a 400 Status that says so (server.py).

Subprotocols v5.channel.k8s.io (preferred) and v4.channel.k8s.io. Every binary message starts
with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 status (a metav1.Status as JSON, sent once
when the command ends), 4 terminal resize. v5 adds [255, channel] to close one stream: kubectl
sends [255, 0] when its stdin ends, and the command's stdin is closed then.

The command runs as a local process (the ApiDouble's exec_backend gives its argv prefix). One
thread per session owns the TLS socket and the process's output pipes (select loop: an SSL
socket is not safe to read and write from two threads); a second thread only writes stdin to
the process, so a command that never reads stdin cannot stall its output.
"""

import json
import os
import queue
import select
import signal
import socket
import ssl
import subprocess
import threading

from .websocket import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameReader, ProtocolError, close_frame,
                        frame)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 64 * 1024


def choose_protocol(header):
    """The subprotocol to answer with from a Sec-WebSocket-Protocol list, or None."""
    offered = [p.strip() for p in (header or "").split(",")]
    for protocol in PROTOCOLS:
        if protocol in offered:
            return protocol
    return None


def exit_status(code, command):
    """The status message for channel 3, as the kubelet words it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [%s], exit code %d"
                       % (" ".join(command), code),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


class ExecSession:
    """One exec: a process and the WebSocket connection that drives it."""

    def __init__(self, sock, protocol, argv, command, namespace, pod, container, user,
                 stdin=True, stdout=True, stderr=True, tty=False, leftover=b""):
        self.sock = sock
        self.protocol = protocol
        self.argv = argv
        self.command = command
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.user = user
        self.want = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "tty": tty}
        self.leftover = leftover
        self.proc = None
        self.exit_code = None
        self.was_cut = False
        self.record = {}  # the request's entry in api.requests, completed here
        self._cut = threading.Event()
        self._send_lock = threading.Lock()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def describe(self):
        return {"namespace": self.namespace, "pod": self.pod, "container": self.container,
                "command": list(self.command), "argv": list(self.argv), "pid": self.pid, "user": self.user,
                "protocol": self.protocol}

    # ------------------------------------------------------------ process
    def start(self):
        """Start the backend process; raises OSError when it cannot be started."""
        want = self.want
        self.proc = subprocess.Popen(
            self.argv, bufsize=0, close_fds=True,
            stdin=subprocess.PIPE if want["stdin"] else subprocess.DEVNULL,
            stdout=subprocess.PIPE if want["stdout"] else subprocess.DEVNULL,
            # With a TTY the real runtime merges stderr into the terminal: do the same.
            stderr=(subprocess.STDOUT if want["tty"] else subprocess.PIPE) if want["stderr"] else subprocess.DEVNULL,
            # Its own process group, so a cut or a stop reaches what it forked, and nothing else.
            start_new_session=True)

    def _kill(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created for this PID
            except (ProcessLookupError, PermissionError):
                pass

    def _reap(self):
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell reports it

    def close(self):
        """Make sure the process is gone and reaped."""
        if self.proc is not None and self.proc.returncode is None:
            self._kill()
            self._reap()

    def cut(self):
        """Drop the connection like a lost link (no status, no close frame) and kill the process."""
        self.was_cut = True
        self.record["cut"] = True
        self._cut.set()
        self._kill()
        try:
            # The plain socket's shutdown, under TLS: a TCP FIN with nothing before it.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ wire
    def _send(self, data):
        if self._cut.is_set():
            raise ConnectionError("exec stream cut")
        with self._send_lock:
            self.sock.sendall(data)

    def _send_channel(self, channel, data):
        self._send(frame(OP_BINARY, bytes([channel]) + data))

    def _stdin_writer(self, inbox):
        fd = self.proc.stdin.fileno()
        try:
            while True:
                data = inbox.get()
                if data is None:
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        except OSError:
            pass  # the process is gone or closed its stdin: drop what is left
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    # ------------------------------------------------------------ session
    def run(self):
        """Drive the session; returns the exit code, or None when the stream ended without one."""
        inbox = queue.Queue()
        writer = None
        if self.proc.stdin is not None:
            writer = threading.Thread(target=self._stdin_writer, args=(inbox,), daemon=True,
                                      name="exec-stdin-%d" % self.proc.pid)
            writer.start()
        outputs = {}
        if self.proc.stdout is not None:
            outputs[self.proc.stdout.fileno()] = STDOUT
        if self.proc.stderr is not None:
            outputs[self.proc.stderr.fileno()] = STDERR
        reader = FrameReader()
        self.sock.settimeout(None)  # select decides when to read; sendall may wait for a slow reader
        ended = None  # why the client side ended: None while it is there
        try:
            ended = self._handle(reader.feed(self.leftover), inbox) if self.leftover else None
            while ended is None and not self._cut.is_set():
                if not outputs and self.proc.poll() is not None:
                    break
                if self.sock.pending():
                    ready = [self.sock]
                else:
                    ready, _, _ = select.select([self.sock] + list(outputs), [], [], 0.2)
                for source in ready:
                    if source is self.sock:
                        data = self.sock.recv(CHUNK)
                        ended = "client closed the connection" if not data else self._handle(reader.feed(data), inbox)
                        if ended:
                            break
                    else:
                        chunk = os.read(source, CHUNK)
                        if chunk:
                            self._send_channel(outputs[source], chunk)
                        else:
                            del outputs[source]
        except ProtocolError as exc:
            ended = "protocol error: %s" % exc
            self._try_send(close_frame(exc.code, str(exc)))
        except (OSError, ssl.SSLError, ConnectionError, ValueError) as exc:
            ended = "connection lost: %s" % exc
        finally:
            inbox.put(None)
        if ended is not None or self._cut.is_set():
            self._kill()  # nobody is left to read its output
            self._reap()
            return None
        self.exit_code = self._reap()
        self.record["exit_code"] = self.exit_code
        status = json.dumps(exit_status(self.exit_code, self.command)).encode()
        if self._try_send(frame(OP_BINARY, bytes([STATUS]) + status)) and self._try_send(close_frame()):
            self._await_close()
        if writer is not None:
            writer.join(2)
        return self.exit_code

    def _handle(self, messages, inbox):
        """Act on client messages; returns a reason when the client ended the session."""
        for opcode, payload in messages:
            if opcode in (OP_BINARY, OP_TEXT):
                if not payload:
                    continue
                channel, data = payload[0], payload[1:]
                if channel == STDIN and data and self.want["stdin"]:
                    inbox.put(bytes(data))
                elif channel == CLOSE and self.protocol.startswith("v5") and data[:1] == bytes([STDIN]):
                    inbox.put(None)  # kubectl's stdin ended: so does the command's
                # RESIZE and anything else: no terminal here, nothing to do.
            elif opcode == OP_PING:
                self._send(frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self._try_send(frame(OP_CLOSE, payload[:2]))
                return "client sent close"
            elif opcode == OP_PONG:
                pass
        return None

    def _try_send(self, data):
        try:
            self._send(data)
            return True
        except (OSError, ssl.SSLError, ConnectionError):
            return False

    def _await_close(self):
        """Give the client a moment to answer our close frame, then let the connection go."""
        self.sock.settimeout(2)
        reader = FrameReader()
        try:
            while not self._cut.is_set():
                data = self.sock.recv(CHUNK)
                if not data or any(op == OP_CLOSE for op, _ in reader.feed(data)):
                    return
        except (OSError, ssl.SSLError, ProtocolError):
            return
