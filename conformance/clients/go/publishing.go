// Conformance scenarios (amqp091-go): mandatory returns, publisher confirms, transactions,
// purge, body sizes, many channels.

package main

import (
	"crypto/rand"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func definePublishing() {
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
			// RabbitMQ's queues apply a commit asynchronously: poll, then assert
			waitUntil(func() bool { return w.count(q) == 3 }, 5*time.Second)
			eq(w.count(q), 3, "messages after commit")
			d, _ := get(w.ch, q, false)
			must(w.ch.Ack(d.DeliveryTag, false), "ack")
			must(w.ch.TxCommit(), "tx.commit")
			d, _ = get(w.ch, q, false)
			must(w.ch.Ack(d.DeliveryTag, false), "ack")
			must(w.ch.TxRollback(), "tx.rollback")
			w.ch.Close()
			waitUntil(func() bool { return w.count(q) == 2 }, 5*time.Second)
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
			waitUntil(func() bool { return w.count(q) == 1 }, 5*time.Second)
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
}
