// Conformance scenarios (RabbitMQ Java client): mandatory returns, publisher confirms, transactions, purge, body sizes, many channels.
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

final class PublishingScenarios extends Scenarios {
    static void define() {
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
                eq(w.countEventually(q, 3), 3, "messages after commit");
                GetResponse r = w.ch.basicGet(q, false);
                w.ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
                w.ch.txCommit();
                r = w.ch.basicGet(q, false);
                w.ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
                w.ch.txRollback();
                w.ch.close();
                eq(w.countEventually(q, 2), 2, "ready messages after committed ack + rolled back ack + channel close");
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
                eq(w.countEventually(q, 1), 1, "messages after publish+commit following rollback");
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
}
