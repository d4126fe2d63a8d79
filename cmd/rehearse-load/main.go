// Command rehearse-load is the load generator of the in-cluster client
// (package incluster): each of the client's pods runs it against the app's
// Service at its cluster address. It sends with the harness's own
// generator (package load) and writes every result to stdout, as it comes,
// in the saved-timeline format (timeline.StreamWriter); the harness reads
// the pod's log and places each result on its own timeline. `rehearse-load
// clock` prints this machine's clock, for the harness to measure the pod's
// clock against its own.
//
// SIGTERM (the pod deleted, the rehearsal over) stops the sending; the
// requests in flight still get their outcome and are written before it
// exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == incluster.ClockCommand {
		// Several readings, each written at once: the harness notes when
		// each arrives, and the fastest tells the clock best.
		for i := 0; i < incluster.ClockReadings; i++ {
			if i > 0 {
				time.Sleep(incluster.ClockEvery)
			}
			fmt.Println(incluster.PodClock(time.Now()).UnixNano())
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rehearse-load:", err)
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("target", "", "URL to send to (the app's Service at its cluster address)")
	rate := flag.Int("rate", 100, "requests per second")
	duration := flag.Duration("duration", time.Minute, "how long to send at most")
	timeout := flag.Duration("timeout", load.DefaultTimeout, "each request's timeout")
	flag.Parse()
	g, err := load.New(*target, load.Client(timeline.ClientInCluster), load.Rate(*rate), load.Duration(*duration),
		load.Timeout(*timeout), load.Name(os.Getenv("POD_NAME")))
	if err != nil {
		return err
	}
	tl := timeline.New(time.Now())
	out, err := timeline.NewStreamWriter(os.Stdout, incluster.PodClock(tl.Start()),
		map[string]string{"pod": os.Getenv("POD_NAME"), "node": os.Getenv("NODE_NAME")})
	if err != nil {
		return err
	}
	// Not the signal's context: on SIGTERM the load stops and what is in
	// flight finishes, rather than being cut short.
	if err := g.Start(context.Background(), tl); err != nil {
		return err
	}
	term, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-term.Done()
		g.Stop()
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := 0
	forward := func() error {
		var reqs []timeline.Request
		reqs, n = tl.RequestsSince(n)
		return out.Requests(reqs)
	}
	for {
		select {
		case <-g.Done():
			sum, werr := g.Wait()
			if err := forward(); err != nil {
				return err
			}
			detail := "load done: " + sum.String()
			if werr != nil {
				detail += " (" + werr.Error() + ")"
			}
			return out.Event(timeline.Event{Offset: tl.Now(), Kind: timeline.EvNote, Name: incluster.NoteDone, Detail: detail})
		case <-tick.C:
			if err := forward(); err != nil {
				return err
			}
		}
	}
}
