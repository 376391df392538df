"""Runs one operation sequence against one broker with pika and records a transcript.

The transcript is a list of lines, in the order the client observed things:

    #3 pub {...}                       the operation (names with the placeholder prefix `P.`)
       -> ok | get-ok ... | ChannelClosedByBroker ...   its result
       ~ deliver ch1 ct0 ...           something that arrived on its own: deliveries, returns,
       ~ ch0 closed by broker 404 ...  server-sent channel/connection closes (with class and
       ~ cancel ...                    method ids), consumer cancel notifications

Asynchronous operations (publish, ack, nack, reject, flow) are followed by a passive declare of
`amq.direct` on the same channel, an RPC that changes nothing: its reply orders the operation's
consequences (a channel.close for an unknown delivery tag, a basic.return) before the next
operation. After every operation the client reads until the connections have been quiet for
QUIET seconds, so that deliveries land under the operation that caused them.
"""

import time

import pika
import pika.channel
import pika.connection
import pika.exceptions as pex

from normalise import Normaliser

QUIET = 0.03        # seconds without an event that count as "settled"
SETTLE_MAX = 1.0    # never wait longer than this after one operation
CONN_OF = {0: "A", 1: "A", 2: "B"}
NUMBER_OF = {0: 1, 1: 2, 2: 1}

# ---------------------------------------------------------------- pika hooks
# pika's exceptions carry the close's code and text only; the class and method ids are on the
# frame. These wrappers note the whole close on the object before pika handles it.
_orig_ch_close = pika.channel.Channel._on_close_from_broker
_orig_conn_close = pika.connection.Connection._on_connection_close_from_broker


def _ch_close(self, method_frame):
    m = method_frame.method
    cb = getattr(self, "_difftest_on_close", None)
    if cb:
        cb(m.reply_code, m.reply_text, m.class_id, m.method_id)
    return _orig_ch_close(self, method_frame)


def _conn_close(self, method_frame):
    m = method_frame.method
    cb = getattr(self, "_difftest_on_close", None)
    if cb:
        cb(m.reply_code, m.reply_text, m.class_id, m.method_id)
    return _orig_conn_close(self, method_frame)


pika.channel.Channel._on_close_from_broker = _ch_close
pika.connection.Connection._on_connection_close_from_broker = _conn_close

PROPS = ["content_type", "content_encoding", "headers", "delivery_mode", "priority",
         "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type", "user_id",
         "app_id", "cluster_id"]


