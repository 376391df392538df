// Conformance scenarios written with github.com/rabbitmq/amqp091-go (Debian's
// golang-github-rabbitmq-amqp091-go-dev, built in GOPATH mode by conformance/run).
//
//	scenarios URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.
// This file holds the harness and main; the scenarios are in topology.go, messaging.go,
// publishing.go and errors.go, the World in world.go (all package main, built together).
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"
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

// define registers the scenarios of every file, in the order of the report.
func define() {
	defineTopology()
	defineMessaging()
	definePublishing()
	defineErrors()
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
