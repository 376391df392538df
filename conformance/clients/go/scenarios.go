// Conformance scenarios written with github.com/rabbitmq/amqp091-go (Debian's
// golang-github-rabbitmq-amqp091-go-dev, built in GOPATH mode by conformance/run).
//
//	scenarios URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type failure struct{ msg string }

func fail(format string, a ...interface{}) { panic(failure{fmt.Sprintf(format, a...)}) }
func check(c bool, format string, a ...interface{}) {
	if !c {
		fail(format, a...)
	}
}
func eq(got, want interface{}, what string) {
	if !reflect.DeepEqual(got, want) {
		fail("%s: got %#v, want %#v", what, got, want)
	}
}
func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}
func unique(tag string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("conf.%s.%d.%s", tag, os.Getpid(), hex.EncodeToString(b))
}
func waitUntil(p func() bool, d time.Duration) bool {
	end := time.Now().Add(d)
	for {
		if p() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type scen struct {
	name string
	fn   func(url string) string
}

var scenarios []scen

func scenario(name string, fn func(url string) string) { scenarios = append(scenarios, scen{name, fn}) }

// ------------------------------------------------------------------ world

type World struct {
	url               string
	conns             []*amqp.Connection
	queues, exchanges []string
	conn              *amqp.Connection
	ch                *amqp.Channel
	confirms          chan amqp.Confirmation
}

func newWorld(url string, cfg *amqp.Config) *World {
	w := &World{url: url}
	w.conn = w.connect(cfg)
	w.ch = w.channel()
	return w
}

func (w *World) connect(cfg *amqp.Config) *amqp.Connection {
	var c *amqp.Connection
	var err error
	if cfg != nil {
		c, err = amqp.DialConfig(w.url, *cfg)
	} else {
		c, err = amqp.Dial(w.url)
	}
	must(err, "connect")
	w.conns = append(w.conns, c)
	return c
}

func (w *World) channel() *amqp.Channel {
	ch, err := w.conn.Channel()
	must(err, "channel.open")
	return ch
}

// confirmed puts the scenario channel in confirm mode: pub() then waits for each ack.
func (w *World) confirmed() {
	must(w.ch.Confirm(false), "confirm.select")
	w.confirms = w.ch.NotifyPublish(make(chan amqp.Confirmation, 1000))
}

func (w *World) queue(tag string, durable, autoDelete, exclusive bool) string {
	n := unique(tag)
	_, err := w.ch.QueueDeclare(n, durable, autoDelete, exclusive, false, nil)
	must(err, "queue.declare")
	w.queues = append(w.queues, n)
	return n
}

func (w *World) exchange(tag, kind string) string {
	n := unique(tag)
	must(w.ch.ExchangeDeclare(n, kind, false, false, false, false, nil), "exchange.declare")
	w.exchanges = append(w.exchanges, n)
	return n
}

func (w *World) pubMsg(ex, rk string, mandatory bool, msg amqp.Publishing) {
	must(w.ch.Publish(ex, rk, mandatory, false, msg), "basic.publish")
	if w.confirms != nil {
		select {
		case c := <-w.confirms:
			check(c.Ack, "publish nacked")
		case <-time.After(5 * time.Second):
			fail("no publisher confirm within 5 s")
		}
	}
}

func (w *World) pub(ex, rk, body string) {
	w.pubMsg(ex, rk, false, amqp.Publishing{Body: []byte(body)})
}

func (w *World) count(q string) int {
	ch := w.ch
	if ch.IsClosed() {
		ch = w.channel()
		defer ch.Close()
	}
	ok, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	must(err, "queue.declare passive")
	return ok.Messages
}

func (w *World) close() {
	for _, c := range w.conns {
		c.Close()
	}
	if len(w.queues)+len(w.exchanges) == 0 {
		return
	}
	c, err := amqp.Dial(w.url)
	if err != nil {
		return
	}
	defer c.Close()
	for _, q := range w.queues {
		if ch, err := c.Channel(); err == nil {
			if _, err := ch.QueueDelete(q, false, false, false); err == nil {
				ch.Close()
			}
		}
	}
	for _, e := range w.exchanges {
		if ch, err := c.Channel(); err == nil {
			if err := ch.ExchangeDelete(e, false, false); err == nil {
				ch.Close()
			}
		}
	}
}

func withWorld(url string, fn func(w *World) string) string {
	w := newWorld(url, nil)
	defer w.close()
	return fn(w)
}

func get(ch *amqp.Channel, q string, autoAck bool) (amqp.Delivery, bool) {
	d, ok, err := ch.Get(q, autoAck)
	must(err, "basic.get")
	return d, ok
}

func drain(ch *amqp.Channel, q string) []string {
	out := []string{}
	for {
		d, ok := get(ch, q, true)
		if !ok {
			return out
		}
		out = append(out, string(d.Body))
	}
}

type collector struct {
	mu  sync.Mutex
	got []amqp.Delivery
}

func (c *collector) n() int                 { c.mu.Lock(); defer c.mu.Unlock(); return len(c.got) }
func (c *collector) at(i int) amqp.Delivery { c.mu.Lock(); defer c.mu.Unlock(); return c.got[i] }
func consume(ch *amqp.Channel, q string, autoAck bool) (*collector, string) {
	tag := unique("ctag")
	ds, err := ch.Consume(q, tag, autoAck, false, false, false, nil)
	must(err, "basic.consume")
	c := &collector{}
	go func() {
		for d := range ds {
			c.mu.Lock()
			c.got = append(c.got, d)
			c.mu.Unlock()
		}
	}()
	return c, tag
}

func collect(ch *amqp.Channel, q string, n int, d time.Duration) []amqp.Delivery {
	c, tag := consume(ch, q, true)
	waitUntil(func() bool { return c.n() >= n }, d)
	must(ch.Cancel(tag, false), "basic.cancel")
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]amqp.Delivery(nil), c.got...)
}

