// World (one connection and channel per scenario, and what it declared, deleted at the end),
// consumers and channel-error helpers shared by the scenario files.

package main

import (
	"fmt"
	"regexp"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

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
