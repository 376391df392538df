// Conformance scenarios (amqp091-go): connection, exchanges, queues and bindings.

package main

import (
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func defineTopology() {
	scenario("connect_heartbeat", func(url string) string {
		w := newWorld(url, &amqp.Config{Heartbeat: 2 * time.Second, Locale: "en_US"})
		defer w.close()
		caps, _ := w.conn.Properties["capabilities"].(amqp.Table)
		for _, c := range []string{"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
			"consumer_cancel_notify", "connection.blocked", "authentication_failure_close", "per_consumer_qos"} {
			eq(caps[c], true, "server capability "+c)
		}
		eq(w.conn.Config.Heartbeat, 2*time.Second, "negotiated heartbeat")
		eq(w.conn.Config.FrameSize, 131072, "negotiated frame_max")
		eq(w.conn.Config.ChannelMax, 2047, "negotiated channel_max")
		time.Sleep(6 * time.Second)
		check(!w.conn.IsClosed(), "connection closed while idle with heartbeat 2")
		_, err := w.ch.QueueDeclare("", false, false, true, false, nil)
		must(err, "declare after idle")
		return fmt.Sprintf("frame_max %d", w.conn.Config.FrameSize)
	})

	scenario("exchange_declare_types", func(url string) string {
		return withWorld(url, func(w *World) string {
			for _, t := range []string{"direct", "fanout", "topic", "headers"} {
				name := w.exchange("ex-"+t, t)
				must(w.ch.ExchangeDeclare(name, t, false, false, false, false, nil), "redeclare")
				must(w.ch.ExchangeDeclarePassive(name, t, false, false, false, false, nil), "passive")
				must(w.ch.ExchangeDelete(name, false, false), "delete")
				ch := w.channel()
				expectChannelError(func() error { return ch.ExchangeDeclarePassive(name, t, false, false, false, false, nil) },
					404, "NOT_FOUND - no exchange '"+qm(name)+"' in vhost '/'")
			}
			for _, b := range [][2]string{{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"},
				{"amq.headers", "headers"}, {"amq.match", "headers"}} {
				must(w.ch.ExchangeDeclarePassive(b[0], b[1], true, false, false, false, nil), "passive "+b[0])
				must(w.ch.ExchangeDeclare(b[0], b[1], true, false, false, false, nil), "declare "+b[0])
			}
			return ""
		})
	})

	scenario("queue_declare_named", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := unique("q-named")
			ok, err := w.ch.QueueDeclare(name, false, false, false, false, nil)
			must(err, "declare")
			w.queues = append(w.queues, name)
			eq([]interface{}{ok.Name, ok.Messages, ok.Consumers}, []interface{}{name, 0, 0}, "declare-ok")
			w.confirmed()
			w.pub("", name, "x")
			ok, err = w.ch.QueueDeclare(name, false, false, false, false, nil)
			must(err, "redeclare")
			eq(ok.Messages, 1, "redeclare message_count")
			eq(w.count(name), 1, "passive message_count")
			n, err := w.ch.QueueDelete(name, false, false, false)
			must(err, "delete")
			eq(n, 1, "delete-ok message_count")
			return ""
		})
	})

	scenario("queue_declare_server_named", func(url string) string {
		return withWorld(url, func(w *World) string {
			ok, err := w.ch.QueueDeclare("", false, false, true, false, nil)
			must(err, "declare")
			check(strings.HasPrefix(ok.Name, "amq.gen-"), "server-named queue %q does not start with amq.gen-", ok.Name)
			w.pub("", ok.Name, "hello")
			d, got := get(w.ch, ok.Name, true)
			check(got, "get-empty")
			eq(string(d.Body), "hello", "body via server-named queue")
			return ok.Name
		})
	})

	scenario("queue_declare_exclusive", func(url string) string {
		return withWorld(url, func(w *World) string {
			c2 := w.connect(nil)
			ch2, err := c2.Channel()
			must(err, "channel")
			name := unique("q-excl")
			_, err = ch2.QueueDeclare(name, false, false, true, false, nil)
			must(err, "declare exclusive")
			_, err = ch2.QueueDeclarePassive(name, false, false, true, false, nil)
			must(err, "owner passive declare")
			c2.Close()
			check(waitUntil(func() bool { return gone(w, name) }, 5*time.Second), "exclusive queue still exists after its connection closed")
			return ""
		})
	})

	scenario("queue_declare_auto_delete", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := unique("q-autodel")
			_, err := w.ch.QueueDeclare(name, false, true, false, false, nil)
			must(err, "declare")
			w.queues = append(w.queues, name)
			w.count(name)
			_, tag := consume(w.ch, name, true)
			must(w.ch.Cancel(tag, false), "cancel")
			check(waitUntil(func() bool { return gone(w, name) }, 5*time.Second), "auto-delete queue still exists after its last consumer left")
			return ""
		})
	})

	scenario("queue_declare_durable", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := w.queue("q-durable", true, false, false)
			w.confirmed()
			_, err := w.ch.QueueDeclare(name, true, false, false, false, nil)
			must(err, "redeclare")
			w.pubMsg("", name, false, amqp.Publishing{DeliveryMode: 2, Body: []byte("p")})
			eq(w.count(name), 1, "message_count")
			n, err := w.ch.QueueDelete(name, false, false, false)
			must(err, "delete")
			eq(n, 1, "delete-ok message_count")
			return ""
		})
	})

	scenario("bind_unbind", func(url string) string {
		return withWorld(url, func(w *World) string {
			w.confirmed()
			ex := w.exchange("ex-bind", "direct")
			q := w.queue("q-bind", false, false, false)
			must(w.ch.QueueBind(q, "k1", ex, false, nil), "bind")
			must(w.ch.QueueBind(q, "k1", ex, false, nil), "bind again")
			must(w.ch.QueueBind(q, "k2", ex, false, nil), "bind k2")
			for _, k := range []string{"k1", "k2", "k3"} {
				w.pub(ex, k, k)
			}
			eq(w.count(q), 2, "messages routed with bindings k1,k2")
			must(w.ch.QueueUnbind(q, "k1", ex, nil), "unbind")
			for _, k := range []string{"k1", "k2"} {
				w.pub(ex, k, k)
			}
			eq(w.count(q), 3, "messages after unbind of k1")
			must(w.ch.QueueUnbind(q, "never-bound", ex, nil), "unbind of a missing binding")
			eq(drain(w.ch, q), []string{"k1", "k2", "k2"}, "bodies")
			return ""
		})
	})

	scenario("exchange_to_exchange_bind", func(url string) string {
		return withWorld(url, func(w *World) string {
			w.confirmed()
			src, dst := w.exchange("ex-src", "topic"), w.exchange("ex-dst", "fanout")
			q := w.queue("q-e2e", false, false, false)
			must(w.ch.QueueBind(q, "", dst, false, nil), "bind")
			must(w.ch.ExchangeBind(dst, "a.*", src, false, nil), "exchange.bind")
			w.pub(src, "a.b", "1")
			w.pub(src, "x.b", "2")
			eq(w.count(q), 1, "messages routed through e2e binding")
			must(w.ch.ExchangeUnbind(dst, "a.*", src, false, nil), "exchange.unbind")
			w.pub(src, "a.b", "3")
			eq(w.count(q), 1, "messages after exchange.unbind")
			d, _ := get(w.ch, q, true)
			eq([]string{d.Exchange, d.RoutingKey, string(d.Body)}, []string{src, "a.b", "1"}, "exchange/routing key/body")
			return ""
		})
	})
}