class Run:
    """One execution of a sequence against one broker."""

    def __init__(self, url, prefix):
        self.url = url
        self.prefix = prefix
        self.norm = Normaliser(prefix)
        self.lines = []
        self.conns = {}
        self.chans = {}
        self.tags = {}            # channel slot -> delivery tags received, in order
        self.gen = ""             # last server-named queue
        self.events = 0
        self.declared_q = set()
        self.declared_x = set()

    # ------------------------------------------------------------ recording
    def emit(self, text):
        self.lines.append(self.norm.line(text))
        self.events += 1

    def name(self, n):
        if n == "@gen":
            return self.gen
        return n.replace("P.", self.prefix, 1) if n.startswith("P.") else n

    def fmt_props(self, p):
        out = []
        for k in PROPS:
            v = getattr(p, k, None)
            if v is not None:
                if k == "headers":
                    v = Normaliser.headers(v)
                out.append(f"{k}={v!r}")
        return "{" + ", ".join(out) + "}"

    # ------------------------------------------------------------ connections and channels
    def conn(self, cname):
        c = self.conns.get(cname)
        if c is not None and c.is_open:
            return c
        if c is not None:
            self.emit(f"   ~ (client reopens connection {cname})")
            for s, cn in CONN_OF.items():
                if cn == cname:
                    self.chans.pop(s, None)
        params = pika.URLParameters(self.url)
        params.heartbeat = 0
        params.blocked_connection_timeout = 30
        c = pika.BlockingConnection(params)
        c._impl._difftest_on_close = (
            lambda code, text, cid, mid, cname=cname: self.emit(
                f"   ~ connection {cname} closed by broker {code} {text!r} class={cid} method={mid}"))
        self.conns[cname] = c
        return c

    def chan(self, slot):
        ch = self.chans.get(slot)
        if ch is not None and ch.is_open and self.conns[CONN_OF[slot]].is_open:
            return ch
        if ch is not None:
            self.emit(f"   ~ (client reopens ch{slot})")
        c = self.conn(CONN_OF[slot])
        ch = c.channel(channel_number=NUMBER_OF[slot])
        ch._impl._difftest_on_close = (
            lambda code, text, cid, mid, slot=slot: self.emit(
                f"   ~ ch{slot} closed by broker {code} {text!r} class={cid} method={mid}"))
        ch.add_on_return_callback(
            lambda _c, m, p, b, slot=slot: self.emit(
                f"   ~ return ch{slot} {m.reply_code} {m.reply_text!r} x={m.exchange!r} "
                f"rk={m.routing_key!r} body={b!r} props={self.fmt_props(p)}"))
        ch.add_on_cancel_callback(
            lambda m, slot=slot: self.emit(f"   ~ cancel ch{slot} {m.method.consumer_tag}"))
        self.chans[slot] = ch
        self.tags[slot] = []
        return ch

    def settle(self):
        deadline = time.monotonic() + SETTLE_MAX
        last = self.events
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            for c in list(self.conns.values()):
                if c.is_open:
                    try:
                        c.process_data_events(time_limit=0.005)
                    except pex.AMQPError as e:
                        self.emit(f"   ~ {type(e).__name__} while reading: {e}")
            if self.events != last:
                last = self.events
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET:
                break

    def ping(self, ch):
        ch.exchange_declare("amq.direct", exchange_type="direct", passive=True)

    def on_delivery(self, slot, auto_ack):
        def cb(_ch, m, p, body):
            if not auto_ack:
                self.tags[slot].append(m.delivery_tag)
            self.emit(f"   ~ deliver ch{slot} {m.consumer_tag} tag={m.delivery_tag} "
                      f"redelivered={m.redelivered} x={m.exchange!r} rk={m.routing_key!r} "
                      f"body={body!r} props={self.fmt_props(p)}")
        return cb

    def pick_tag(self, slot, which):
        tags = self.tags.get(slot) or []
        if which == "bogus":
            return 424242
        if which == "zero":
            return 0
        if not tags:
            return 1
        if which == "last":
            return tags[-1]
        if which == "first":
            return tags[0]
        return tags[which % len(tags)]

    # ------------------------------------------------------------ operations
    def do(self, op):
        k = op["op"]
        slot = op["ch"]
        if k == "connclose":
            c = self.conns.get(CONN_OF[slot])
            if c is not None and c.is_open:
                c.close()
            return "ok"
        ch = self.chan(slot)
        if k == "qdecl":
            q = self.name(op["q"])
            r = ch.queue_declare(q, passive=op["passive"], durable=op["durable"],
                                 exclusive=op["exclusive"], auto_delete=op["auto_delete"],
                                 arguments=op["args"] or None)
            m = r.method
            if op["q"] == "":
                self.gen = m.queue
            self.declared_q.add(m.queue)
            return f"declare-ok {m.queue!r} messages={m.message_count} consumers={m.consumer_count}"
        if k == "xdecl":
            x = self.name(op["x"])
            ch.exchange_declare(x, exchange_type=op["type"], passive=op["passive"],
                                durable=op["durable"], auto_delete=op["auto_delete"],
                                internal=op["internal"],
                                arguments={a: self.name(v) for a, v in op["args"].items()} or None)
            self.declared_x.add(x)
            return "declare-ok"
        if k == "qbind":
            ch.queue_bind(self.name(op["q"]), self.name(op["x"]), routing_key=self.name(op["rk"]),
                          arguments=op["args"] or None)
            return "bind-ok"
        if k == "qunbind":
            ch.queue_unbind(self.name(op["q"]), self.name(op["x"]),
                            routing_key=self.name(op["rk"]), arguments=op["args"] or None)
            return "unbind-ok"
        if k == "xbind":
            ch.exchange_bind(self.name(op["dst"]), self.name(op["src"]),
                             routing_key=self.name(op["rk"]))
            return "bind-ok"
        if k == "xunbind":
            ch.exchange_unbind(self.name(op["dst"]), self.name(op["src"]),
                               routing_key=self.name(op["rk"]))
            return "unbind-ok"
        if k == "pub":
            props = dict(op["props"])
            if "headers" in props:
                props["headers"] = {h: ([self.name(x) if isinstance(x, str) else x for x in v]
                                        if h in ("CC", "BCC") and isinstance(v, list) else v)
                                    for h, v in props["headers"].items()}
            if "reply_to" in props:
                props["reply_to"] = self.name(props["reply_to"])
            ch.basic_publish(self.name(op["x"]), self.name(op["rk"]), op["body"].encode(),
                             pika.BasicProperties(**props), mandatory=op["mandatory"])
            if not ch._delivery_confirmation:
                self.ping(ch)
            return "ok"
        if k == "get":
            m, p, body = ch.basic_get(self.name(op["q"]), auto_ack=op["auto_ack"])
            if m is None:
                return "get-empty"
            if not op["auto_ack"]:
                self.tags[slot].append(m.delivery_tag)
            return (f"get-ok tag={m.delivery_tag} redelivered={m.redelivered} x={m.exchange!r} "
                    f"rk={m.routing_key!r} messages={m.message_count} body={body!r} "
                    f"props={self.fmt_props(p)}")
        if k == "consume":
            tag = ch.basic_consume(self.name(op["q"]), self.on_delivery(slot, op["auto_ack"]),
                                   auto_ack=op["auto_ack"], exclusive=op["exclusive"],
                                   consumer_tag=op["tag"], arguments=op["args"] or None)
            return f"consume-ok {tag}"
        if k == "cancel":
            if op["tag"] not in ch.consumer_tags:
                return "not consuming with that tag (client-side no-op)"
            ch.basic_cancel(op["tag"])
            return "cancel-ok"
        if k in ("ack", "nack", "reject"):
            tag = self.pick_tag(slot, op["which"])
            if k == "ack":
                ch.basic_ack(tag, multiple=op["multiple"])
            elif k == "nack":
                ch.basic_nack(tag, multiple=op["multiple"], requeue=op["requeue"])
            else:
                ch.basic_reject(tag, requeue=op["requeue"])
            self.ping(ch)
            return f"ok (tag {tag})"
        if k == "recover":
            ch.basic_recover(requeue=op["requeue"])
            return "recover-ok"
        if k == "qos":
            ch.basic_qos(prefetch_size=op["prefetch_size"], prefetch_count=op["prefetch_count"],
                         global_qos=op["glob"])
            return "qos-ok"
        if k == "confirm":
            ch.confirm_delivery()
            return "select-ok"
        if k == "txselect":
            ch.tx_select()
            return "select-ok"
        if k == "txcommit":
            ch.tx_commit()
            return "commit-ok"
        if k == "txrollback":
            ch.tx_rollback()
            return "rollback-ok"
        if k == "purge":
            r = ch.queue_purge(self.name(op["q"]))
            return f"purge-ok messages={r.method.message_count}"
        if k == "qdelete":
            r = ch.queue_delete(self.name(op["q"]), if_unused=op["if_unused"],
                                if_empty=op["if_empty"])
            return f"delete-ok messages={r.method.message_count}"
        if k == "xdelete":
            ch.exchange_delete(self.name(op["x"]), if_unused=op["if_unused"])
            return "delete-ok"
        if k == "chclose":
            ch.close()
            return "ok"
        if k == "flow":
            got = []
            ch._impl.flow(op["active"], lambda a: got.append(a))
            deadline = time.monotonic() + 2
            while not got and ch.is_open and time.monotonic() < deadline:
                self.conns[CONN_OF[slot]].process_data_events(time_limit=0.01)
            return f"flow-ok active={got[0]}" if got else "no flow-ok"
        raise ValueError(f"unknown op {k}")

    def run(self, ops):
        """Executes `ops`; returns the normalised transcript (list of lines)."""
        import json
        try:
            for i, op in enumerate(ops):
                self.emit(f"#{i} {op['op']} {json.dumps(op, sort_keys=True)}")
                try:
                    res = self.do(op)
                except (pex.ChannelClosedByBroker, pex.ConnectionClosedByBroker) as e:
                    res = f"{type(e).__name__} {e.reply_code} {e.reply_text!r}"
                except pex.UnroutableError as e:
                    res = "UnroutableError " + "; ".join(
                        f"{m.method.reply_code} {m.method.reply_text!r} body={m.body!r}"
                        for m in e.messages)
                except pex.NackError as e:
                    res = f"NackError ({len(e.messages)} nacked)"
                except pex.DuplicateConsumerTag as e:
                    res = f"DuplicateConsumerTag {e}"
                except (pex.ChannelWrongStateError, pex.ConnectionWrongStateError,
                        pex.StreamLostError, pex.ChannelClosed, pex.ConnectionClosed,
                        pex.AMQPConnectionError) as e:
                    res = f"{type(e).__name__}"
                except Exception as e:  # noqa: BLE001  a client-side refusal, same on both
                    res = f"client error {type(e).__name__}: {e}"
                self.emit(f"   -> {res}")
                self.settle()
        finally:
            self.cleanup()
        return self.lines

    def cleanup(self):
        """Best effort, not recorded: delete what the sequence may have created, then close."""
        try:
            for c in list(self.conns.values()):
                if c.is_open:
                    c.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            c = pika.BlockingConnection(pika.URLParameters(self.url))
            names_q = {self.name(q) for q in
                       ["P.q0", "P.q1", "P.q2", "P.no-such-queue"]} | self.declared_q
            names_x = {self.name(x) for x in
                       ["P.x0", "P.x1", "P.x2", "P.no-such-exchange", "P.xcr\r\nlf", "P.xcrlf",
                        "P.xlf\n", "P.xlf"]} | self.declared_x
            for q in names_q:
                if q.startswith(self.prefix) or q.startswith("amq.gen-"):
                    ch = c.channel()
                    try:
                        ch.queue_delete(q)
                        ch.close()
                    except pex.AMQPError:
                        pass
            for x in names_x:
                if x.startswith(self.prefix):
                    ch = c.channel()
                    try:
                        ch.exchange_delete(x)
                        ch.close()
                    except pex.AMQPError:
                        pass
            c.close()
        except Exception:  # noqa: BLE001
            pass
