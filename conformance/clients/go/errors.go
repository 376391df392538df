// Conformance scenarios (amqp091-go): reply codes and texts of common mistakes; the server's
// consumer cancel.

package main

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func defineErrors() {
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
