// Conformance scenarios written with the RabbitMQ Java client 5.x (Debian librabbitmq-client-java).
//
//     java -cp BUILD:/usr/share/java/rabbitmq-client.jar:... Scenarios URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.

import com.rabbitmq.client.*;
import com.rabbitmq.client.impl.LongStringHelper;

import java.io.IOException;
import java.math.BigDecimal;
import java.net.Socket;
import java.security.SecureRandom;
import java.util.*;
import java.util.concurrent.*;
import java.util.function.BooleanSupplier;
import javax.net.SocketFactory;

public class Scenarios {
    static class Fail extends RuntimeException { Fail(String m) { super(m); } }
    static class Skip extends RuntimeException { Skip(String m) { super(m); } }

    interface Body { String run(String url) throws Exception; }

    static final LinkedHashMap<String, Body> SCENARIOS = new LinkedHashMap<>();
    static void scenario(String name, Body b) { SCENARIOS.put(name, b); }

    static void check(boolean c, String msg) { if (!c) throw new Fail(msg); }
    static void eq(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) throw new Fail(what + ": got " + got + ", want " + want);
    }
    static final SecureRandom RND = new SecureRandom();
    static String unique(String tag) {
        return String.format("conf.%s.%d.%08x", tag, ProcessHandle.current().pid(), RND.nextInt());
    }
    static boolean waitUntil(BooleanSupplier p, long ms) throws InterruptedException {
        long end = System.currentTimeMillis() + ms;
        while (true) {
            if (p.getAsBoolean()) return true;
            if (System.currentTimeMillis() > end) return false;
            Thread.sleep(20);
        }
    }
    static byte[] b(String s) { return s.getBytes(java.nio.charset.StandardCharsets.UTF_8); }
    static String s(byte[] x) { return new String(x, java.nio.charset.StandardCharsets.UTF_8); }

    // ------------------------------------------------------------------ world

    static class World implements AutoCloseable {
        final String url;
        final List<Connection> conns = new ArrayList<>();
        final List<String> queues = new ArrayList<>(), exchanges = new ArrayList<>();
        Connection conn;
        Channel ch;
        boolean confirm; // publish via pub() waits for the broker's ack (orders it before later RPCs)

        World confirmed() throws Exception { ch.confirmSelect(); confirm = true; return this; }

        World(String url) throws Exception { this(url, null); }
        World(String url, java.util.function.Consumer<ConnectionFactory> cfg) throws Exception {
            this.url = url;
            conn = connect(cfg);
            ch = conn.createChannel();
        }
        ConnectionFactory factory(java.util.function.Consumer<ConnectionFactory> cfg) throws Exception {
            ConnectionFactory f = new ConnectionFactory();
            // amqp://host:port/ means vhost "" for the Java client, "/" for pika and amqplib
            f.setUri(url.matches("amqps?://[^/]*/") ? url.substring(0, url.length() - 1) : url);
            f.setConnectionTimeout(10000);
            f.setAutomaticRecoveryEnabled(false);
            if (cfg != null) cfg.accept(f);
            return f;
        }
        Connection connect() throws Exception { return connect(null); }
        Connection connect(java.util.function.Consumer<ConnectionFactory> cfg) throws Exception {
            Connection c = factory(cfg).newConnection();
            conns.add(c);
            return c;
        }
        String queue(String tag) throws IOException { return queue(tag, false, false, false); }
        String queue(String tag, boolean durable, boolean exclusive, boolean autoDelete) throws IOException {
            String n = unique(tag);
            ch.queueDeclare(n, durable, exclusive, autoDelete, null);
            queues.add(n);
            return n;
        }
        String exchange(String tag, String type) throws IOException {
            String n = unique(tag);
            ch.exchangeDeclare(n, type);
            exchanges.add(n);
            return n;
        }
        int count(String q) throws Exception {
            if (ch.isOpen()) return ch.queueDeclarePassive(q).getMessageCount();
            Channel c = conn.createChannel();
            try { return c.queueDeclarePassive(q).getMessageCount(); } finally { c.close(); }
        }
        void pub(String ex, String rk, String body) throws Exception {
            ch.basicPublish(ex, rk, null, b(body));
            if (confirm) ch.waitForConfirmsOrDie(5000);
        }
        @Override public void close() {
            for (Connection c : conns) { try { if (c.isOpen()) c.close(); } catch (Exception e) { } }
            if (queues.isEmpty() && exchanges.isEmpty()) return;
            try {
                Connection c = factory(null).newConnection();
                for (String q : queues) { try { Channel x = c.createChannel(); x.queueDelete(q); x.close(); } catch (Exception e) { } }
                for (String e : exchanges) { try { Channel x = c.createChannel(); x.exchangeDelete(e); x.close(); } catch (Exception ex) { } }
                c.close();
            } catch (Exception e) { }
        }
    }

    static class Delivery {
        final Envelope env; final AMQP.BasicProperties props; final byte[] body; final String consumer;
        Delivery(String consumer, Envelope e, AMQP.BasicProperties p, byte[] b) { this.consumer = consumer; env = e; props = p; body = b; }
    }

    static class Collector extends DefaultConsumer {
        final List<Delivery> got = Collections.synchronizedList(new ArrayList<>());
        final List<String> cancelled = Collections.synchronizedList(new ArrayList<>());
        final String name;
        Collector(Channel ch, String name) { super(ch); this.name = name; }
        @Override public void handleDelivery(String tag, Envelope e, AMQP.BasicProperties p, byte[] body) { got.add(new Delivery(name, e, p, body)); }
        @Override public void handleCancel(String tag) { cancelled.add(tag); }
        boolean waitFor(int n, long ms) throws InterruptedException { return waitUntil(() -> got.size() >= n, ms); }
    }

    static List<Delivery> collect(Channel ch, String q, int n, long ms) throws Exception {
        Collector c = new Collector(ch, "c");
        String tag = ch.basicConsume(q, true, c);
        c.waitFor(n, ms);
        ch.basicCancel(tag);
        synchronized (c.got) { return new ArrayList<>(c.got); }
    }

    static ShutdownSignalException shutdownOf(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause())
            if (t instanceof ShutdownSignalException) return (ShutdownSignalException) t;
        return null;
    }

    interface Op { void run() throws Exception; }

    static String expectChannelError(Op op, int code, String textRe) throws Exception {
        ShutdownSignalException sse;
        try {
            op.run();
            throw new Fail("no channel.close " + code + " (call succeeded)");
        } catch (Fail f) {
            throw f;
        } catch (Exception e) {
            sse = shutdownOf(e);
            if (sse == null) throw e;
        }
        check(!sse.isHardError(), "connection closed instead of channel: " + sse.getMessage());
        Object reason = sse.getReason();
        check(reason instanceof AMQP.Channel.Close, "reason is not channel.close: " + reason);
        AMQP.Channel.Close close = (AMQP.Channel.Close) reason;
        eq(close.getReplyCode(), code, "reply code");
        check(close.getReplyText().matches(textRe), "reply text '" + close.getReplyText() + "' does not match " + textRe);
        return close.getReplyCode() + " " + close.getReplyText();
    }

    static String quote(String s) { return java.util.regex.Pattern.quote(s); }

    static void stillUsable(World w) throws Exception {
        Channel c = w.conn.createChannel();
        c.queueDeclare("", false, true, false, null);
        c.close();
    }

    static boolean gone(World w, String q) {
        try {
            Channel c = w.conn.createChannel();
            c.queueDeclarePassive(q);
            c.close();
            return false;
        } catch (Exception e) {
            ShutdownSignalException sse = shutdownOf(e);
            return sse != null && sse.getReason() instanceof AMQP.Channel.Close
                && ((AMQP.Channel.Close) sse.getReason()).getReplyCode() == 404;
        }
    }

    static List<String> drain(Channel ch, String q) throws IOException {
        List<String> out = new ArrayList<>();
        for (GetResponse r; (r = ch.basicGet(q, true)) != null; ) out.add(s(r.getBody()));
        return out;
    }

    // ------------------------------------------------------------------ scenarios

    static void define() {
        scenario("connect_heartbeat", url -> {
            try (World w = new World(url, f -> f.setRequestedHeartbeat(2))) {
                Map<String, Object> props = w.conn.getServerProperties();
                @SuppressWarnings("unchecked")
                Map<String, Object> caps = (Map<String, Object>) props.get("capabilities");
                for (String cap : new String[]{"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                        "consumer_cancel_notify", "connection.blocked", "authentication_failure_close", "per_consumer_qos"})
                    eq(caps.get(cap), Boolean.TRUE, "server capability " + cap);
                eq(w.conn.getHeartbeat(), 2, "negotiated heartbeat");
                eq(w.conn.getFrameMax(), 131072, "negotiated frame_max (client proposes 0)");
                eq(w.conn.getChannelMax(), 2047, "negotiated channel_max");
                Thread.sleep(6000);
                check(w.conn.isOpen(), "connection closed while idle with heartbeat 2");
                w.ch.queueDeclare("", false, true, false, null);
                return "frame_max " + w.conn.getFrameMax();
            }
        });

        scenario("exchange_declare_types", url -> {
            try (World w = new World(url)) {
                for (String t : new String[]{"direct", "fanout", "topic", "headers"}) {
                    String name = w.exchange("ex-" + t, t);
                    w.ch.exchangeDeclare(name, t);
                    w.ch.exchangeDeclarePassive(name);
                    w.ch.exchangeDelete(name);
                    Channel c = w.conn.createChannel();
                    expectChannelError(() -> c.exchangeDeclarePassive(name), 404,
                        "NOT_FOUND - no exchange '" + quote(name) + "' in vhost '/'");
                }
                String[][] builtins = {{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"},
                    {"amq.headers", "headers"}, {"amq.match", "headers"}};
                for (String[] bt : builtins) {
                    w.ch.exchangeDeclarePassive(bt[0]);
                    w.ch.exchangeDeclare(bt[0], bt[1], true);
                }
                return null;
            }
        });

        scenario("queue_declare_named", url -> {
            try (World w = new World(url)) {
                String name = unique("q-named");
                AMQP.Queue.DeclareOk ok = w.ch.queueDeclare(name, false, false, false, null);
                w.queues.add(name);
                eq(ok.getQueue(), name, "declare-ok queue");
                eq(ok.getMessageCount() + "/" + ok.getConsumerCount(), "0/0", "counts");
                w.ch.confirmSelect();
                w.pub("", name, "x");
                w.ch.waitForConfirmsOrDie(5000);
                eq(w.ch.queueDeclare(name, false, false, false, null).getMessageCount(), 1, "redeclare message_count");
                eq(w.ch.queueDeclarePassive(name).getMessageCount(), 1, "passive message_count");
                eq(w.ch.queueDelete(name).getMessageCount(), 1, "delete-ok message_count");
                return null;
            }
        });

        scenario("queue_declare_server_named", url -> {
            try (World w = new World(url)) {
                String q = w.ch.queueDeclare().getQueue();
                check(q.startsWith("amq.gen-"), "server-named queue " + q + " does not start with amq.gen-");
                w.pub("", q, "hello");
                GetResponse r = w.ch.basicGet(q, true);
                check(r != null, "get-empty");
                eq(s(r.getBody()), "hello", "body via server-named queue");
                return q;
            }
        });

        scenario("queue_declare_exclusive", url -> {
            try (World w = new World(url)) {
                Connection c2 = w.connect();
                Channel ch2 = c2.createChannel();
                String name = unique("q-excl");
                ch2.queueDeclare(name, false, true, false, null);
                ch2.queueDeclarePassive(name);
                c2.close();
                check(waitUntil(() -> gone(w, name), 5000), "exclusive queue still exists after its connection closed");
                return null;
            }
        });

        scenario("queue_declare_auto_delete", url -> {
            try (World w = new World(url)) {
                String name = unique("q-autodel");
                w.ch.queueDeclare(name, false, false, true, null);
                w.queues.add(name);
                w.ch.queueDeclarePassive(name);
                String tag = w.ch.basicConsume(name, true, new DefaultConsumer(w.ch));
                w.ch.basicCancel(tag);
                check(waitUntil(() -> gone(w, name), 5000), "auto-delete queue still exists after its last consumer left");
                return null;
            }
        });

        scenario("queue_declare_durable", url -> {
            try (World w = new World(url)) {
                String name = w.queue("q-durable", true, false, false);
                w.ch.confirmSelect();
                w.ch.queueDeclare(name, true, false, false, null);
                w.ch.queueDeclarePassive(name);
                w.ch.basicPublish("", name, MessageProperties.PERSISTENT_BASIC, b("p"));
                w.ch.waitForConfirmsOrDie(5000);
                eq(w.count(name), 1, "message_count");
                eq(w.ch.queueDelete(name).getMessageCount(), 1, "delete-ok message_count");
                return null;
            }
        });

        scenario("bind_unbind", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String ex = w.exchange("ex-bind", "direct");
                String q = w.queue("q-bind");
                w.ch.queueBind(q, ex, "k1");
                w.ch.queueBind(q, ex, "k1");
                w.ch.queueBind(q, ex, "k2");
                for (String k : new String[]{"k1", "k2", "k3"}) w.pub(ex, k, k);
                eq(w.count(q), 2, "messages routed with bindings k1,k2");
                w.ch.queueUnbind(q, ex, "k1");
                for (String k : new String[]{"k1", "k2"}) w.pub(ex, k, k);
                eq(w.count(q), 3, "messages after unbind of k1");
                w.ch.queueUnbind(q, ex, "never-bound");
                eq(drain(w.ch, q), List.of("k1", "k2", "k2"), "bodies");
                return null;
            }
        });

        scenario("exchange_to_exchange_bind", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String src = w.exchange("ex-src", "topic"), dst = w.exchange("ex-dst", "fanout");
                String q = w.queue("q-e2e");
                w.ch.queueBind(q, dst, "");
                w.ch.exchangeBind(dst, src, "a.*");
                w.pub(src, "a.b", "1");
                w.pub(src, "x.b", "2");
                eq(w.count(q), 1, "messages routed through e2e binding");
                w.ch.exchangeUnbind(dst, src, "a.*");
                w.pub(src, "a.b", "3");
                eq(w.count(q), 1, "messages after exchange.unbind");
                GetResponse r = w.ch.basicGet(q, true);
                eq(r.getEnvelope().getExchange() + "|" + r.getEnvelope().getRoutingKey() + "|" + s(r.getBody()),
                    src + "|a.b|1", "exchange/routing key/body");
                return null;
            }
        });

        scenario("publish_consume_properties", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-props");
                Map<String, Object> headers = new LinkedHashMap<>();
                headers.put("str", "value");
                headers.put("empty", "");
                headers.put("unicode", "h\u00e9llo \u2603");
                headers.put("int", 42);
                headers.put("neg", -7);
                headers.put("big", 1L << 40);
                headers.put("bool_t", true);
                headers.put("bool_f", false);
                headers.put("decimal", new BigDecimal("3.14"));
                headers.put("ts", new Date(1577934245000L));
                headers.put("table", Map.of("nested", "yes", "n", 1));
                headers.put("array", List.of(1, "two", true));
                headers.put("void", null);
                headers.put("bytes", new byte[]{0, 1, (byte) 0xff});
                Date ts = new Date(1700000000000L);
                AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                    .contentType("application/json").contentEncoding("utf-8").headers(headers)
                    .deliveryMode(2).priority(5).correlationId("corr-1").replyTo("reply.q")
                    .expiration("60000").messageId("msg-1").timestamp(ts).type("t.kind")
                    .userId("guest").appId("conformance").clusterId("c1").build();
                String body = "{\"hello\": \"world\"}";
                w.ch.basicPublish("", q, props, b(body));
                List<Delivery> got = collect(w.ch, q, 1, 5000);
                eq(got.size(), 1, "deliveries");
                Delivery d = got.get(0);
                eq(s(d.body), body, "body");
                eq(d.env.getExchange() + "|" + d.env.getRoutingKey() + "|" + d.env.isRedeliver(), "|" + q + "|false", "deliver fields");
                AMQP.BasicProperties p = d.props;
                eq(p.getContentType(), "application/json", "content_type");
                eq(p.getContentEncoding(), "utf-8", "content_encoding");
                eq(p.getDeliveryMode(), 2, "delivery_mode");
                eq(p.getPriority(), 5, "priority");
                eq(p.getCorrelationId(), "corr-1", "correlation_id");
                eq(p.getReplyTo(), "reply.q", "reply_to");
                eq(p.getExpiration(), "60000", "expiration");
                eq(p.getMessageId(), "msg-1", "message_id");
                eq(p.getTimestamp(), ts, "timestamp");
                eq(p.getType(), "t.kind", "type");
                eq(p.getUserId(), "guest", "user_id");
                eq(p.getAppId(), "conformance", "app_id");
                eq(p.getClusterId(), "c1", "cluster_id");
                Map<String, Object> h = p.getHeaders();
                eq(new TreeSet<>(h.keySet()), new TreeSet<>(headers.keySet()), "header names");
                eq(h.get("str").toString(), "value", "header str");
                eq(h.get("empty").toString(), "", "header empty");
                eq(h.get("unicode").toString(), "h\u00e9llo \u2603", "header unicode");
                eq(h.get("int"), 42, "header int");
                eq(h.get("neg"), -7, "header neg");
                eq(h.get("big"), 1L << 40, "header big");
                eq(h.get("bool_t"), true, "header bool_t");
                eq(h.get("bool_f"), false, "header bool_f");
                eq(h.get("decimal"), new BigDecimal("3.14"), "header decimal");
                eq(h.get("ts"), new Date(1577934245000L), "header ts");
                @SuppressWarnings("unchecked") Map<String, Object> t = (Map<String, Object>) h.get("table");
                eq(t.get("nested").toString() + "/" + t.get("n"), "yes/1", "header table");
                @SuppressWarnings("unchecked") List<Object> a = (List<Object>) h.get("array");
                eq(a.get(0) + "/" + a.get(1) + "/" + a.get(2), "1/two/true", "header array");
                eq(h.get("void"), null, "header void");
                eq(Arrays.toString((byte[]) h.get("bytes")), Arrays.toString(new byte[]{0, 1, (byte) 0xff}), "header bytes");
                w.pub("", q, "bare");
                got = collect(w.ch, q, 1, 5000);
                eq(got.size(), 1, "deliveries (bare)");
                p = got.get(0).props;
                eq(Arrays.asList(p.getContentType(), p.getHeaders(), p.getDeliveryMode(), p.getPriority(), p.getTimestamp(), p.getExpiration()),
                    Arrays.asList(null, null, null, null, null, null), "bare message properties");
                return null;
            }
        });

        scenario("basic_get", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String q = w.queue("q-get");
                for (int i = 0; i < 3; i++) w.pub("", q, "m" + i);
                eq(w.count(q), 3, "message_count");
                for (int i = 0; i < 3; i++) {
                    GetResponse r = w.ch.basicGet(q, true);
                    check(r != null, "get " + i + " returned get-empty");
                    eq(s(r.getBody()), "m" + i, "body " + i);
                    eq(r.getMessageCount(), 2 - i, "get-ok message_count " + i);
                    eq(r.getEnvelope().isRedeliver() + "|" + r.getEnvelope().getExchange() + "|" + r.getEnvelope().getRoutingKey(),
                        "false||" + q, "get-ok fields " + i);
                }
                eq(w.ch.basicGet(q, true), null, "basic.get on an empty queue (get-empty)");
                return null;
            }
        });

        scenario("ack", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-ack");
                for (int i = 0; i < 2; i++) w.pub("", q, "m" + i);
                GetResponse m0 = w.ch.basicGet(q, false), m1 = w.ch.basicGet(q, false);
                eq(m0.getEnvelope().getDeliveryTag() + "," + m1.getEnvelope().getDeliveryTag(), "1,2", "delivery tags");
                w.ch.basicAck(1, false);
                w.ch.close();
                Channel c = w.conn.createChannel();
                GetResponse r = c.basicGet(q, true);
                eq(s(r.getBody()) + "/" + r.getEnvelope().isRedeliver(), "m1/true", "unacked message requeued on channel close");
                eq(c.basicGet(q, true), null, "acked message must not come back");
                return null;
            }
        });

        scenario("ack_multiple", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-ackm");
                for (int i = 0; i < 5; i++) w.pub("", q, "m" + i);
                List<Long> tags = new ArrayList<>();
                for (int i = 0; i < 5; i++) tags.add(w.ch.basicGet(q, false).getEnvelope().getDeliveryTag());
                eq(tags, List.of(1L, 2L, 3L, 4L, 5L), "delivery tags");
                w.ch.basicAck(3, true);
                w.ch.close();
                Channel c = w.conn.createChannel();
                List<String> back = new ArrayList<>();
                for (GetResponse r; (r = c.basicGet(q, true)) != null; ) back.add(s(r.getBody()) + "/" + r.getEnvelope().isRedeliver());
                eq(back, List.of("m3/true", "m4/true"), "requeued after ack(3, multiple)");
                return null;
            }
        });

        for (String kind : new String[]{"nack", "reject"})
            for (boolean requeue : new boolean[]{true, false})
                scenario(kind + (requeue ? "_requeue" : "_discard"), url -> {
                    try (World w = new World(url)) {
                        String q = w.queue("q-" + kind);
                        for (int i = 0; i < 3; i++) w.pub("", q, "m" + i);
                        for (int i = 0; i < 3; i++) check(w.ch.basicGet(q, false) != null, "unexpected get-empty");
                        if (kind.equals("nack")) w.ch.basicNack(2, true, requeue);
                        else { w.ch.basicReject(1, requeue); w.ch.basicReject(2, requeue); }
                        w.ch.basicAck(3, false);
                        if (requeue) {
                            GetResponse r = w.ch.basicGet(q, true);
                            eq(s(r.getBody()) + "/" + r.getEnvelope().isRedeliver(), "m0/true", "first requeued message");
                            r = w.ch.basicGet(q, true);
                            eq(s(r.getBody()) + "/" + r.getEnvelope().isRedeliver(), "m1/true", "second requeued message");
                        }
                        eq(w.ch.basicGet(q, false), null, "queue empty at the end");
                        w.ch.close();
                        eq(w.count(q), 0, "nothing left after channel close");
                        return null;
                    }
                });

        scenario("prefetch", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-prefetch");
                for (int i = 0; i < 10; i++) w.pub("", q, "m" + i);
                w.ch.basicQos(3);
                Collector c = new Collector(w.ch, "c");
                w.ch.basicConsume(q, false, c);
                c.waitFor(3, 5000);
                Thread.sleep(500);
                eq(c.got.size(), 3, "unacked deliveries with prefetch 3");
                w.ch.basicAck(c.got.get(0).env.getDeliveryTag(), false);
                Thread.sleep(500);
                eq(c.got.size(), 4, "deliveries after one ack");
                w.ch.basicAck(c.got.get(c.got.size() - 1).env.getDeliveryTag(), true);
                Thread.sleep(500);
                eq(c.got.size(), 7, "deliveries after ack multiple");
                w.ch.basicAck(c.got.get(c.got.size() - 1).env.getDeliveryTag(), true);
                Thread.sleep(500);
                eq(c.got.size(), 10, "all deliveries");
                List<String> bodies = new ArrayList<>();
                for (Delivery d : c.got) bodies.add(s(d.body));
                List<String> want = new ArrayList<>();
                for (int i = 0; i < 10; i++) want.add("m" + i);
                eq(bodies, want, "order");
                return null;
            }
        });

        scenario("round_robin", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-rr");
                Channel ch1 = w.conn.createChannel(), ch2 = w.conn.createChannel();
                List<Delivery> order = Collections.synchronizedList(new ArrayList<>());
                Collector c1 = new Collector(ch1, "c1") {
                    @Override public void handleDelivery(String t, Envelope e, AMQP.BasicProperties p, byte[] body) { order.add(new Delivery("c1", e, p, body)); }
                };
                Collector c2 = new Collector(ch2, "c2") {
                    @Override public void handleDelivery(String t, Envelope e, AMQP.BasicProperties p, byte[] body) { order.add(new Delivery("c2", e, p, body)); }
                };
                ch1.basicConsume(q, true, c1);
                ch2.basicConsume(q, true, c2);
                for (int i = 0; i < 10; i++) w.pub("", q, "m" + i);
                waitUntil(() -> order.size() >= 10, 5000);
                eq(order.size(), 10, "deliveries");
                List<String> l1 = new ArrayList<>(), l2 = new ArrayList<>();
                for (Delivery d : order) (d.consumer.equals("c1") ? l1 : l2).add(s(d.body));
                eq(l1.size() + "," + l2.size(), "5,5", "deliveries per consumer");
                List<String> evens = List.of("m0", "m2", "m4", "m6", "m8"), odds = List.of("m1", "m3", "m5", "m7", "m9");
                check((l1.equals(evens) && l2.equals(odds)) || (l1.equals(odds) && l2.equals(evens)), "not alternating: c1=" + l1 + " c2=" + l2);
                return null;
            }
        });

        scenario("fanout_many", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String ex = w.exchange("ex-fan", "fanout");
                List<String> qs = new ArrayList<>();
                for (int i = 0; i < 20; i++) { String q = w.queue("q-fan" + i); w.ch.queueBind(q, ex, "ignored"); qs.add(q); }
                for (int i = 0; i < 3; i++) w.pub(ex, "any" + i, "m" + i);
                for (String q : qs) {
                    List<String> got = new ArrayList<>();
                    for (int i = 0; i < 3; i++) {
                        GetResponse r = w.ch.basicGet(q, true);
                        check(r != null, "get-empty on " + q);
                        got.add(s(r.getBody()) + "@" + r.getEnvelope().getRoutingKey());
                    }
                    eq(got, List.of("m0@any0", "m1@any1", "m2@any2"), "queue " + q);
                }
                return null;
            }
        });

        scenario("topic_routing", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String ex = w.exchange("ex-topic", "topic");
                Map<String, String> qs = new LinkedHashMap<>();
                for (String pat : TOPIC_PATTERNS) { String q = w.queue("q-topic"); w.ch.queueBind(q, ex, pat); qs.put(pat, q); }
                for (String key : TOPIC_EXPECTED.keySet()) w.pub(ex, key, key);
                List<String> errors = new ArrayList<>();
                for (String pat : TOPIC_PATTERNS) {
                    List<String> got = drain(w.ch, qs.get(pat));
                    List<String> want = new ArrayList<>();
                    for (Map.Entry<String, List<String>> e : TOPIC_EXPECTED.entrySet()) if (e.getValue().contains(pat)) want.add(e.getKey());
                    if (!got.equals(want)) errors.add("pattern '" + pat + "': got " + got + ", want " + want);
                }
                check(errors.isEmpty(), String.join("; ", errors));
                return null;
            }
        });

        scenario("headers_routing", url -> {
            try (World w = new World(url)) {
                w.confirmed();
                String ex = w.exchange("ex-headers", "headers");
                Map<String, Map<String, Object>> bindings = new LinkedHashMap<>();
                bindings.put("all", Map.of("x-match", "all", "format", "pdf", "type", "report"));
                bindings.put("any", Map.of("x-match", "any", "format", "pdf", "type", "report"));
                bindings.put("default_all", Map.of("format", "zip"));
                bindings.put("all_empty", Map.of("x-match", "all"));
                bindings.put("any_empty", Map.of("x-match", "any"));
                Object[][] messages = {
                    {"both", Map.of("format", "pdf", "type", "report"), List.of("all", "any", "all_empty")},
                    {"both_plus", Map.of("format", "pdf", "type", "report", "extra", "1"), List.of("all", "any", "all_empty")},
                    {"format_only", Map.of("format", "pdf"), List.of("any", "all_empty")},
                    {"type_only", Map.of("type", "report"), List.of("any", "all_empty")},
                    {"wrong_value", Map.of("format", "zip", "type", "log"), List.of("default_all", "all_empty")},
                    {"none", null, List.of("all_empty")},
                };
                Map<String, String> qs = new LinkedHashMap<>();
                for (Map.Entry<String, Map<String, Object>> e : bindings.entrySet()) {
                    String q = w.queue("q-hdr-" + e.getKey());
                    w.ch.queueBind(q, ex, "", e.getValue());
                    qs.put(e.getKey(), q);
                }
                for (Object[] m : messages) {
                    @SuppressWarnings("unchecked") Map<String, Object> h = (Map<String, Object>) m[1];
                    w.ch.basicPublish(ex, "rk", new AMQP.BasicProperties.Builder().headers(h).build(), b((String) m[0]));
                }
                w.ch.waitForConfirmsOrDie(5000);
                List<String> errors = new ArrayList<>();
                for (String name : bindings.keySet()) {
                    List<String> got = drain(w.ch, qs.get(name));
                    List<String> want = new ArrayList<>();
                    for (Object[] m : messages) if (((List<?>) m[2]).contains(name)) want.add((String) m[0]);
                    if (!got.equals(want)) errors.add("binding " + name + ": got " + got + ", want " + want);
                }
                check(errors.isEmpty(), String.join("; ", errors));
                return null;
            }
        });

        scenario("mandatory_return", url -> {
            try (World w = new World(url)) {
                String ex = w.exchange("ex-mand", "direct");
                List<String> returned = Collections.synchronizedList(new ArrayList<>());
                w.ch.addReturnListener((code, text, exch, rk, props, body) ->
                    returned.add(code + "|" + text + "|" + exch + "|" + rk + "|" + s(body) + "|" + props.getMessageId()));
                w.ch.basicPublish(ex, "nowhere", true, new AMQP.BasicProperties.Builder().messageId("m1").build(), b("lost"));
                w.ch.basicPublish(ex, "nowhere", false, null, b("dropped"));
                waitUntil(() -> !returned.isEmpty(), 5000);
                Thread.sleep(300);
                eq(returned, List.of("312|NO_ROUTE|" + ex + "|nowhere|lost|m1"), "basic.return");
                // in confirm mode the return comes before the ack
                Channel c = w.conn.createChannel();
                List<String> events = Collections.synchronizedList(new ArrayList<>());
                c.addReturnListener((code, text, exch, rk, props, body) -> events.add("return " + code));
                c.addConfirmListener(new ConfirmListener() {
                    public void handleAck(long tag, boolean multiple) { events.add("ack " + tag); }
                    public void handleNack(long tag, boolean multiple) { events.add("nack " + tag); }
                });
                c.confirmSelect();
                c.basicPublish(ex, "nowhere", true, null, b("lost2"));
                c.waitForConfirmsOrDie(5000);
                waitUntil(() -> events.size() >= 2, 2000);
                eq(events, List.of("return 312", "ack 1"), "return then ack in confirm mode");
                return null;
            }
        });

        scenario("publisher_confirms", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-confirm");
                w.ch.confirmSelect();
                for (int i = 0; i < 50; i++) w.pub("", q, "m" + i);
                w.pub("amq.direct", "nobody-" + q, "x");
                w.ch.waitForConfirmsOrDie(5000);
                eq(w.count(q), 50, "messages in queue after confirmed publishes");
                return null;
            }
        });

        scenario("tx_commit", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-tx");
                w.ch.txSelect();
                for (int i = 0; i < 3; i++) w.pub("", q, "m" + i);
                eq(w.count(q), 0, "messages visible before commit");
                w.ch.txCommit();
                eq(w.count(q), 3, "messages after commit");
                GetResponse r = w.ch.basicGet(q, false);
                w.ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
                w.ch.txCommit();
                r = w.ch.basicGet(q, false);
                w.ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
                w.ch.txRollback();
                w.ch.close();
                eq(w.count(q), 2, "ready messages after committed ack + rolled back ack + channel close");
                Channel c = w.conn.createChannel();
                r = c.basicGet(q, true);
                eq(s(r.getBody()) + "/" + r.getEnvelope().isRedeliver(), "m1/true", "message whose ack was rolled back");
                return null;
            }
        });

        scenario("tx_rollback", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-txrb");
                w.ch.txSelect();
                for (int i = 0; i < 3; i++) w.pub("", q, "m" + i);
                w.ch.txRollback();
                eq(w.count(q), 0, "messages after rollback");
                w.pub("", q, "after");
                w.ch.txCommit();
                eq(w.count(q), 1, "messages after publish+commit following rollback");
                eq(s(w.ch.basicGet(q, true).getBody()), "after", "body");
                return null;
            }
        });

        scenario("purge", url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-purge");
                w.ch.confirmSelect();
                for (int i = 0; i < 5; i++) w.pub("", q, "x");
                w.ch.waitForConfirmsOrDie(5000);
                eq(w.ch.queuePurge(q).getMessageCount(), 5, "purge-ok message_count");
                eq(w.count(q), 0, "messages after purge");
                eq(w.ch.queuePurge(q).getMessageCount(), 0, "second purge-ok message_count");
                return null;
            }
        });

        bodySize("body_0b", fm -> 0);
        bodySize("body_1b", fm -> 1);
        bodySize("body_frame_max_minus_1", fm -> fm - 1);
        bodySize("body_10mib", fm -> 10 * 1024 * 1024);

        scenario("many_channels", url -> {
            try (World w = new World(url)) {
                List<Channel> chans = new ArrayList<>();
                Set<Integer> nums = new HashSet<>();
                for (int i = 0; i < 50; i++) { Channel c = w.conn.createChannel(); chans.add(c); nums.add(c.getChannelNumber()); }
                eq(nums.size(), 50, "distinct channel numbers");
                for (int i = 0; i < 50; i++) {
                    Channel c = chans.get(i);
                    String q = c.queueDeclare().getQueue();
                    c.basicPublish("", q, null, b("c" + i));
                    GetResponse r = c.basicGet(q, true);
                    check(r != null, "get-empty on channel " + c.getChannelNumber());
                    eq(s(r.getBody()), "c" + i, "body on channel " + c.getChannelNumber());
                }
                for (Channel c : chans) c.close();
                check(w.conn.isOpen(), "connection closed");
                return null;
            }
        });

        scenario("error_404_passive_missing_queue", url -> {
            try (World w = new World(url)) {
                String name = unique("q-missing");
                String d = expectChannelError(() -> w.ch.queueDeclarePassive(name), 404,
                    "NOT_FOUND - no queue '" + quote(name) + "' in vhost '/'");
                stillUsable(w);
                return d;
            }
        });

        scenario("error_406_queue_redeclare", url -> {
            try (World w = new World(url)) {
                String name = w.queue("q-redecl");
                String d = expectChannelError(() -> w.ch.queueDeclare(name, true, false, false, null), 406,
                    "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + quote(name)
                        + "' in vhost '/': received 'true' but current is 'false'");
                stillUsable(w);
                return d;
            }
        });

        scenario("error_406_exchange_redeclare", url -> {
            try (World w = new World(url)) {
                String name = w.exchange("ex-redecl", "direct");
                String d = expectChannelError(() -> w.ch.exchangeDeclare(name, "fanout"), 406,
                    "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '" + quote(name)
                        + "' in vhost '/': received 'fanout' but current is 'direct'");
                stillUsable(w);
                return d;
            }
        });

        scenario("error_405_exclusive_other_connection", url -> {
            try (World w = new World(url)) {
                String name = unique("q-locked");
                w.ch.queueDeclare(name, false, true, false, null);
                Connection c2 = w.connect();
                String text = quote("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + name
                    + "' in vhost '/'. It could be originally declared on another connection or the exclusive "
                    + "property value does not match that of the original declaration.");
                Channel a = c2.createChannel();
                String d = expectChannelError(() -> a.basicConsume(name, true, new DefaultConsumer(a)), 405, text);
                Channel b2 = c2.createChannel();
                expectChannelError(() -> b2.queueDeclarePassive(name), 405, text);
                Channel c3 = c2.createChannel();
                expectChannelError(() -> c3.queueDeclare(name, false, true, false, null), 405, text);
                return d;
            }
        });

        scenario("error_403_amq_prefix", url -> {
            try (World w = new World(url)) {
                String name = "amq." + unique("x");
                String d = expectChannelError(() -> w.ch.exchangeDeclare(name, "direct"), 403,
                    "ACCESS_REFUSED - exchange name '" + quote(name) + "' contains reserved prefix 'amq\\.\\*'");
                stillUsable(w);
                return d;
            }
        });

        scenario("error_406_unknown_delivery_tag", url -> {
            try (World w = new World(url)) {
                w.ch.basicAck(999, false);
                String d = expectChannelError(() -> {
                    w.ch.queueDeclare("", false, true, false, null);
                    Thread.sleep(500);
                    w.ch.queueDeclare("", false, true, false, null);
                }, 406, "PRECONDITION_FAILED - unknown delivery tag 999");
                stillUsable(w);
                return d;
            }
        });

        scenario("consumer_cancel_on_delete", url -> {
            try (World w = new World(url)) {
                String q = unique("q-cancel");
                w.ch.queueDeclare(q, false, false, false, null);
                Collector c = new Collector(w.ch, "c");
                String tag = w.ch.basicConsume(q, true, c);
                Channel other = w.conn.createChannel();
                other.queueDelete(q);
                waitUntil(() -> !c.cancelled.isEmpty(), 5000);
                eq(c.cancelled, List.of(tag), "basic.cancel from the server");
                check(w.ch.isOpen(), "channel closed after consumer cancel");
                stillUsable(w);
                return null;
            }
        });

        // Automatic connection recovery (Java client only). The drop is forced from the client
        // side: the socket factory remembers the TCP socket and the scenario closes it, which the
        // client sees as an unexpected I/O failure (not an application close) and recovers from.
        scenario("connection_recovery", url -> {
            List<Socket> sockets = Collections.synchronizedList(new ArrayList<>());
            SocketFactory base = SocketFactory.getDefault();
            SocketFactory tracking = new SocketFactory() {
                Socket keep(Socket s) { sockets.add(s); return s; }
                public Socket createSocket() throws IOException { return keep(base.createSocket()); }
                public Socket createSocket(String h, int p) throws IOException { return keep(base.createSocket(h, p)); }
                public Socket createSocket(String h, int p, java.net.InetAddress l, int lp) throws IOException { return keep(base.createSocket(h, p, l, lp)); }
                public Socket createSocket(java.net.InetAddress h, int p) throws IOException { return keep(base.createSocket(h, p)); }
                public Socket createSocket(java.net.InetAddress h, int p, java.net.InetAddress l, int lp) throws IOException { return keep(base.createSocket(h, p, l, lp)); }
            };
            try (World w = new World(url)) {
                String q = w.queue("q-recover");
                Connection rc = w.connect(f -> {
                    f.setAutomaticRecoveryEnabled(true);
                    f.setTopologyRecoveryEnabled(true);
                    f.setNetworkRecoveryInterval(500);
                    f.setSocketFactory(tracking);
                });
                check(rc instanceof Recoverable, "connection is not recoverable: " + rc.getClass());
                List<String> events = Collections.synchronizedList(new ArrayList<>());
                ((Recoverable) rc).addRecoveryListener(new RecoveryListener() {
                    public void handleRecovery(Recoverable r) { events.add("recovered"); }
                    public void handleRecoveryStarted(Recoverable r) { events.add("started"); }
                });
                List<String> renamed = Collections.synchronizedList(new ArrayList<>());
                ((com.rabbitmq.client.impl.recovery.AutorecoveringConnection) rc)
                    .addQueueRecoveryListener((oldName, newName) -> renamed.add(newName));
                Channel rch = rc.createChannel();
                String exclusive = rch.queueDeclare().getQueue();
                Collector c = new Collector(rch, "c");
                rch.basicConsume(q, true, c);
                w.pub("", q, "before");
                check(c.waitFor(1, 5000), "no delivery before the drop");
                eq(sockets.size(), 1, "sockets opened");
                sockets.get(0).close();
                check(waitUntil(() -> events.contains("recovered"), 15000), "connection not recovered: events " + events);
                eq(sockets.size(), 2, "sockets opened after recovery");
                check(rc.isOpen() && rch.isOpen(), "connection/channel not open after recovery");
                w.pub("", q, "after");
                check(c.waitFor(2, 5000), "consumer not recovered: deliveries " + c.got.size());
                eq(s(c.got.get(1).body), "after", "body after recovery");
                // a server-named queue is redeclared under a new server-chosen name
                eq(renamed.size(), 1, "server-named queues recovered");
                check(!renamed.get(0).equals(exclusive) && renamed.get(0).startsWith("amq.gen-"),
                    "recovered server-named queue " + renamed.get(0) + " (was " + exclusive + ")");
                rch.queueDeclarePassive(renamed.get(0));
                check(gone(w, exclusive), "old exclusive queue still exists after the drop");
                rc.abort();
                return "events " + events;
            }
        });
    }

    interface SizeFn { int size(int frameMax); }

    static void bodySize(String name, SizeFn fn) {
        scenario(name, url -> {
            try (World w = new World(url)) {
                String q = w.queue("q-size");
                int fm = w.conn.getFrameMax();
                int size = fn.size(fm);
                byte[] body = new byte[size];
                RND.nextBytes(body);
                w.ch.confirmSelect();
                w.ch.basicPublish("", q, new AMQP.BasicProperties.Builder().messageId("sz").build(), body);
                w.ch.waitForConfirmsOrDie(15000);
                List<Delivery> got = collect(w.ch, q, 1, 15000);
                eq(got.size(), 1, "deliveries");
                eq(got.get(0).body.length, size, "body length");
                check(Arrays.equals(got.get(0).body, body), "body bytes differ");
                return size + " bytes (frame_max " + fm + ")";
            }
        });
    }

    static final List<String> TOPIC_PATTERNS = List.of("a.b.c", "a.*.c", "a.#", "#", "*", "*.b.*", "#.c", "", "a.#.c", "*.*", "a.*.#");
    static final LinkedHashMap<String, List<String>> TOPIC_EXPECTED = new LinkedHashMap<>();
    static {
        TOPIC_EXPECTED.put("a.b.c", List.of("a.b.c", "a.*.c", "a.#", "#", "*.b.*", "#.c", "a.#.c", "a.*.#"));
        TOPIC_EXPECTED.put("a.x.c", List.of("a.*.c", "a.#", "#", "#.c", "a.#.c", "a.*.#"));
        TOPIC_EXPECTED.put("a", List.of("a.#", "#", "*"));
        TOPIC_EXPECTED.put("a.b", List.of("a.#", "#", "*.*", "a.*.#"));
        TOPIC_EXPECTED.put("a.b.c.d", List.of("a.#", "#", "a.*.#"));
        TOPIC_EXPECTED.put("", List.of("#", ""));
        TOPIC_EXPECTED.put("b", List.of("#", "*"));
        TOPIC_EXPECTED.put("x.b.y", List.of("#", "*.b.*"));
        TOPIC_EXPECTED.put("c", List.of("#", "*", "#.c"));
        TOPIC_EXPECTED.put("a.c", List.of("a.#", "#", "#.c", "a.#.c", "*.*", "a.*.#"));
        TOPIC_EXPECTED.put("a.b.b.c", List.of("a.#", "#", "#.c", "a.#.c", "a.*.#"));
    }

    // ------------------------------------------------------------------ main

    static String json(String s) {
        StringBuilder o = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') o.append('\\').append(c);
            else if (c < 0x20) o.append(String.format("\\u%04x", (int) c));
            else o.append(c);
        }
        return o.append('"').toString();
    }

    static void emit(String name, String status, String detail) {
        System.out.println("{\"scenario\": " + json(name) + ", \"status\": " + json(status) + ", \"detail\": " + json(detail) + "}");
        System.out.flush();
    }

    public static void main(String[] args) {
        if (args.length < 2) { System.err.println("usage: Scenarios URL SCENARIO|all|list"); System.exit(2); }
        define();
        if (args[1].equals("list")) { for (String n : SCENARIOS.keySet()) System.out.println(n); return; }
        List<String> names = args[1].equals("all") ? new ArrayList<>(SCENARIOS.keySet()) : List.of(args[1]);
        for (String name : names) {
            Body fn = SCENARIOS.get(name);
            if (fn == null) { emit(name, "skip", "not implemented for this client"); continue; }
            long t0 = System.nanoTime();
            try {
                String d = fn.run(args[0]);
                emit(name, "pass", ((d == null ? "" : d + " ") + String.format("(%.2fs)", (System.nanoTime() - t0) / 1e9)).trim());
            } catch (Skip e) {
                emit(name, "skip", e.getMessage());
            } catch (Fail e) {
                emit(name, "fail", e.getMessage());
            } catch (Throwable e) {
                StackTraceElement[] st = e.getStackTrace();
                emit(name, "fail", e + (st.length > 0 ? " at " + st[0] : "") + (e.getCause() != null ? " | cause " + e.getCause() : ""));
            }
        }
        System.exit(0);
    }
}
