// Conformance scenarios written with the RabbitMQ Java client 5.x (Debian librabbitmq-client-java).
//
//     java -cp BUILD:/usr/share/java/rabbitmq-client.jar:... Scenarios URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.
// This file holds the harness, the World and main; the scenarios are in TopologyScenarios,
// MessagingScenarios, PublishingScenarios and ErrorScenarios (compiled together).

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
        /** The queue's ready count once it equals want, or the last one seen after 5 s
         *  (RabbitMQ's queues apply commits and requeues asynchronously). */
        int countEventually(String q, int want) throws Exception {
            long end = System.currentTimeMillis() + 5000;
            int n = count(q);
            while (n != want && System.currentTimeMillis() < end) { Thread.sleep(50); n = count(q); }
            return n;
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
    // Registers the scenarios of every file, in the order of the report.
    static void define() {
        TopologyScenarios.define();
        MessagingScenarios.define();
        PublishingScenarios.define();
        ErrorScenarios.define();
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
