// Conformance scenarios (RabbitMQ Java client): publish and consume, basic.get, acknowledgements, prefetch, round-robin, routing.
// Extends Scenarios for its helpers (the classes are in the unnamed package, which cannot be
// imported statically).

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

final class MessagingScenarios extends Scenarios {
    static void define() {
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
}
