// Conformance scenarios (RabbitMQ Java client): connection, exchanges, queues and bindings.
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

final class TopologyScenarios extends Scenarios {
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
    }
}