func expectChannelError(fn func() error, code int, textRe string) string {
	err := fn()
	check(err != nil, "no channel.close %d (call succeeded)", code)
	e, ok := err.(*amqp.Error)
	check(ok, "not an AMQP error: %v", err)
	check(!e.Server || e.Code == code, "reply code: got %d, want %d (%s)", e.Code, code, e.Reason)
	eq(e.Code, code, "reply code")
	check(regexp.MustCompile("^"+textRe+"$").MatchString(e.Reason), "reply text %q does not match %q", e.Reason, textRe)
	return fmt.Sprintf("%d %s", e.Code, e.Reason)
}

func stillUsable(w *World) {
	ch := w.channel()
	_, err := ch.QueueDeclare("", false, false, true, false, nil)
	must(err, "declare on a new channel")
	ch.Close()
}

func gone(w *World, q string) bool {
	ch, err := w.conn.Channel()
	if err != nil {
		return false
	}
	_, err = ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err == nil {
		ch.Close()
		return false
	}
	e, ok := err.(*amqp.Error)
	return ok && e.Code == 404
}

var qm = regexp.QuoteMeta

// ------------------------------------------------------------------ scenarios

func define() {
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

	scenario("mandatory_return", func(url string) string {
		return withWorld(url, func(w *World) string {
			ex := w.exchange("ex-mand", "direct")
			returns := w.ch.NotifyReturn(make(chan amqp.Return, 10))
			w.pubMsg(ex, "nowhere", true, amqp.Publishing{MessageId: "m1", Body: []byte("lost")})
			w.pubMsg(ex, "nowhere", false, amqp.Publishing{Body: []byte("dropped")})
			var got []amqp.Return
			timeout := time.After(5 * time.Second)
		loop:
			for {
				select {
				case r := <-returns:
					got = append(got, r)
				case <-time.After(300 * time.Millisecond):
					if len(got) > 0 {
						break loop
					}
				case <-timeout:
					break loop
				}
			}
			eq(len(got), 1, "basic.return count")
			r := got[0]
			eq([]interface{}{int(r.ReplyCode), r.ReplyText, r.Exchange, r.RoutingKey, string(r.Body), r.MessageId},
				[]interface{}{312, "NO_ROUTE", ex, "nowhere", "lost", "m1"}, "basic.return fields")
			// confirm mode: the return comes, and the publish is acked
			ch := w.channel()
			returns2 := ch.NotifyReturn(make(chan amqp.Return, 10))
			must(ch.Confirm(false), "confirm.select")
			confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 10))
			must(ch.Publish(ex, "nowhere", true, false, amqp.Publishing{Body: []byte("lost2")}), "publish")
			select {
			case r := <-returns2:
				eq(int(r.ReplyCode), 312, "reply code in confirm mode")
			case <-time.After(5 * time.Second):
				fail("no basic.return in confirm mode")
			}
			select {
			case c := <-confirms:
				check(c.Ack, "mandatory unroutable publish nacked")
			case <-time.After(5 * time.Second):
				fail("no confirm")
			}
			return ""
		})
	})

	scenario("publisher_confirms", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-confirm", false, false, false)
			must(w.ch.Confirm(false), "confirm.select")
			confirms := w.ch.NotifyPublish(make(chan amqp.Confirmation, 100))
			for i := 0; i < 50; i++ {
				must(w.ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(fmt.Sprintf("m%d", i))}), "publish")
			}
			must(w.ch.Publish("amq.direct", "nobody-"+q, false, false, amqp.Publishing{Body: []byte("x")}), "publish")
			for i := 1; i <= 51; i++ {
				select {
				case c := <-confirms:
					check(c.Ack, "nack for %d", c.DeliveryTag)
					eq(c.DeliveryTag, uint64(i), "confirm delivery tag")
				case <-time.After(5 * time.Second):
					fail("only %d of 51 confirms", i-1)
				}
			}
			eq(w.count(q), 50, "messages in queue after confirmed publishes")
			return ""
		})
	})

	scenario("tx_commit", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-tx", false, false, false)
			must(w.ch.Tx(), "tx.select")
			for i := 0; i < 3; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			eq(w.count(q), 0, "messages visible before commit")
			must(w.ch.TxCommit(), "tx.commit")
			eq(w.count(q), 3, "messages after commit")
			d, _ := get(w.ch, q, false)
			must(w.ch.Ack(d.DeliveryTag, false), "ack")
			must(w.ch.TxCommit(), "tx.commit")
			d, _ = get(w.ch, q, false)
			must(w.ch.Ack(d.DeliveryTag, false), "ack")
			must(w.ch.TxRollback(), "tx.rollback")
			w.ch.Close()
			eq(w.count(q), 2, "ready messages after committed ack + rolled back ack + channel close")
			ch := w.channel()
			d, ok := get(ch, q, true)
			check(ok, "get-empty")
			eq(fmt.Sprintf("%s/%v", d.Body, d.Redelivered), "m1/true", "message whose ack was rolled back")
			return ""
		})
	})

	scenario("tx_rollback", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-txrb", false, false, false)
			must(w.ch.Tx(), "tx.select")
			for i := 0; i < 3; i++ {
				w.pub("", q, fmt.Sprintf("m%d", i))
			}
			must(w.ch.TxRollback(), "tx.rollback")
			eq(w.count(q), 0, "messages after rollback")
			w.pub("", q, "after")
			must(w.ch.TxCommit(), "tx.commit")
			eq(w.count(q), 1, "messages after publish+commit following rollback")
			d, _ := get(w.ch, q, true)
			eq(string(d.Body), "after", "body")
			return ""
		})
	})

	scenario("purge", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := w.queue("q-purge", false, false, false)
			w.confirmed()
			for i := 0; i < 5; i++ {
				w.pub("", q, "x")
			}
			n, err := w.ch.QueuePurge(q, false)
			must(err, "purge")
			eq(n, 5, "purge-ok message_count")
			eq(w.count(q), 0, "messages after purge")
			n, err = w.ch.QueuePurge(q, false)
			must(err, "purge")
			eq(n, 0, "second purge-ok message_count")
			return ""
		})
	})

	bodySize := func(name string, size func(fm int) int) {
		scenario(name, func(url string) string {
			return withWorld(url, func(w *World) string {
				q := w.queue("q-size", false, false, false)
				fm := w.conn.Config.FrameSize
				n := size(fm)
				body := make([]byte, n)
				rand.Read(body)
				w.confirmed()
				w.pubMsg("", q, false, amqp.Publishing{MessageId: "sz", Body: body})
				got := collect(w.ch, q, 1, 15*time.Second)
				eq(len(got), 1, "deliveries")
				eq(len(got[0].Body), n, "body length")
				check(string(got[0].Body) == string(body), "body bytes differ")
				return fmt.Sprintf("%d bytes (frame_max %d)", n, fm)
			})
		})
	}
	bodySize("body_0b", func(int) int { return 0 })
	bodySize("body_1b", func(int) int { return 1 })
	bodySize("body_frame_max_minus_1", func(fm int) int { return fm - 1 })
	bodySize("body_10mib", func(int) int { return 10 * 1024 * 1024 })

	scenario("many_channels", func(url string) string {
		return withWorld(url, func(w *World) string {
			var chans []*amqp.Channel
			for i := 0; i < 50; i++ {
				chans = append(chans, w.channel())
			}
			for i, c := range chans {
				ok, err := c.QueueDeclare("", false, false, true, false, nil)
				must(err, "declare")
				must(c.Publish("", ok.Name, false, false, amqp.Publishing{Body: []byte(fmt.Sprintf("c%d", i))}), "publish")
				d, got := get(c, ok.Name, true)
				check(got, "get-empty on channel %d", i)
				eq(string(d.Body), fmt.Sprintf("c%d", i), "body")
			}
			for _, c := range chans {
				must(c.Close(), "channel.close")
			}
			check(!w.conn.IsClosed(), "connection closed")
			return ""
		})
	})

	scenario("error_404_passive_missing_queue", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := unique("q-missing")
			d := expectChannelError(func() error {
				_, err := w.ch.QueueDeclarePassive(name, false, false, false, false, nil)
				return err
			}, 404, "NOT_FOUND - no queue '"+qm(name)+"' in vhost '/'")
			stillUsable(w)
			return d
		})
	})

	scenario("error_406_queue_redeclare", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := w.queue("q-redecl", false, false, false)
			d := expectChannelError(func() error {
				_, err := w.ch.QueueDeclare(name, true, false, false, false, nil)
				return err
			}, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '"+qm(name)+
				"' in vhost '/': received 'true' but current is 'false'")
			stillUsable(w)
			return d
		})
	})

	scenario("error_406_exchange_redeclare", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := w.exchange("ex-redecl", "direct")
			d := expectChannelError(func() error {
				return w.ch.ExchangeDeclare(name, "fanout", false, false, false, false, nil)
			}, 406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '"+qm(name)+
				"' in vhost '/': received 'fanout' but current is 'direct'")
			stillUsable(w)
			return d
		})
	})

	scenario("error_405_exclusive_other_connection", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := unique("q-locked")
			_, err := w.ch.QueueDeclare(name, false, false, true, false, nil)
			must(err, "declare")
			c2 := w.connect(nil)
			text := qm("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + name +
				"' in vhost '/'. It could be originally declared on another connection or the exclusive " +
				"property value does not match that of the original declaration.")
			ch := func() *amqp.Channel { c, err := c2.Channel(); must(err, "channel"); return c }
			a := ch()
			d := expectChannelError(func() error {
				_, err := a.Consume(name, "", true, false, false, false, nil)
				return err
			}, 405, text)
			b := ch()
			expectChannelError(func() error {
				_, err := b.QueueDeclarePassive(name, false, false, false, false, nil)
				return err
			}, 405, text)
			c := ch()
			expectChannelError(func() error {
				_, err := c.QueueDeclare(name, false, false, true, false, nil)
				return err
			}, 405, text)
			return d
		})
	})

	scenario("error_403_amq_prefix", func(url string) string {
		return withWorld(url, func(w *World) string {
			name := "amq." + unique("x")
			d := expectChannelError(func() error {
				return w.ch.ExchangeDeclare(name, "direct", false, false, false, false, nil)
			}, 403, "ACCESS_REFUSED - exchange name '"+qm(name)+"' contains reserved prefix 'amq\\.\\*'")
			stillUsable(w)
			return d
		})
	})

	scenario("error_406_unknown_delivery_tag", func(url string) string {
		return withWorld(url, func(w *World) string {
			// basic.ack has no reply: the channel.close may arrive before or after the next RPC
			// is sent; when before, that RPC fails with the client's own ErrClosed (504), so the
			// broker's close is taken from NotifyClose.
			closes := w.ch.NotifyClose(make(chan *amqp.Error, 1))
			must(w.ch.Ack(999, false), "ack")
			d := expectChannelError(func() error {
				w.ch.QueueDeclare("", false, false, true, false, nil)
				select {
				case e := <-closes:
					if e == nil {
						return nil
					}
					return e
				case <-time.After(3 * time.Second):
					return nil
				}
			}, 406, "PRECONDITION_FAILED - unknown delivery tag 999")
			stillUsable(w)
			return d
		})
	})

	scenario("consumer_cancel_on_delete", func(url string) string {
		return withWorld(url, func(w *World) string {
			q := unique("q-cancel")
			_, err := w.ch.QueueDeclare(q, false, false, false, false, nil)
			must(err, "declare")
			cancels := w.ch.NotifyCancel(make(chan string, 10))
			_, tag := consume(w.ch, q, true)
			other := w.channel()
			_, err = other.QueueDelete(q, false, false, false)
			must(err, "delete")
			select {
			case t := <-cancels:
				eq(t, tag, "basic.cancel from the server")
			case <-time.After(5 * time.Second):
				fail("no basic.cancel from the server")
			}
			check(!w.ch.IsClosed(), "channel closed after consumer cancel")
			stillUsable(w)
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

// ------------------------------------------------------------------ main

func emit(name, status, detail string) {
	b, _ := json.Marshal(map[string]string{"scenario": name, "status": status, "detail": detail})
	fmt.Println(string(b))
}

func run(s scen, url string) {
	t0 := time.Now()
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(failure); ok {
				emit(s.name, "fail", f.msg)
			} else {
				emit(s.name, "fail", fmt.Sprintf("panic: %v", r))
			}
		}
	}()
	d := s.fn(url)
	emit(s.name, "pass", strings.TrimSpace(fmt.Sprintf("%s (%.2fs)", d, time.Since(t0).Seconds())))
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: scenarios URL SCENARIO|all|list")
		os.Exit(2)
	}
	define()
	url, which := os.Args[1], os.Args[2]
	if which == "list" {
		for _, s := range scenarios {
			fmt.Println(s.name)
		}
		return
	}
	found := false
	for _, s := range scenarios {
		if which == "all" || which == s.name {
			found = true
			run(s, url)
		}
	}
	if !found {
		emit(which, "skip", "not implemented for this client")
	}
}
