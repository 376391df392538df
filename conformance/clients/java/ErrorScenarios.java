// Conformance scenarios (RabbitMQ Java client): reply codes and texts of common mistakes, the server's consumer cancel, connection recovery.
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

final class ErrorScenarios extends Scenarios {
    static void define() {
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
}
