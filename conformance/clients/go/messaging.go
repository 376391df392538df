// Conformance scenarios (amqp091-go): publish and consume, basic.get, acknowledgements,
// prefetch, round-robin, routing.

package main

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func defineMessaging() {
	scenario("publish_consume_properties", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-props", false, false, false)
			ts := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			headers := amqp.Table{
				"str": "value", "empty": "", "unicode": "h\u00e9llo \u2603", "int": int32(42), "neg": int32(-7),
				"big": int64(1) << 40, "bool_t": true, "bool_f": false, "decimal": amqp.Decimal{Scale: 2, Value: 314},
				"ts": ts, "table": amqp.Table{"nested": "yes", "n": int32(1)},
				"array": []interface{}{int32(1), "two", true, amqp.Table{"x": "y"}}, "void": nil,
				"bytes": []byte{0, 1, 0xff},
			}
			msg := amqp.Publishing{
				ContentType: "application/json", ContentEncoding: "utf-8", Headers: headers, DeliveryMode: 2,
				Priority: 5, CorrelationId: "corr-1", ReplyTo: "reply.q", Expiration: "60000", MessageId: "msg-1",
				Timestamp: time.Unix(1700000000, 0), Type: "t.kind", UserId: "guest", AppId: "conformance",
				Body: []byte(`{"hello": "world"}`),
			}
			w.pubMsg("", q, false, msg)
			got := collect(w.ch, q, 1, 5*time.Second)
			eq(len(got), 1, "deliveries")
			d := got[0]
			eq(string(d.Body), string(msg.Body), "body")
			eq([]interface{}{d.Exchange, d.RoutingKey, d.Redelivered}, []interface{}{"", q, false}, "deliver fields")
			eq([]interface{}{d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId, d.ReplyTo,
				d.Expiration, d.MessageId, d.Timestamp.Unix(), d.Type, d.UserId, d.AppId},
				[]interface{}{msg.ContentType, msg.ContentEncoding, msg.DeliveryMode, msg.Priority, msg.CorrelationId, msg.ReplyTo,
					msg.Expiration, msg.MessageId, msg.Timestamp.Unix(), msg.Type, msg.UserId, msg.AppId}, "properties")
			var names []string
			for k := range d.Headers {
				names = append(names, k)
			}
			sort.Strings(names)
			eq(len(names), len(headers), "header count")
			for k, v := range headers {
				gv := d.Headers[k]
				if t, ok := gv.(time.Time); ok {
					gv = t.UTC()
				}
				eq(gv, v, "header "+k)
			}
			w.pub("", q, "bare")
			got = collect(w.ch, q, 1, 5*time.Second)
			eq(len(got), 1, "deliveries (bare)")
			d = got[0]
			eq([]interface{}{d.ContentType, len(d.Headers), d.DeliveryMode, d.Priority, d.Timestamp.IsZero(), d.Expiration},
				[]interface{}{"", 0, uint8(0), uint8(0), true, ""}, "bare message properties")
			return ""
		})
	})

	scenario("basic_get", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-get", false, false, false)
			w.confirmed()
			for i := 0; i < 3; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			eq(w.count(q), 3, "message_count")
			for i := 0; i < 3; i++ {
				d, ok := get(w.ch, q, true)
				check(ok, "get %d returned get-empty", i)
				eq(string(d.Body), fmt.Sprintf("m%d", i), "body")
				eq(int(d.MessageCount), 2-i, "get-ok message_count")
				eq([]interface{}{d.Redelivered, d.Exchange, d.RoutingKey}, []interface{}{false, "", q}, "get-ok fields")
			}
			_, ok := get(w.ch, q, true)
			check(!ok, "basic.get on an empty queue did not return get-empty")
			return ""
		})
	})

	scenario("ack", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-ack", false, false, false)
			w.pub("", q, "m0")
			w.pub("", q, "m1")
			m0, _ := get(w.ch, q, false)
			m1, _ := get(w.ch, q, false)
			eq([]uint64{m0.DeliveryTag, m1.DeliveryTag}, []uint64{1, 2}, "delivery tags")
			must(w.ch.Ack(1, false), "ack")
			w.ch.Close()
			ch := w.channel()
			d, ok := get(ch, q, true)
			check(ok, "get-empty")
			eq([]interface{}{string(d.Body), d.Redelivered}, []interface{}{"m1", true}, "unacked message requeued on channel close")
			_, ok = get(ch, q, true)
			check(!ok, "acked message came back")
			return ""
		})
	})

	scenario("ack_multiple", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-ackm", false, false, false)
			for i := 0; i < 5; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			var tags []uint64
			for i := 0; i < 5; i++ {
				d, ok := get(w.ch, q, false)
				check(ok, "get-empty")
				tags = append(tags, d.DeliveryTag)
			}
			eq(tags, []uint64{1, 2, 3, 4, 5}, "delivery tags")
			must(w.ch.Ack(3, true), "ack multiple")
			w.ch.Close()
			ch := w.channel()
			var back []string
			for {
				d, ok := get(ch, q, true)
				if !ok {
					break
				}
				back = append(back, fmt.Sprintf("%s/%v", d.Body, d.Redelivered))
			}
			eq(back, []string{"m3/true", "m4/true"}, "requeued after ack(3, multiple)")
			return ""
		})
	})

	for _, kind := range []string{"nack", "reject"} {
		for _, requeue := range []bool{true, false} {
			kind, requeue := kind, requeue
			suffix := "_discard"
			if requeue {
				suffix = "_requeue"
			}
			scenario(kind+suffix, func(url string) string {
				return withWorld(url, func(w *World) string {
					q := w.queue("q-"+kind, false, false, false)
					for i := 0; i < 3; i++ {
						w.pub("", q, fmt.Sprintf("m%d", i))
					}
					for i := 0; i < 3; i++ {
						_, ok := get(w.ch, q, false)
						check(ok, "unexpected get-empty")
					}
					if kind == "nack" {
						must(w.ch.Nack(2, true, requeue), "nack")
					} else {
						must(w.ch.Reject(1, requeue), "reject")
						must(w.ch.Reject(2, requeue), "reject")
					}
					must(w.ch.Ack(3, false), "ack")
					if requeue {
						for _, want := range []string{"m0", "m1"} {
							d, ok := get(w.ch, q, true)
							check(ok, "get-empty instead of %s", want)
							eq(fmt.Sprintf("%s/%v", d.Body, d.Redelivered), want+"/true", "requeued message")
						}
					}
					_, ok := get(w.ch, q, false)
					check(!ok, "queue not empty at the end")
					w.ch.Close()
					eq(w.count(q), 0, "nothing left after channel close")
					return ""
				})
			})
		}
	}

	scenario("prefetch", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-prefetch", false, false, false)
			for i := 0; i < 10; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			must(w.ch.Qos(3, 0, false), "basic.qos")
			c, _ := consume(w.ch, q, false)
			waitUntil(func() bool { return c.n() >= 3 }, 5*time.Second)
			time.Sleep(500 * time.Millisecond)
			eq(c.n(), 3, "unacked deliveries with prefetch 3")
			must(w.ch.Ack(c.at(0).DeliveryTag, false), "ack")
			time.Sleep(500 * time.Millisecond)
			eq(c.n(), 4, "deliveries after one ack")
			must(w.ch.Ack(c.at(c.n()-1).DeliveryTag, true), "ack multiple")
			time.Sleep(500 * time.Millisecond)
			eq(c.n(), 7, "deliveries after ack multiple")
			must(w.ch.Ack(c.at(c.n()-1).DeliveryTag, true), "ack multiple")
			time.Sleep(500 * time.Millisecond)
			eq(c.n(), 10, "all deliveries")
			for i := 0; i < 10; i++ {
				eq(string(c.at(i).Body), fmt.Sprintf("m%d", i), "order")
			}
			return ""
		})
	})

	scenario("round_robin", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-rr", false, false, false)
			c1, _ := consume(w.channel(), q, true)
			c2, _ := consume(w.channel(), q, true)
			for i := 0; i < 10; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			waitUntil(func() bool { return c1.n()+c2.n() >= 10 }, 5*time.Second)
			time.Sleep(100 * time.Millisecond)
			bodies := func(c *collector) (out []string) {
				for i := 0; i < c.n(); i++ {
					out = append(out, string(c.at(i).Body))
				}
				return
			}
			l1, l2 := bodies(c1), bodies(c2)
			eq([]int{len(l1), len(l2)}, []int{5, 5}, "deliveries per consumer")
			evens, odds := []string{"m0", "m2", "m4", "m6", "m8"}, []string{"m1", "m3", "m5", "m7", "m9"}
			check((reflect.DeepEqual(l1, evens) && reflect.DeepEqual(l2, odds)) || (reflect.DeepEqual(l1, odds) && reflect.DeepEqual(l2, evens)),
				"not alternating: c1=%v c2=%v", l1, l2)
			return ""
		})
	})

	scenario("fanout_many", func(url string) string {
		return withWorld(url, func(w *World) string {
			w.confirmed()
			ex := w.exchange("ex-fan", "fanout")
			var qs []string
			for i := 0; i < 20; i++ {
				q := w.queue(fmt.Sprintf("q-fan%d", i), false, false, false)
				must(w.ch.QueueBind(q, "ignored", ex, false, nil), "bind")
				qs = append(qs, q)
			}
			for i := 0; i < 3; i++ {
				w.pub(ex, fmt.Sprintf("any%d", i), fmt.Sprintf("m%d", i))
			}
			for _, q := range qs {
				var got []string
				for i := 0; i < 3; i++ {
					d, ok := get(w.ch, q, true)
					check(ok, "get-empty on %s", q)
					got = append(got, string(d.Body)+"@"+d.RoutingKey)
				}
				eq(got, []string{"m0@any0", "m1@any1", "m2@any2"}, "queue "+q)
			}
			return ""
		})
	})

	scenario("topic_routing", func(url string) string {
		return withWorld(url, func(w *World) string {
			w.confirmed()
			ex := w.exchange("ex-topic", "topic")
			qs := map[string]string{}
			for _, pat := range topicPatterns {
				qs[pat] = w.queue("q-topic", false, false, false)
				must(w.ch.QueueBind(qs[pat], pat, ex, false, nil), "bind")
			}
			for _, k := range topicKeys {
				w.pub(ex, k, k)
			}
			var errs []string
			for _, pat := range topicPatterns {
				got := drain(w.ch, qs[pat])
				want := []string{}
				for _, k := range topicKeys {
					for _, p := range topicExpected[k] {
						if p == pat {
							want = append(want, k)
						}
					}
				}
				if !reflect.DeepEqual(got, want) {
					errs = append(errs, fmt.Sprintf("pattern %q: got %v, want %v", pat, got, want))
				}
			}
			check(len(errs) == 0, "%s", strings.Join(errs, "; "))
			return ""
		})
	})

	scenario("headers_routing", func(url string) string {
		return withWorld(url, func(w *World) string {
			w.confirmed()
			ex := w.exchange("ex-headers", "headers")
			names := []string{"all", "any", "default_all", "all_empty", "any_empty"}
			bindings := map[string]amqp.Table{
				"all":         {"x-match": "all", "format": "pdf", "type": "report"},
				"any":         {"x-match": "any", "format": "pdf", "type": "report"},
				"default_all": {"format": "zip"},
				"all_empty":   {"x-match": "all"},
				"any_empty":   {"x-match": "any"},
			}
			type hm struct {
				tag     string
				headers amqp.Table
				routes  []string
			}
			msgs := []hm{
				{"both", amqp.Table{"format": "pdf", "type": "report"}, []string{"all", "any", "all_empty"}},
				{"both_plus", amqp.Table{"format": "pdf", "type": "report", "extra": "1"}, []string{"all", "any", "all_empty"}},
				{"format_only", amqp.Table{"format": "pdf"}, []string{"any", "all_empty"}},
				{"type_only", amqp.Table{"type": "report"}, []string{"any", "all_empty"}},
				{"wrong_value", amqp.Table{"format": "zip", "type": "log"}, []string{"default_all", "all_empty"}},
				{"none", nil, []string{"all_empty"}},
			}
			qs := map[string]string{}
			for _, n := range names {
				qs[n] = w.queue("q-hdr-"+n, false, false, false)
				must(w.ch.QueueBind(qs[n], "", ex, false, bindings[n]), "bind")
			}
			for _, m := range msgs {
				w.pubMsg(ex, "rk", false, amqp.Publishing{Headers: m.headers, Body: []byte(m.tag)})
			}
			var errs []string
			for _, n := range names {
				got := drain(w.ch, qs[n])
				want := []string{}
				for _, m := range msgs {
					for _, r := range m.routes {
						if r == n {
							want = append(want, m.tag)
						}
					}
				}
				if !reflect.DeepEqual(got, want) {
					errs = append(errs, fmt.Sprintf("binding %s: got %v, want %v", n, got, want))
				}
			}
			check(len(errs) == 0, "%s", strings.Join(errs, "; "))
			return ""
		})
	})
}

var topicPatterns = []string{"a.b.c", "a.*.c", "a.#", "#", "*", "*.b.*", "#.c", "", "a.#.c", "*.*", "a.*.#"}
var topicKeys = []string{"a.b.c", "a.x.c", "a", "a.b", "a.b.c.d", "", "b", "x.b.y", "c", "a.c", "a.b.b.c"}
var topicExpected = map[string][]string{
	"a.b.c":   {"a.b.c", "a.*.c", "a.#", "#", "*.b.*", "#.c", "a.#.c", "a.*.#"},
	"a.x.c":   {"a.*.c", "a.#", "#", "#.c", "a.#.c", "a.*.#"},
	"a":       {"a.#", "#", "*"},
	"a.b":     {"a.#", "#", "*.*", "a.*.#"},
	"a.b.c.d": {"a.#", "#", "a.*.#"},
	"":        {"#", ""},
	"b":       {"#", "*"},
	"x.b.y":   {"#", "*.b.*"},
	"c":       {"#", "*", "#.c"},
	"a.c":     {"a.#", "#", "#.c", "a.#.c", "*.*", "a.*.#"},
	"a.b.b.c": {"a.#", "#", "#.c", "a.#.c", "a.*.#"},
}
