package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// interrupts are two contexts a person ends with Ctrl-C (or a SIGTERM from a
// CI runner): the first interrupt ends the work, the second ends what must
// still happen after it (reverting a rehearsal's changes). Reverting runs
// under its own context because it must survive the first interrupt; a
// person who would rather not wait for it can still stop it, and leave what
// is left to `rehearse restore`, which reads the same journal.
type interrupts struct {
	work    context.Context // ended by the first interrupt
	cleanup context.Context // ended by the second
	stop    func()          // stops watching; the contexts end
}

// interruptSay is what each interrupt prints, and what the second does
// beyond ending the clean-up context.
type interruptSay struct {
	first, second string
	// exit, when set, ends the process on the second interrupt: for
	// commands whose library calls do not all honour a context (kind's
	// cluster creation), where the second interrupt would change nothing.
	exit func()
}

// The rehearsal's messages.
var rehearsalInterrupts = interruptSay{
	first:  "interrupted: stopping the load and reverting (interrupt again to stop reverting)",
	second: "interrupted again: stopped reverting; what is left is in the cluster's journal: run `rehearse restore`",
}

// Other commands': nothing of theirs needs reverting.
var plainInterrupts = interruptSay{
	first:  "interrupted: stopping (interrupt again to quit at once)",
	second: "interrupted again: quitting",
	exit:   func() { os.Exit(exitCannotRun) },
}

// notifyInterrupts catches SIGINT and SIGTERM until stop. After the second
// one they are no longer caught, so a third ends the process the default way
// whatever it is doing.
func notifyInterrupts(parent context.Context, say interruptSay, log io.Writer) *interrupts {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return watchInterrupts(parent, ch, say, log, func() { signal.Stop(ch) })
}

// watchInterrupts counts the signals arriving on sigs; release is called
// once no more are wanted (after the second, or at stop).
func watchInterrupts(parent context.Context, sigs <-chan os.Signal, say interruptSay, log io.Writer, release func()) *interrupts {
	work, endWork := context.WithCancel(parent)
	// Not a child of work: reverting outlives the first interrupt.
	cleanup, endCleanup := context.WithCancel(context.WithoutCancel(parent))
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		defer release()
		for n := 1; ; n++ {
			select {
			case <-quit:
				return
			case <-sigs:
			}
			if n == 1 {
				fmt.Fprintln(log, say.first)
				endWork()
				continue
			}
			fmt.Fprintln(log, say.second)
			endCleanup()
			if say.exit != nil {
				say.exit()
			}
			return
		}
	}()
	stopped := false
	return &interrupts{work: work, cleanup: cleanup, stop: func() {
		if stopped {
			return
		}
		stopped = true
		close(quit)
		<-exited
		endWork()
		endCleanup()
	}}
}
