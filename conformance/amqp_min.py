"""A minimal AMQP 0-9-1 client (standard library only): opens a connection and reads its close."""
import socket
import struct


def _frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def _shortstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def _longstr(b):
    return struct.pack(">I", len(b)) + b


def _read_frame(sock):
    head = _recv_exact(sock, 7)
    ftype, channel, size = struct.unpack(">BHI", head)
    payload = _recv_exact(sock, size + 1)[:-1]
    return ftype, channel, payload


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


def _method(sock):
    while True:
        ftype, _, payload = _read_frame(sock)
        if ftype == 1:
            cls, mid = struct.unpack(">HH", payload[:4])
            return cls, mid, payload[4:]


def open_connection(port, user="guest", password="guest", vhost="/", name="rabbitmqadmin-check"):
    """An open AMQP connection (a socket) to 127.0.0.1:port; raises on a refused login."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    cls, mid, _ = _method(sock)
    assert (cls, mid) == (10, 10), "expected connection.start"
    props = _shortstr("connection_name") + b"S" + _longstr(name.encode())
    start_ok = (struct.pack(">HH", 10, 11) + _longstr(props) + _shortstr("PLAIN")
                + _longstr(b"\x00" + user.encode() + b"\x00" + password.encode()) + _shortstr("en_US"))
    sock.sendall(_frame(1, 0, start_ok))
    cls, mid, args = _method(sock)
    if (cls, mid) != (10, 30):
        raise ConnectionError(f"login refused ({cls}.{mid})")
    channel_max, frame_max, _heartbeat = struct.unpack(">HIH", args[:8])
    sock.sendall(_frame(1, 0, struct.pack(">HHHIH", 10, 31, channel_max, frame_max, 0)))
    sock.sendall(_frame(1, 0, struct.pack(">HH", 10, 40) + _shortstr(vhost) + b"\x00\x00"))
    cls, mid, _ = _method(sock)
    if (cls, mid) != (10, 41):
        raise ConnectionError(f"vhost refused ({cls}.{mid})")
    return sock


def wait_close(sock, timeout=10):
    """(reply code, reply text) of the broker's connection.close, or None if it did not come."""
    sock.settimeout(timeout)
    try:
        while True:
            cls, mid, args = _method(sock)
            if (cls, mid) == (10, 50):
                code, = struct.unpack(">H", args[:2])
                text = args[3:3 + args[2]].decode()
                sock.sendall(_frame(1, 0, struct.pack(">HH", 10, 51)))
                return code, text
    except (OSError, ConnectionError):
        return None
