"""Raw-frame probe of issue 12's protocol cases, run by hand against any broker's port:

    conformance/.deps/venv/bin/python conformance/probes/raw_frames.py PORT

A client channel.close crossing the server's (basic.ack of an unknown tag, then channel.close in
one write); a body longer than its header declared followed by a method, a header or a
channel.close; a channel.close while a content header is due. It prints what the broker sends.
RabbitMQ 3.10.8 and Warren printed the same lines on 2026-12-05 (closing note of issue 12);
`warren-server/tests/raw_protocol.rs` asserts Warren's.
"""

import socket
import sys
import time

import pika
from pika import frame, spec
from pika.compat import as_bytes

def frames_of(sock, want=1, timeout=3.0):
    sock.settimeout(timeout); buf=b""; out=[]
    end=time.time()+timeout
    while len(out)<want and time.time()<end:
        try:
            d=sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            out.append("EOF"); break
        buf+=d
        while True:
            n, f = frame.decode_frame(buf)
            if not f: break
            buf=buf[n:]
            if isinstance(f, frame.Heartbeat): continue
            out.append(f)
    return out

def send(sock, ch, method):
    sock.sendall(frame.Method(ch, method).marshal())

def connect(port):
    s=socket.create_connection(("127.0.0.1", port))
    s.sendall(b"AMQP\x00\x00\x09\x01")
    frames_of(s)
    send(s, 0, spec.Connection.StartOk(client_properties={"capabilities":{}}, mechanism="PLAIN", response=b"\0guest\0guest"))
    tune=frames_of(s)[0].method
    send(s, 0, spec.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
    send(s, 0, spec.Connection.Open(virtual_host="/"))
    frames_of(s)
    send(s, 1, spec.Channel.Open()); frames_of(s)
    return s

def show(fs):
    return [ (f if isinstance(f, str) else (f.channel_number, f.method.NAME, getattr(f.method,'reply_code',None), getattr(f.method,'reply_text',None), getattr(f.method,'class_id',None), getattr(f.method,'method_id',None))) for f in fs]

port=int(sys.argv[1])
# crossing close
s=connect(port)
send(s, 2, spec.Channel.Open()); frames_of(s)
s.sendall(frame.Method(1, spec.Basic.Ack(delivery_tag=99)).marshal()+frame.Method(1, spec.Channel.Close(0,"",0,0)).marshal())
print("crossing:", show(frames_of(s, 2)))
send(s, 1, spec.Channel.CloseOk())
send(s, 1, spec.Channel.Open())
send(s, 2, spec.Queue.Declare(queue="", exclusive=True))
print("after:", show(frames_of(s, 2)))
s.close()
# overrun then method / header / close
for nxt in ("method", "header", "close"):
    s=connect(port)
    send(s, 1, spec.Basic.Publish(exchange="", routing_key="nowhere"))
    hdr=frame.Header(1, 2, spec.BasicProperties()).marshal()
    data=hdr+frame.Body(1, b"too long").marshal()+frame.Body(1, b"more").marshal()
    if nxt=="method": data+=frame.Method(1, spec.Basic.Publish(exchange="", routing_key="x")).marshal()
    elif nxt=="header": data+=frame.Header(1, 1, spec.BasicProperties()).marshal()
    else: data+=frame.Method(1, spec.Channel.Close(0,"",0,0)).marshal()
    s.sendall(data)
    print("overrun+"+nxt+":", show(frames_of(s, 1)))
    s.close()
# close while header due
s=connect(port)
send(s, 1, spec.Basic.Publish(exchange="", routing_key="q"))
send(s, 1, spec.Channel.Close(0,"",0,0))
print("close-in-header:", show(frames_of(s,1)))
s.close()
